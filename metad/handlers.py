"""What every servicer of metad shares: one error mapping, request ids, who may call.

Owns the one table mapping domain errors to gRPC status codes (with the
reason in the "drive-error" trailing metadata, and the current revision in
"drive-current-revision" for a stale commit), the `maps_errors` decorator
every unary handler wears (which also names the call's request id to the
store, see requests.py), and the administrator check.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from metad import requests, rules
from metad.errors import (
    AlreadyExists,
    DatabaseUnavailable,
    FailedPrecondition,
    InvalidArgument,
    MetadataError,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StaleRevision,
    TooLarge,
    Unauthenticated,
)
from metad.models import User
from metad.store import Store
from protos import auth
from protos.runtime import CURRENT_REVISION_KEY, ERROR_REASON_KEY

_STATUS: dict[type[MetadataError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    StaleRevision: grpc.StatusCode.ABORTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DatabaseUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_of(error: MetadataError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


async def abort_with(context: grpc.aio.ServicerContext, error: MetadataError) -> NoReturn:
    trailing: list[tuple[str, str]] = [(ERROR_REASON_KEY, error.reason)]
    if isinstance(error, StaleRevision):
        trailing.append((CURRENT_REVISION_KEY, str(error.current)))
    context.set_trailing_metadata(tuple(trailing))
    await context.abort(status_of(error), str(error))
    raise AssertionError("context.abort returned")  # pragma: no cover


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def maps_errors(method: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Turns a domain error raised by a unary handler into its gRPC status.

    A request carrying a request_id has its change applied once for that id
    (requests.py): the handler's first store write checks and records it.
    """

    @functools.wraps(method)
    async def handler(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            requests.expect(request_key(method.__name__, request))
            return await method(self, request, context)
        except MetadataError as error:
            await abort_with(context, error)
        finally:
            requests.expect(None)

    return handler


def request_key(method: str, request: Any) -> requests.RequestKey | None:
    """The request log's key for a change sent to method (None: no request id).

    ApplyBatch keys each operation as its own RPC would, so both ways meet.
    """
    request_id = getattr(request, "request_id", "")
    if not request_id:
        return None
    rules.check_request_id(request_id)
    raw = request.SerializeToString(deterministic=True)
    return requests.RequestKey(auth.caller().user_id, request_id, requests.digest_of(method, raw))


async def admin_caller(store: Store) -> User:
    """The calling user, if an administrator (as metad's database says now)."""
    if auth.caller().service:
        raise PermissionDenied("only an administrator may do this")
    user = await store.get_user(auth.caller().user_id)
    if not user.admin:
        raise PermissionDenied("only an administrator may do this")
    return user
