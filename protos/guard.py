"""Malformed requests end INVALID_ARGUMENT, not UNKNOWN with a traceback in the log.

grpc decodes a request with the method's deserializer before any handler
runs; a byte string that is not the method's message makes it log an error
with a traceback and answer with a status that tells the caller nothing. The
interceptor here gives every method a deserializer that returns a marker
instead of raising, and ends a call that received the marker with
INVALID_ARGUMENT and a one-line message (streams too: at the first bad
message).

Must not: know any service, or check what a well-formed request means (the
servicers do).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from protos import interceptors

log = logging.getLogger(__name__)


class _Malformed:
    """What a request that could not be decoded becomes."""

    def __init__(self, why: str) -> None:
        self.why = why


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except (DecodeError, ValueError, TypeError) as exc:
            return _Malformed(str(exc) or type(exc).__name__)

    return decode


async def _refuse(context: grpc.aio.ServicerContext, method: str, request: _Malformed) -> None:
    log.info("refused a malformed request to %s: %s", method, request.why)
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT, f"malformed request (not a valid message): {request.why}"
    )


class MalformedRequests(grpc.aio.ServerInterceptor):
    """Put it first in a server's interceptors: it wraps what the others return."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method

        def checked(kind: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
            if kind.startswith("stream_"):
                return _streaming(behavior, method)
            return interceptors.around(behavior, functools.partial(_well_formed, method))

        return interceptors.rewrap(
            handler, checked, request_deserializer=_tolerant(handler.request_deserializer)
        )


@contextlib.asynccontextmanager
async def _well_formed(method: str, request: Any, context: grpc.aio.ServicerContext) -> Any:
    """A handler taking one request: refuses a malformed one before it runs."""
    if isinstance(request, _Malformed):
        await _refuse(context, method, request)
    yield


def _streaming(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    """A handler taking a stream of requests: the stream ends the call at a malformed one."""

    async def checked_requests(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Malformed):
                await _refuse(context, method, request)
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def checked_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async for item in behavior(checked_requests(requests, context), context):
                yield item

        return checked_stream

    async def checked(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(checked_requests(requests, context), context)

    return checked
