"""The write requests of the Metadata API, each decoded once: for its RPC and for ApplyBatch.

Owns, for every change a client can also send in a batch, the step from its
request message to the store's change (a body from namespace.py or edits.py,
with the caller, their device and the receipts of a commit's blocks) and the
step from the change's result to its reply message. service.py runs one such
change per call; batch.py runs many in one transaction. Neither repeats what
a request means, so a change behaves the same whichever way it comes.

Must not: run a change (the servicer does, through the store), hold SQL, or
map errors to status codes (handlers.py does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from metad import edits, namespace, plain, rules, wire
from metad.errors import InvalidArgument
from metad.models import Actor, AttributeChange, BlockRef, Node
from metad.transaction import Write
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb

R = TypeVar("R")


@dataclass(frozen=True)
class Caller:
    """Who sends the requests, and what decoding them takes from the servicer."""

    user_id: int
    key: auth.AuthKey  # checks the upload receipts a commit carries
    quiet_ns: int  # the store's quiet-trash window (Delete)

    def actor(self, device: str) -> Actor:
        return Actor(user_id=self.user_id, device=device)

    def node(self, node: Node) -> pb.Node:
        return wire.node_to_proto(node, self.user_id)

    def vouched(self, blocks: Sequence[pb.BlockRef]) -> list[BlockRef]:
        """The blocks as domain values, each marked if its receipt is valid for the caller."""
        rules.check_block_count(len(blocks))
        check = self.key.check_receipt
        return [
            BlockRef(
                hash=b.hash,
                offset=b.offset,
                size=b.size,
                vouched=bool(b.receipt) and check(self.user_id, b.hash, b.size, b.receipt),
            )
            for b in blocks
        ]


@dataclass(frozen=True)
class Change(Generic[R]):
    """A decoded write request: the body to run in a transaction, and its reply."""

    body: Write[R]
    reply: Callable[[R], Message]


# Decodes one kind of request for a caller; raises a domain error for a request
# that fails the pure rules (a bad name, too many blocks), before any write.
Decode = Callable[[Caller, Any], Change[Any]]


def _node_id(request: Any) -> int | None:
    """The reserved id a create asks for (None: the next free one)."""
    return request.node_id if request.HasField("node_id") else None


def _plain(make: Callable[..., Write[Node]]) -> Callable[[Caller, Any], Change[Node]]:
    """The decoder of MakeDirectory or CreateFile (their requests have the same fields)."""

    def decode(
        caller: Caller, request: pb.MakeDirectoryRequest | pb.CreateFileRequest
    ) -> Change[Node]:
        return Change(make(*_entry_arguments(caller, request)), caller.node)

    return decode


def _entry_arguments(
    caller: Caller, request: pb.MakeDirectoryRequest | pb.CreateFileRequest
) -> tuple:
    """What namespace.make_directory and create_file (and plain.PlainCreate) take, in order."""
    return (
        caller.actor(request.device),
        request.parent_id,
        request.name,
        request.mode,
        request.mtime_ns,
        wire.ownership(request),
        _node_id(request),
    )


make_directory = _plain(namespace.make_directory)
_create_file = _plain(namespace.create_file)


def create_file(caller: Caller, request: pb.CreateFileRequest) -> Change[Node]:
    """CreateFile; with a reserved id, a change that a batch may write set-based (bulk.py)."""
    change = _create_file(caller, request)
    if _node_id(request) is None:
        return change
    as_plain = plain.PlainCreate(change.body, *_entry_arguments(caller, request))
    return Change(as_plain, change.reply)


def create_symlink(caller: Caller, request: pb.CreateSymlinkRequest) -> Change[Node]:
    body = namespace.create_symlink(
        caller.actor(request.device),
        request.parent_id,
        request.name,
        request.target,
        wire.ownership(request),
        _node_id(request),
        request.mtime_ns,
    )
    return Change(body, caller.node)


def make_node(caller: Caller, request: pb.MakeNodeRequest) -> Change[Node]:
    kind = wire.NODE_KIND_FROM_PROTO.get(request.kind)
    if kind is None:
        raise InvalidArgument(f"unknown node kind {request.kind}")
    body = namespace.make_node(
        caller.actor(request.device),
        request.parent_id,
        request.name,
        kind,
        request.mode,
        request.rdev,
        wire.ownership(request),
        _node_id(request),
    )
    return Change(body, caller.node)


def commit_revision(caller: Caller, request: pb.CommitRevisionRequest) -> Change[Node]:
    """CommitRevision, as a change that a batch may write set-based (bulk.py)."""
    blocks = caller.vouched(request.blocks)
    attributes = AttributeChange(
        mode=request.mode if request.HasField("mode") else None,
        atime_ns=request.atime_ns if request.HasField("atime_ns") else None,
        owner=wire.ownership(request),
    )
    actor = caller.actor(request.device)
    body = edits.commit_revision(
        actor,
        request.node_id,
        request.base_revision,
        request.size,
        request.mtime_ns,
        blocks,
        attributes,
    )
    as_plain = plain.PlainCommit(
        body,
        actor,
        request.node_id,
        request.base_revision,
        request.size,
        request.mtime_ns,
        tuple(blocks),
        attributes,
    )
    return Change(as_plain, caller.node)


def rename(caller: Caller, request: pb.RenameRequest) -> Change[Any]:
    """A move, or with exchange a swap of two entries (RENAME_EXCHANGE)."""
    actor = caller.actor(request.device)
    if request.exchange:
        if request.no_replace:
            raise InvalidArgument("exchange and no_replace exclude each other")

        def swapped(nodes: tuple[Node, Node]) -> pb.RenameResponse:
            moved, other = nodes
            return pb.RenameResponse(
                node=caller.node(moved),
                replaced_node_id=other.id if other.id != moved.id else 0,
                replaced_remains=True,
            )

        exchange = namespace.exchange(
            actor, request.parent_id, request.name, request.new_parent_id, request.new_name,
            expect_id=request.node_id if request.HasField("node_id") else None,
        )  # fmt: skip
        return Change(exchange, swapped)

    def moved(renamed: namespace.Renamed) -> pb.RenameResponse:
        node, replaced, remains, saved_from = renamed
        return pb.RenameResponse(
            node=caller.node(node),
            replaced_node_id=replaced or 0,
            replaced_remains=remains,
            saved_from=saved_from or 0,
        )

    move = namespace.rename(
        actor,
        request.parent_id,
        request.name,
        request.new_parent_id,
        request.new_name,
        no_replace=request.no_replace,
        expect_id=request.node_id if request.HasField("node_id") else None,
    )
    return Change(move, moved)


def delete(caller: Caller, request: pb.DeleteRequest) -> Change[tuple[int, bool]]:
    body = namespace.delete(
        caller.actor(request.device),
        request.parent_id,
        request.name,
        directory=request.directory,
        quiet_ns=caller.quiet_ns,
        expect_id=request.node_id if request.HasField("node_id") else None,
    )
    return Change(body, lambda done: pb.DeleteResponse(node_id=done[0], remains=done[1]))


def link(caller: Caller, request: pb.LinkRequest) -> Change[Node]:
    body = namespace.link(
        caller.actor(request.device), request.node_id, request.new_parent_id, request.new_name
    )
    return Change(body, caller.node)


def set_attributes(caller: Caller, request: pb.SetAttributesRequest) -> Change[Node]:
    body = edits.set_attributes(
        caller.actor(request.device),
        request.node_id,
        mode=request.mode if request.HasField("mode") else None,
        mtime_ns=request.mtime_ns if request.HasField("mtime_ns") else None,
        atime_ns=request.atime_ns if request.HasField("atime_ns") else None,
        owner=wire.ownership(request),
        changed_ns=request.changed_ns if request.HasField("changed_ns") else None,
    )
    return Change(body, caller.node)


def set_xattr(caller: Caller, request: pb.SetXattrRequest) -> Change[Node]:
    body = edits.set_xattr(
        caller.actor(request.device), request.node_id, request.name, request.value, int(request.how)
    )
    return Change(body, caller.node)


def remove_xattr(caller: Caller, request: pb.RemoveXattrRequest) -> Change[Node]:
    body = edits.remove_xattr(caller.actor(request.device), request.node_id, request.name)
    return Change(body, caller.node)
