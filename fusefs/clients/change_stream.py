"""The change stream of metad (Subscribe) as domain values.

Owns: one live Subscribe call, read in the thread that iterates it, each
event turned into a fusefs.models.Change (several may come in one message: a
batched subscription), and its end (cancel; a stream
cancelled here ends quietly, any other failure is a domain error).

Must not: hand events to trio or decide what a change means (the mount's
follower does), or set a deadline: the stream is live.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from fusefs.clients.rpc import translate
from fusefs.models import Change, ChangeKind, Kind, Role
from protos.drive.v1 import metadata_pb2


class ChangeStream:
    """Iterates change events of one Subscribe call (no deadline: it is live)."""

    def __init__(self, call: grpc.Call) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Change]:
        try:
            for msg in self._call:
                yield to_change(msg)
                for following in msg.following:  # (a batched subscription)
                    yield to_change(following)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise translate(exc) from None

    def cancel(self) -> None:
        self._call.cancel()


def to_change(msg: metadata_pb2.ChangeEvent) -> Change:
    return Change(
        sequence=msg.sequence,
        kind=ChangeKind(msg.kind),
        node_id=msg.node_id,
        node_kind=Kind(msg.node_kind) if msg.node_kind else Kind.FILE,
        parent_id=msg.parent_id,
        name=msg.name,
        old_parent_id=msg.old_parent_id,
        old_name=msg.old_name,
        revision=msg.revision,
        device=msg.device,
        replaced_node_id=msg.replaced_node_id,
        actor_id=msg.actor_id,
        actor_name=msg.actor_name,
        time_ns=msg.time_ns,
        path=msg.path,
        shared=msg.shared,
        owner_id=msg.owner_id,
        subject_user_id=msg.subject_user_id,
        subject_name=msg.subject_name,
        role=Role(msg.role),
    )
