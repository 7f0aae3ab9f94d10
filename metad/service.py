"""The drive.v1.Metadata servicer: protobuf in, domain calls, protobuf out.

Owns the translation between wire messages and domain values, the block
grants handed out with revisions, and the check of upload receipts a commit
carries (the key is here; the store decides with them). Errors are mapped to
status codes in one place, handlers.py. Holds no SQL and no namespace rules:
those are the store's.

The caller is the user of the call's token (protos.auth's interceptor has
verified it before a handler runs). The handlers of storage maintenance
(garbage collection fence, scrub, damage, revocations) are in
storage_service.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from metad import changes, links, rules
from metad.errors import InvalidArgument
from metad.handlers import maps_errors
from metad.models import (
    Actor,
    AttributeChange,
    BlockRef,
    ChangeEvent,
    ChangeKind,
    Node,
    NodeKind,
    Ownership,
    Revision,
    Role,
    Share,
)
from metad.security import RevocationBoard
from metad.storage_service import StorageHandlers
from metad.store import Store
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc

# How long the block grants of a GetRevision answer let the caller download.
GRANT_TTL_SECONDS = 3600

_NODE_KIND = {
    NodeKind.DIRECTORY: pb.NODE_KIND_DIRECTORY,
    NodeKind.FILE: pb.NODE_KIND_FILE,
    NodeKind.SYMLINK: pb.NODE_KIND_SYMLINK,
    NodeKind.FIFO: pb.NODE_KIND_FIFO,
    NodeKind.CHAR_DEVICE: pb.NODE_KIND_CHAR_DEVICE,
    NodeKind.BLOCK_DEVICE: pb.NODE_KIND_BLOCK_DEVICE,
    NodeKind.SOCKET: pb.NODE_KIND_SOCKET,
}
_NODE_KIND_FROM_PROTO = {number: kind for kind, number in _NODE_KIND.items()}
_ROLE = {Role.READ: pb.ROLE_READ, Role.WRITE: pb.ROLE_WRITE, Role.OWNER: pb.ROLE_OWNER}
_ROLE_FROM_PROTO = {number: role for role, number in _ROLE.items()}
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
        kind=_NODE_KIND[node.kind],
        mode=node.mode,
        size=node.size,
        mtime_ns=node.mtime_ns,
        ctime_ns=node.ctime_ns,
        revision=node.revision,
        symlink_target=node.symlink_target or "",
        owner_id=node.owner_id,
        role=pb.ROLE_UNSPECIFIED if role is None else _ROLE[role],
        change_sequence=node.change_sequence,
        uid=node.uid,
        gid=node.gid,
        rdev=node.rdev,
        atime_ns=node.atime_ns or 0,
        nlink=2 + node.subdirectories if node.kind is NodeKind.DIRECTORY else 1 + node.links,
        entry_id=links.entry_id(node),
        xattrs=node.xattrs,
    )


def _ownership(request: Any) -> Ownership:
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
        role=_ROLE[share.role],
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
        node_kind=_NODE_KIND[event.node_kind],
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
        role=pb.ROLE_UNSPECIFIED if event.role is None else _ROLE[event.role],
    )


def _caller(context: grpc.aio.ServicerContext, device: str = "") -> Actor:
    """Who is calling: the user of the verified token, from the device they name."""
    return Actor(user_id=auth.caller().user_id, device=device)


class MetadataService(StorageHandlers, metadata_pb2_grpc.MetadataServicer):
    def __init__(
        self,
        store: Store,
        commits: changes.CommitSignal,
        key: auth.AuthKey,
        grant_ttl_seconds: int = GRANT_TTL_SECONDS,
        trash_ns: int = 0,
        board: RevocationBoard | None = None,
    ) -> None:
        self._store = store
        self._commits = commits
        self._key = key
        self._grant_ttl = grant_ttl_seconds
        self._trash_ns = trash_ns  # how long the trash keeps a node (0 = until emptied)
        self._board = board or RevocationBoard()

    def _with_grants(self, user_id: int, revision: Revision, issued_ms: int) -> pb.Revision:
        """The revision with a grant per block, so the caller can download them.

        issued_ms: when the caller's access was checked (taken before the
        read), so a revocation committed meanwhile refuses these grants.
        """
        expires = int(time.time()) + self._grant_ttl
        grants = self._key.grants(user_id, issued_ms, expires, (b.hash for b in revision.blocks))
        return revision_to_proto(revision, grants, expires, issued_ms)

    def _vouched(self, user_id: int, blocks: Sequence[pb.BlockRef]) -> list[BlockRef]:
        """The blocks as domain values, each marked if its receipt is valid for user_id."""
        rules.check_block_count(len(blocks))
        check = self._key.check_receipt
        return [
            BlockRef(
                hash=b.hash,
                offset=b.offset,
                size=b.size,
                vouched=bool(b.receipt) and check(user_id, b.hash, b.size, b.receipt),
            )
            for b in blocks
        ]

    @maps_errors
    async def GetRoot(
        self, request: pb.GetRootRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context)
        return node_to_proto(await self._store.get_root(caller.user_id), caller.user_id)

    @maps_errors
    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        caller = _caller(context)
        node = await self._store.lookup(caller.user_id, request.parent_id, request.name)
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def Stat(self, request: pb.StatRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        caller = _caller(context)
        return node_to_proto(
            await self._store.stat(caller.user_id, request.node_id), caller.user_id
        )

    @maps_errors
    async def ListDirectory(
        self, request: pb.ListDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDirectoryResponse:
        caller = _caller(context)
        page = await self._store.list_directory(
            caller.user_id, request.node_id, request.after_id, request.page_size
        )
        return pb.ListDirectoryResponse(
            entries=[node_to_proto(node, caller.user_id) for node in page.entries],
            more=page.more,
        )

    @maps_errors
    async def MakeDirectory(
        self, request: pb.MakeDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.make_directory(
            caller,
            request.parent_id,
            request.name,
            request.mode,
            request.mtime_ns,
            _ownership(request),
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def CreateFile(
        self, request: pb.CreateFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.create_file(
            caller,
            request.parent_id,
            request.name,
            request.mode,
            request.mtime_ns,
            _ownership(request),
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def CreateSymlink(
        self, request: pb.CreateSymlinkRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.create_symlink(
            caller, request.parent_id, request.name, request.target, _ownership(request)
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def MakeNode(
        self, request: pb.MakeNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        kind = _NODE_KIND_FROM_PROTO.get(request.kind)
        if kind is None:
            raise InvalidArgument(f"unknown node kind {request.kind}")
        node = await self._store.make_node(
            caller,
            request.parent_id,
            request.name,
            kind,
            request.mode,
            request.rdev,
            _ownership(request),
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def CommitRevision(
        self, request: pb.CommitRevisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.commit_revision(
            caller,
            request.node_id,
            request.base_revision,
            request.size,
            request.mtime_ns,
            self._vouched(caller.user_id, request.blocks),
            AttributeChange(
                mode=request.mode if request.HasField("mode") else None,
                atime_ns=request.atime_ns if request.HasField("atime_ns") else None,
                owner=_ownership(request),
            ),
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def GetRevision(
        self, request: pb.GetRevisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Revision:
        caller = _caller(context)
        issued_ms = time.time_ns() // 1_000_000
        revision = await self._store.get_revision(caller.user_id, request.node_id, request.number)
        return self._with_grants(caller.user_id, revision, issued_ms)

    @maps_errors
    async def ListRevisions(
        self, request: pb.ListRevisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRevisionsResponse:
        caller = _caller(context)
        revisions = await self._store.list_revisions(caller.user_id, request.node_id)
        return pb.ListRevisionsResponse(revisions=[revision_to_proto(r) for r in revisions])

    @maps_errors
    async def Rename(
        self, request: pb.RenameRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenameResponse:
        caller = _caller(context, request.device)
        if request.exchange:
            if request.no_replace:
                raise InvalidArgument("exchange and no_replace exclude each other")
            moved, other = await self._store.exchange(
                caller, request.parent_id, request.name, request.new_parent_id, request.new_name
            )
            return pb.RenameResponse(
                node=node_to_proto(moved, caller.user_id),
                replaced_node_id=other.id if other.id != moved.id else 0,
                replaced_remains=True,
            )
        node, replaced, remains, saved_from = await self._store.rename(
            caller,
            request.parent_id,
            request.name,
            request.new_parent_id,
            request.new_name,
            no_replace=request.no_replace,
        )
        return pb.RenameResponse(
            node=node_to_proto(node, caller.user_id),
            replaced_node_id=replaced or 0,
            replaced_remains=remains,
            saved_from=saved_from or 0,
        )

    @maps_errors
    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        caller = _caller(context, request.device)
        node_id, remains = await self._store.delete(
            caller, request.parent_id, request.name, directory=request.directory
        )
        return pb.DeleteResponse(node_id=node_id, remains=remains)

    @maps_errors
    async def GetXattrs(
        self, request: pb.GetXattrsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetXattrsResponse:
        caller = _caller(context)
        found = await self._store.get_xattrs(caller.user_id, request.node_id)
        return pb.GetXattrsResponse(
            xattrs=[pb.Xattr(name=name, value=value) for name, value in found.items()]
        )

    @maps_errors
    async def SetXattr(
        self, request: pb.SetXattrRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.set_xattr(
            caller, request.node_id, request.name, request.value, int(request.how)
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def RemoveXattr(
        self, request: pb.RemoveXattrRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.remove_xattr(caller, request.node_id, request.name)
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def Link(self, request: pb.LinkRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.link(
            caller, request.node_id, request.new_parent_id, request.new_name
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def SetAttributes(
        self, request: pb.SetAttributesRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.set_attributes(
            caller,
            request.node_id,
            mode=request.mode if request.HasField("mode") else None,
            mtime_ns=request.mtime_ns if request.HasField("mtime_ns") else None,
            atime_ns=request.atime_ns if request.HasField("atime_ns") else None,
            owner=_ownership(request),
        )
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def MarkAccessed(
        self, request: pb.MarkAccessedRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkAccessedResponse:
        user_id = _caller(context).user_id
        nodes = await self._store.mark_accessed(user_id, list(request.node_ids))
        return pb.MarkAccessedResponse(nodes=[node_to_proto(n, user_id) for n in nodes])

    @maps_errors
    async def GetUsage(
        self, request: pb.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.Usage:
        caller = _caller(context)
        usage = await self._store.get_usage(caller.user_id)
        return pb.Usage(
            used_bytes=usage.used_bytes,
            quota_bytes=usage.quota_bytes,
            node_count=usage.node_count,
        )

    @maps_errors
    async def GetJournalHead(
        self, request: pb.GetJournalHeadRequest, context: grpc.aio.ServicerContext
    ) -> pb.JournalHead:
        return pb.JournalHead(sequence=await self._store.journal_head())

    @maps_errors
    async def RestoreRevision(
        self, request: pb.RestoreRevisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context, request.device)
        node = await self._store.restore_revision(caller, request.node_id, request.number)
        return node_to_proto(node, caller.user_id)

    @maps_errors
    async def Share(
        self, request: pb.ShareRequest, context: grpc.aio.ServicerContext
    ) -> pb.ShareInfo:
        caller = _caller(context, request.device)
        role = _ROLE_FROM_PROTO.get(request.role)
        if role is None:
            raise InvalidArgument("a share gives ROLE_READ or ROLE_WRITE")
        share = await self._store.share(caller, request.node_id, request.user_name, role)
        return share_to_proto(share, caller.user_id)

    @maps_errors
    async def Unshare(
        self, request: pb.UnshareRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnshareResponse:
        caller = _caller(context, request.device)
        removed = await self._store.unshare(caller, request.node_id, request.user_name)
        self._board.publish(await self._store.revocations())
        return pb.UnshareResponse(removed=removed)

    @maps_errors
    async def ListShares(
        self, request: pb.ListSharesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSharesResponse:
        caller = _caller(context)
        shares = await self._store.list_shares(caller.user_id, request.node_id)
        return pb.ListSharesResponse(shares=[share_to_proto(s, caller.user_id) for s in shares])

    @maps_errors
    async def ListSharedWithMe(
        self, request: pb.ListSharedWithMeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSharesResponse:
        caller = _caller(context)
        shares = await self._store.shared_with_me(caller.user_id)
        return pb.ListSharesResponse(shares=[share_to_proto(s, caller.user_id) for s in shares])

    @maps_errors
    async def ListTrash(
        self, request: pb.ListTrashRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTrashResponse:
        caller = _caller(context)
        entries = await self._store.list_trash(caller.user_id, self._trash_ns)
        return pb.ListTrashResponse(
            entries=[
                pb.TrashEntry(
                    node=node_to_proto(e.node, caller.user_id),
                    path=e.path,
                    deleted_ns=e.deleted_ns,
                    purge_ns=e.purge_ns,
                )
                for e in entries
            ]
        )

    @maps_errors
    async def RestoreFromTrash(
        self, request: pb.RestoreFromTrashRequest, context: grpc.aio.ServicerContext
    ) -> pb.RestoreFromTrashResponse:
        caller = _caller(context, request.device)
        restored = await self._store.restore_from_trash(caller, request.node_id)
        return pb.RestoreFromTrashResponse(
            node=node_to_proto(restored.node, caller.user_id),
            path=restored.path,
            restored=restored.files,
        )

    @maps_errors
    async def ListSnapshot(
        self, request: pb.ListSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSnapshotResponse:
        caller = _caller(context)
        entries = await self._store.list_snapshot(caller.user_id, request.node_id, request.time_ns)
        return pb.ListSnapshotResponse(
            entries=[
                pb.SnapshotEntry(
                    node_id=e.node_id,
                    name=e.name,
                    kind=_NODE_KIND[e.kind],
                    size=e.size,
                    mtime_ns=e.mtime_ns,
                    revision=e.revision,
                    content_kept=e.content_kept,
                    symlink_target=e.symlink_target or "",
                )
                for e in entries
            ]
        )

    @maps_errors
    async def RestoreSnapshot(
        self, request: pb.RestoreSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.RestoreSnapshotResponse:
        caller = _caller(context, request.device)
        restored = await self._store.restore_snapshot(caller, request.node_id, request.time_ns)
        return pb.RestoreSnapshotResponse(
            node=node_to_proto(restored.node, caller.user_id),
            path=restored.path,
            files=restored.files,
            directories=restored.directories,
            skipped=restored.skipped,
        )

    @maps_errors
    async def EmptyTrash(
        self, request: pb.EmptyTrashRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmptyTrashResponse:
        caller = _caller(context)
        nodes, size = await self._store.empty_trash(caller.user_id)
        return pb.EmptyTrashResponse(nodes=nodes, bytes=size)

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ChangeEvent]:
        caller = _caller(context)
        read = functools.partial(self._store.read_changes, caller.user_id)
        async for event in changes.follow(read, self._commits, request.from_sequence):
            yield event_to_proto(event)
