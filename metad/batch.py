"""ApplyBatch: many changes in one round trip, one transaction and one fsync.

Owns the batch's limits, the dispatch of each operation to the decoder of its
request (operations.py, which the single RPCs use too), each operation's
request id, and each outcome's BatchResult. The store runs the changes in
order in one transaction, each all or nothing on its own (Store.write_each):
one that fails is undone alone and the others stand. Runs of new files (a
create with a reserved id and its first commit) are written set-based
(bulk.py), with the outcomes they would have one by one.

An operation's request id is the one its own RPC would carry, with the same
digest (method and request), so a change is applied once whichever way it is
sent and retried: a retried batch gets the first replies of the operations
already applied. Errors map to status codes through handlers.py's one table.

Must not: hold SQL, or decide what a change does (operations.py, the store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import grpc
from google.protobuf.message import Message

from metad import operations, requests, rules
from metad.errors import InvalidArgument, MetadataError, StaleRevision
from metad.handlers import request_key, status_of
from metad.store import Store
from protos.drive.v1 import metadata_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kind:
    method: str  # the RPC the operation stands for: its request ids are that RPC's
    decode: operations.Decode


# BatchOperation's `op` field → what it is.
KINDS: dict[str, _Kind] = {
    "make_directory": _Kind("MakeDirectory", operations.make_directory),
    "create_file": _Kind("CreateFile", operations.create_file),
    "create_symlink": _Kind("CreateSymlink", operations.create_symlink),
    "make_node": _Kind("MakeNode", operations.make_node),
    "commit_revision": _Kind("CommitRevision", operations.commit_revision),
    "rename": _Kind("Rename", operations.rename),
    "delete": _Kind("Delete", operations.delete),
    "link": _Kind("Link", operations.link),
    "set_attributes": _Kind("SetAttributes", operations.set_attributes),
    "set_xattr": _Kind("SetXattr", operations.set_xattr),
    "remove_xattr": _Kind("RemoveXattr", operations.remove_xattr),
}

# A reply message → the BatchResult field it goes in.
_VALUE_FIELD = {pb.Node: "node", pb.RenameResponse: "rename", pb.DeleteResponse: "delete"}


async def apply(
    store: Store, caller: operations.Caller, request: pb.ApplyBatchRequest
) -> pb.ApplyBatchResponse:
    """Applies the operations in order in one transaction; one result each, in order."""
    rules.check_batch(len(request.operations), request.ByteSize())
    prepared = [_prepare(caller, operation) for operation in request.operations]
    changes = [p for p in prepared if isinstance(p, operations.Change)]
    outcomes = iter(await store.write_each([c.body for c in changes]) if changes else ())
    results = []
    for each in prepared:
        if not isinstance(each, operations.Change):
            results.append(_failed(each))
            continue
        value, error = next(outcomes)
        results.append(_failed(error) if error is not None else _succeeded(each.reply(value)))
    return pb.ApplyBatchResponse(results=results)


def _prepare(
    caller: operations.Caller, operation: pb.BatchOperation
) -> operations.Change[Any] | MetadataError:
    """The operation's change, applied once for its request id; or why it cannot run."""
    try:
        which = operation.WhichOneof("op")
        if which is None:
            raise InvalidArgument("the operation names no change")
        kind = KINDS[which]
        request = _with_request_id(getattr(operation, which), operation.request_id)
        change = kind.decode(caller, request)
        key = request_key(kind.method, request)
    except MetadataError as error:
        return error
    return change if key is None else replace(change, body=requests.once(key, change.body))


def _with_request_id(request: Message, request_id: str) -> Message:
    """The request as its own RPC would carry it: with the operation's request id."""
    own = getattr(request, "request_id", "")
    if own == request_id:
        return request
    if own:
        raise InvalidArgument(
            "the request's request_id differs from its operation's: leave it empty or the same"
        )
    copy = type(request)()
    copy.CopyFrom(request)
    copy.request_id = request_id  # type: ignore[attr-defined]
    return copy


def _succeeded(reply: Message) -> pb.BatchResult:
    result = pb.BatchResult()
    getattr(result, _VALUE_FIELD[type(reply)]).CopyFrom(reply)
    return result


def _failed(error: Exception) -> pb.BatchResult:
    """The status the operation's own RPC would have ended with."""
    if not isinstance(error, MetadataError):
        # A fault of metad, not of the request: undone alone, as in group commit.
        log.error("an operation of a batch failed", exc_info=error)
        return pb.BatchResult(
            code=grpc.StatusCode.INTERNAL.value[0], message="internal error", reason="internal"
        )
    return pb.BatchResult(
        code=status_of(error).value[0],
        message=str(error),
        reason=error.reason,
        current_revision=error.current if isinstance(error, StaleRevision) else 0,
    )
