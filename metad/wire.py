"""Wire values of the Metadata API: protobuf messages to and from domain values.

Owns the mapping of enums and the conversions every servicer module shares
(service.py, operations.py, batch.py), so a node or an event has one wire
form. Must not: hold behaviour, or reach the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metad import links
from metad.models import (
    ChangeEvent,
    ChangeKind,
    Node,
    NodeKind,
    Ownership,
    Revision,
    Role,
    Share,
)
from protos.drive.v1 import metadata_pb2 as pb

NODE_KIND = {
    NodeKind.DIRECTORY: pb.NODE_KIND_DIRECTORY,
    NodeKind.FILE: pb.NODE_KIND_FILE,
    NodeKind.SYMLINK: pb.NODE_KIND_SYMLINK,
    NodeKind.FIFO: pb.NODE_KIND_FIFO,
    NodeKind.CHAR_DEVICE: pb.NODE_KIND_CHAR_DEVICE,
    NodeKind.BLOCK_DEVICE: pb.NODE_KIND_BLOCK_DEVICE,
    NodeKind.SOCKET: pb.NODE_KIND_SOCKET,
}
NODE_KIND_FROM_PROTO = {number: kind for kind, number in NODE_KIND.items()}
ROLE = {Role.READ: pb.ROLE_READ, Role.WRITE: pb.ROLE_WRITE, Role.OWNER: pb.ROLE_OWNER}
ROLE_FROM_PROTO = {number: role for role, number in ROLE.items()}
_CHANGE_KIND = {
    ChangeKind.CREATED: pb.CHANGE_KIND_CREATED,
    ChangeKind.EDITED: pb.CHANGE_KIND_EDITED,
    ChangeKind.MOVED: pb.CHANGE_KIND_MOVED,
    ChangeKind.DELETED: pb.CHANGE_KIND_DELETED,
    ChangeKind.ATTRIBUTES: pb.CHANGE_KIND_ATTRIBUTES,
    ChangeKind.RESTORED: pb.CHANGE_KIND_RESTORED,
    ChangeKind.SHARED: pb.CHANGE_KIND_SHARED,
    ChangeKind.UNSHARED: pb.CHANGE_KIND_UNSHARED,
    ChangeKind.DAMAGED: pb.CHANGE_KIND_DAMAGED,
    ChangeKind.LINKED: pb.CHANGE_KIND_LINKED,
    ChangeKind.UNLINKED: pb.CHANGE_KIND_UNLINKED,
}


def node_to_proto(node: Node, user_id: int) -> pb.Node:
    role = node.role or (Role.OWNER if node.owner_id == user_id else None)
    return pb.Node(
        id=node.id,
        parent_id=node.parent_id or 0,
        name=node.name,
        kind=NODE_KIND[node.kind],
        mode=node.mode,
        size=node.size,
        mtime_ns=node.mtime_ns,
        ctime_ns=node.ctime_ns,
        revision=node.revision,
        symlink_target=node.symlink_target or "",
        owner_id=node.owner_id,
        role=pb.ROLE_UNSPECIFIED if role is None else ROLE[role],
        change_sequence=node.change_sequence,
        uid=node.uid,
        gid=node.gid,
        rdev=node.rdev,
        atime_ns=node.atime_ns or 0,
        nlink=2 + node.subdirectories if node.kind is NodeKind.DIRECTORY else 1 + node.links,
        entry_id=links.entry_id(node),
        xattrs=node.xattrs,
    )


def ownership(request: Any) -> Ownership:
    """The uid and gid a request sets (each optional: None when not given)."""
    return Ownership(
        request.uid if request.HasField("uid") else None,
        request.gid if request.HasField("gid") else None,
    )


def share_to_proto(share: Share, user_id: int) -> pb.ShareInfo:
    return pb.ShareInfo(
        node=node_to_proto(share.node, user_id),
        path=share.path,
        owner_id=share.owner_id,
        owner_name=share.owner_name,
        user_id=share.user_id,
        user_name=share.user_name,
        role=ROLE[share.role],
        created_ns=share.created_ns,
    )


def revision_to_proto(
    revision: Revision, grants: Sequence[bytes] = (), expires_s: int = 0, issued_ms: int = 0
) -> pb.Revision:
    blocks = revision.blocks
    return pb.Revision(
        grants_expire_s=expires_s,
        grants_issued_ms=issued_ms,
        node_id=revision.node_id,
        number=revision.number,
        size=revision.size,
        mtime_ns=revision.mtime_ns,
        mode=revision.mode,
        author_id=revision.author_id,
        device=revision.device,
        created_ns=revision.created_ns,
        blocks=[
            pb.BlockRef(hash=b.hash, offset=b.offset, size=b.size, grant=g)
            for b, g in zip(blocks, grants or [b""] * len(blocks), strict=True)
        ],
    )


def event_to_proto(event: ChangeEvent) -> pb.ChangeEvent:
    return pb.ChangeEvent(
        sequence=event.sequence,
        kind=_CHANGE_KIND[event.kind],
        node_id=event.node_id,
        node_kind=NODE_KIND[event.node_kind],
        parent_id=event.parent_id or 0,
        name=event.name,
        old_parent_id=event.old_parent_id or 0,
        old_name=event.old_name or "",
        revision=event.revision,
        actor_id=event.actor_id,
        device=event.device,
        time_ns=event.time_ns,
        replaced_node_id=event.replaced_node_id or 0,
        actor_name=event.actor_name,
        path=event.path,
        shared=event.shared,
        owner_id=event.owner_id,
        subject_user_id=event.subject_user_id or 0,
        subject_name=event.subject_name,
        role=pb.ROLE_UNSPECIFIED if event.role is None else ROLE[event.role],
    )
