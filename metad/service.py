"""The drive.v1.Metadata servicer: protobuf in, domain calls, protobuf out.

Owns the handlers of the reads, the block grants handed out with revisions,
and running the write requests: each one's decoding (what it means, the
check of a commit's upload receipts with the key held here) is
operations.py's, shared with ApplyBatch (batch.py). Wire forms of domain
values are wire.py's. Errors are mapped to status codes in one place,
handlers.py. Holds no SQL and no namespace rules: those are the store's.

The caller is the user of the call's token (protos.auth's interceptor has
verified it before a handler runs). The handlers of storage maintenance
(garbage collection fence, scrub, damage, revocations) are in
storage_service.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from metad import batch, changes, operations, wire
from metad.errors import InvalidArgument
from metad.handlers import maps_errors
from metad.models import Actor, Revision
from metad.security import RevocationBoard
from metad.storage_service import StorageHandlers
from metad.store import Store
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc

# How long the block grants of a GetRevision answer let the caller download.
GRANT_TTL_SECONDS = 3600


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
        self._reads = changes.SharedReads(store.read_changes)
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
        return wire.revision_to_proto(revision, grants, expires, issued_ms)

    def _operations_caller(self) -> operations.Caller:
        """The caller of this call, as the decoders of its write requests need it."""
        return operations.Caller(auth.caller().user_id, self._key, self._store.quiet_ns)

    async def _apply(self, decode: operations.Decode, request: Any) -> Any:
        """One write request as its own RPC: decoded, run as one write, answered."""
        change = decode(self._operations_caller(), request)
        return change.reply(await self._store.write(change.body))

    @maps_errors
    async def GetRoot(
        self, request: pb.GetRootRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        caller = _caller(context)
        return wire.node_to_proto(await self._store.get_root(caller.user_id), caller.user_id)

    @maps_errors
    async def Lookup(self, request: pb.LookupRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        caller = _caller(context)
        node = await self._store.lookup(caller.user_id, request.parent_id, request.name)
        return wire.node_to_proto(node, caller.user_id)

    @maps_errors
    async def Stat(self, request: pb.StatRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        caller = _caller(context)
        return wire.node_to_proto(
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
            entries=[wire.node_to_proto(node, caller.user_id) for node in page.entries],
            more=page.more,
        )

    @maps_errors
    async def MakeDirectory(
        self, request: pb.MakeDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.make_directory, request)

    @maps_errors
    async def CreateFile(
        self, request: pb.CreateFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.create_file, request)

    @maps_errors
    async def CreateSymlink(
        self, request: pb.CreateSymlinkRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.create_symlink, request)

    @maps_errors
    async def MakeNode(
        self, request: pb.MakeNodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.make_node, request)

    @maps_errors
    async def CommitRevision(
        self, request: pb.CommitRevisionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.commit_revision, request)

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
        return pb.ListRevisionsResponse(revisions=[wire.revision_to_proto(r) for r in revisions])

    @maps_errors
    async def Rename(
        self, request: pb.RenameRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenameResponse:
        return await self._apply(operations.rename, request)

    @maps_errors
    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        return await self._apply(operations.delete, request)

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
        return await self._apply(operations.set_xattr, request)

    @maps_errors
    async def RemoveXattr(
        self, request: pb.RemoveXattrRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.remove_xattr, request)

    @maps_errors
    async def Link(self, request: pb.LinkRequest, context: grpc.aio.ServicerContext) -> pb.Node:
        return await self._apply(operations.link, request)

    @maps_errors
    async def SetAttributes(
        self, request: pb.SetAttributesRequest, context: grpc.aio.ServicerContext
    ) -> pb.Node:
        return await self._apply(operations.set_attributes, request)

    @maps_errors
    async def MarkAccessed(
        self, request: pb.MarkAccessedRequest, context: grpc.aio.ServicerContext
    ) -> pb.MarkAccessedResponse:
        user_id = _caller(context).user_id
        nodes = await self._store.mark_accessed(user_id, list(request.node_ids))
        return pb.MarkAccessedResponse(nodes=[wire.node_to_proto(n, user_id) for n in nodes])

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
        return wire.node_to_proto(node, caller.user_id)

    @maps_errors
    async def Share(
        self, request: pb.ShareRequest, context: grpc.aio.ServicerContext
    ) -> pb.ShareInfo:
        caller = _caller(context, request.device)
        role = wire.ROLE_FROM_PROTO.get(request.role)
        if role is None:
            raise InvalidArgument("a share gives ROLE_READ or ROLE_WRITE")
        share = await self._store.share(caller, request.node_id, request.user_name, role)
        return wire.share_to_proto(share, caller.user_id)

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
        return pb.ListSharesResponse(
            shares=[wire.share_to_proto(s, caller.user_id) for s in shares]
        )

    @maps_errors
    async def ListSharedWithMe(
        self, request: pb.ListSharedWithMeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSharesResponse:
        caller = _caller(context)
        shares = await self._store.shared_with_me(caller.user_id)
        return pb.ListSharesResponse(
            shares=[wire.share_to_proto(s, caller.user_id) for s in shares]
        )

    @maps_errors
    async def ListTrash(
        self, request: pb.ListTrashRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTrashResponse:
        caller = _caller(context)
        entries = await self._store.list_trash(caller.user_id, self._trash_ns)
        return pb.ListTrashResponse(
            entries=[
                pb.TrashEntry(
                    node=wire.node_to_proto(e.node, caller.user_id),
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
            node=wire.node_to_proto(restored.node, caller.user_id),
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
                    kind=wire.NODE_KIND[e.kind],
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
            node=wire.node_to_proto(restored.node, caller.user_id),
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

    @maps_errors
    async def ReserveNodeIds(
        self, request: pb.ReserveNodeIdsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReserveNodeIdsResponse:
        caller = _caller(context)
        first, count = await self._store.reserve_node_ids(caller.user_id, request.count)
        return pb.ReserveNodeIdsResponse(first=first, count=count)

    @maps_errors
    async def ApplyBatch(
        self, request: pb.ApplyBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyBatchResponse:
        return await batch.apply(self._store, self._operations_caller(), request)

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ChangeEvent]:
        caller = _caller(context)
        read = functools.partial(self._reads, caller.user_id)
        if not request.batched:
            async for event in changes.follow(read, self._commits, request.from_sequence):
                yield wire.event_to_proto(event)
            return
        async for events in changes.follow_pages(read, self._commits, request.from_sequence):
            first = wire.event_to_proto(events[0])
            first.following.extend(wire.event_to_proto(e) for e in events[1:])
            yield first
