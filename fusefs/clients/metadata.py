"""The metad API (drive.v1.Metadata) as blocking calls on domain values.

Called from trio worker threads by the mount, and by the drive command.
Protobuf stays here; callers see fusefs.models.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from fusefs import errors
from fusefs.clients.proofs import Grant, GrantBook
from fusefs.clients.rpc import (
    CONDEMNED_BATCH,
    STREAM_TIMEOUT,
    UNARY_TIMEOUT,
    Token,
    batches,
    request_id,
    rpc,
    signed_channel,
    status_error,
    translate,
)
from fusefs.models import (
    NO_CHANGE,
    NO_OWNERSHIP,
    AttributeChange,
    AttributesRequest,
    BatchChange,
    BatchOutcome,
    BlockRef,
    Change,
    ChangeKind,
    CommitRequest,
    CreateRequest,
    DeleteRequest,
    Kind,
    LinkRequest,
    Node,
    Ownership,
    Removed,
    Renamed,
    RenameRequest,
    Restored,
    Revision,
    RevisionInfo,
    Role,
    ShareInfo,
    SnapshotEntry,
    TrashEntry,
    Usage,
    XattrRequest,
)
from protos.drive.v1 import (
    metadata_pb2,
    metadata_pb2_grpc,
)
from protos.tls import Trust


def _node(msg: metadata_pb2.Node) -> Node:
    return Node(
        id=msg.id,
        parent_id=msg.parent_id,
        name=msg.name,
        kind=Kind(msg.kind),
        mode=msg.mode,
        size=msg.size,
        mtime_ns=msg.mtime_ns,
        ctime_ns=msg.ctime_ns,
        revision=msg.revision,
        symlink_target=msg.symlink_target,
        change_sequence=msg.change_sequence,
        owner_id=msg.owner_id,
        role=Role(msg.role),
        uid=msg.uid if msg.HasField("uid") else None,
        gid=msg.gid if msg.HasField("gid") else None,
        rdev=msg.rdev,
        atime_ns=msg.atime_ns,
        nlink=msg.nlink or 1,
        entry_id=msg.entry_id or msg.id,
        xattrs=msg.xattrs,
    )


# A create's kind -> its field in BatchOperation.
_CREATE_FIELDS = {
    Kind.FILE: "create_file",
    Kind.DIRECTORY: "make_directory",
    Kind.SYMLINK: "create_symlink",
}


def _renamed(msg: metadata_pb2.RenameResponse) -> Renamed:
    return Renamed(_node(msg.node), msg.replaced_node_id, msg.replaced_remains, msg.saved_from)


def _change(msg: metadata_pb2.ChangeEvent) -> Change:
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


def _share(msg: metadata_pb2.ShareInfo) -> ShareInfo:
    return ShareInfo(
        node=_node(msg.node),
        path=msg.path,
        owner_id=msg.owner_id,
        owner_name=msg.owner_name,
        user_id=msg.user_id,
        user_name=msg.user_name,
        role=Role(msg.role),
        created_ns=msg.created_ns,
    )


class MetadataClient:
    """The metad API as blocking calls on domain values."""

    def __init__(
        self,
        address: str,
        device: str,
        token: Token | None = None,
        grants: GrantBook | None = None,
        *,
        trust: Trust | None = None,
        interceptors: Sequence[object] = (),
    ) -> None:
        self.address = address
        self.device = device
        self._channel = signed_channel(address, token, trust, interceptors)
        self._stub = metadata_pb2_grpc.MetadataStub(self._channel)
        self.grants = grants or GrantBook()
        if self.grants.refresh is None:
            self.grants.refresh = self.get_revision

    def close(self) -> None:
        self._channel.close()

    @rpc
    def root(self) -> Node:
        return _node(self._stub.GetRoot(metadata_pb2.GetRootRequest(), timeout=UNARY_TIMEOUT))

    @rpc
    def lookup(self, parent_id: int, name: str) -> Node:
        req = metadata_pb2.LookupRequest(parent_id=parent_id, name=name)
        return _node(self._stub.Lookup(req, timeout=UNARY_TIMEOUT))

    @rpc
    def stat(self, node_id: int) -> Node:
        req = metadata_pb2.StatRequest(node_id=node_id)
        return _node(self._stub.Stat(req, timeout=UNARY_TIMEOUT))

    @rpc
    def list_directory(
        self, node_id: int, after_id: int = 0, page_size: int = 0
    ) -> tuple[list[Node], bool]:
        req = metadata_pb2.ListDirectoryRequest(
            node_id=node_id, after_id=after_id, page_size=page_size
        )
        resp = self._stub.ListDirectory(req, timeout=UNARY_TIMEOUT)
        return [_node(e) for e in resp.entries], resp.more

    @rpc
    def make_directory(
        self,
        parent_id: int,
        name: str,
        mode: int,
        owner: Ownership = NO_OWNERSHIP,
        node_id: int | None = None,
    ) -> Node:
        """A new empty folder (with node_id: an id ReserveNodeIds gave us)."""
        change = CreateRequest(
            node_id, parent_id, name, mode, owner, 0, request_id(), Kind.DIRECTORY
        )
        req = self._create_message(change)
        return _node(self._stub.MakeDirectory(req, timeout=UNARY_TIMEOUT))

    @rpc
    def create_file(
        self,
        parent_id: int,
        name: str,
        mode: int,
        owner: Ownership = NO_OWNERSHIP,
        node_id: int | None = None,
    ) -> Node:
        """A new empty file (with node_id: an id ReserveNodeIds gave us)."""
        req = self._create_message(
            CreateRequest(node_id, parent_id, name, mode, owner, 0, request_id())
        )
        return _node(self._stub.CreateFile(req, timeout=UNARY_TIMEOUT))

    @rpc
    def reserve_node_ids(self, count: int) -> tuple[int, int]:
        """A range of node ids for this user alone: (first, count)."""
        req = metadata_pb2.ReserveNodeIdsRequest(count=count, request_id=request_id())
        resp = self._stub.ReserveNodeIds(req, timeout=UNARY_TIMEOUT)
        return resp.first, resp.count

    @rpc
    def make_node(
        self,
        parent_id: int,
        name: str,
        kind: Kind,
        mode: int,
        rdev: int = 0,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """A FIFO, a device or a socket."""
        req = metadata_pb2.MakeNodeRequest(
            parent_id=parent_id,
            name=name,
            kind=int(kind),
            mode=mode,
            rdev=rdev,
            uid=owner.uid,
            gid=owner.gid,
            device=self.device,
            request_id=request_id(),
        )
        return _node(self._stub.MakeNode(req, timeout=UNARY_TIMEOUT))

    @rpc
    def create_symlink(
        self,
        parent_id: int,
        name: str,
        target: str,
        owner: Ownership = NO_OWNERSHIP,
        node_id: int | None = None,
    ) -> Node:
        change = CreateRequest(
            node_id, parent_id, name, 0, owner, 0, request_id(), Kind.SYMLINK, target
        )
        req = self._create_message(change)
        return _node(self._stub.CreateSymlink(req, timeout=UNARY_TIMEOUT))

    @rpc
    def commit_revision(
        self,
        node_id: int,
        base_revision: int,
        size: int,
        mtime_ns: int,
        blocks: Iterable[BlockRef],
        attributes: AttributeChange = NO_CHANGE,
    ) -> Node:
        commit = CommitRequest(
            node_id, base_revision, size, mtime_ns, tuple(blocks), attributes, request_id()
        )
        node = _node(self._stub.CommitRevision(self._commit_message(commit), timeout=UNARY_TIMEOUT))
        self.grants.expect(node.id, (b.hash for b in commit.blocks))
        return node

    @rpc
    def apply_batch(self, changes: Sequence[BatchChange]) -> list[BatchOutcome | errors.DriveError]:
        """Many changes in one call and one transaction (ApplyBatch), in order: per
        change, what it did (the node after it; Renamed; Removed) or why it was refused.
        Each keeps its request id across retries (a retry gets the first answers)."""
        operations = [self._batch_operation(c) for c in changes]
        req = metadata_pb2.ApplyBatchRequest(operations=operations)
        resp = self._stub.ApplyBatch(req, timeout=UNARY_TIMEOUT)
        outcomes: list[BatchOutcome | errors.DriveError] = []
        for change, result in zip(changes, resp.results, strict=True):
            if result.code == 0 and isinstance(change, RenameRequest):
                outcomes.append(_renamed(result.rename))
            elif result.code == 0 and isinstance(change, DeleteRequest):
                outcomes.append(Removed(result.delete.node_id, result.delete.remains))
            elif result.code == 0:
                node = _node(result.node)
                if isinstance(change, CommitRequest):
                    self.grants.expect(node.id, (b.hash for b in change.blocks))
                outcomes.append(node)
            else:
                current = result.current_revision if result.current_revision else None
                outcomes.append(status_error(result.code, result.message, result.reason, current))
        return outcomes

    def _batch_operation(self, c: BatchChange) -> metadata_pb2.BatchOperation:
        """One operation of ApplyBatch: the request its own RPC would send."""
        op = metadata_pb2.BatchOperation(request_id=c.request_id)
        if isinstance(c, RenameRequest):
            op.rename.CopyFrom(self._rename_message(c))
        elif isinstance(c, DeleteRequest):
            op.delete.CopyFrom(self._delete_message(c))
        elif isinstance(c, CommitRequest):
            op.commit_revision.CopyFrom(self._commit_message(c))
        elif isinstance(c, AttributesRequest):
            op.set_attributes.CopyFrom(self._attributes_message(c))
        elif isinstance(c, LinkRequest):
            op.link.CopyFrom(
                metadata_pb2.LinkRequest(
                    node_id=c.node_id,
                    new_parent_id=c.new_parent_id,
                    new_name=c.new_name,
                    device=self.device,
                )
            )
        elif isinstance(c, XattrRequest) and c.value is None:
            op.remove_xattr.CopyFrom(
                metadata_pb2.RemoveXattrRequest(node_id=c.node_id, name=c.name, device=self.device)
            )
        elif isinstance(c, XattrRequest):
            op.set_xattr.CopyFrom(
                metadata_pb2.SetXattrRequest(
                    node_id=c.node_id, name=c.name, value=c.value, device=self.device
                )
            )
        else:
            getattr(op, _CREATE_FIELDS[c.kind]).CopyFrom(self._create_message(c))
        return op

    def _create_message(
        self, c: CreateRequest
    ) -> (
        metadata_pb2.CreateFileRequest
        | metadata_pb2.MakeDirectoryRequest
        | metadata_pb2.CreateSymlinkRequest
    ):
        made = dict(
            parent_id=c.parent_id, name=c.name, uid=c.owner.uid, gid=c.owner.gid,
            mtime_ns=c.mtime_ns, device=self.device, node_id=c.node_id,
            request_id=c.request_id,
        )  # fmt: skip
        if c.kind == Kind.SYMLINK:
            return metadata_pb2.CreateSymlinkRequest(target=c.target, **made)
        if c.kind == Kind.DIRECTORY:
            return metadata_pb2.MakeDirectoryRequest(mode=c.mode, **made)
        return metadata_pb2.CreateFileRequest(mode=c.mode, **made)

    def _rename_message(self, c: RenameRequest) -> metadata_pb2.RenameRequest:
        return metadata_pb2.RenameRequest(
            parent_id=c.parent_id,
            name=c.name,
            new_parent_id=c.new_parent_id,
            new_name=c.new_name,
            no_replace=c.no_replace,
            device=self.device,
            node_id=c.node_id,
            request_id=c.request_id,
            exchange=c.exchange,
        )

    def _delete_message(self, c: DeleteRequest) -> metadata_pb2.DeleteRequest:
        return metadata_pb2.DeleteRequest(
            parent_id=c.parent_id,
            name=c.name,
            directory=c.directory,
            device=self.device,
            node_id=c.node_id,
            request_id=c.request_id,
        )

    def _attributes_message(self, c: AttributesRequest) -> metadata_pb2.SetAttributesRequest:
        return metadata_pb2.SetAttributesRequest(
            node_id=c.node_id,
            device=self.device,
            mode=c.attributes.mode,
            mtime_ns=c.mtime_ns,
            atime_ns=c.attributes.atime_ns,
            uid=c.attributes.owner.uid,
            gid=c.attributes.owner.gid,
            request_id=c.request_id,
        )

    def _commit_message(self, c: CommitRequest) -> metadata_pb2.CommitRevisionRequest:
        """The request for a commit, each block with this device's receipt for it (if any)."""
        receipt = self.grants.receipt
        return metadata_pb2.CommitRevisionRequest(
            node_id=c.node_id,
            base_revision=c.base_revision,
            size=c.size,
            mtime_ns=c.mtime_ns,
            mode=c.attributes.mode,
            uid=c.attributes.owner.uid,
            gid=c.attributes.owner.gid,
            atime_ns=c.attributes.atime_ns,
            device=self.device,
            blocks=[
                metadata_pb2.BlockRef(
                    hash=b.hash, offset=b.offset, size=b.size, receipt=receipt(b.hash, b.size)
                )
                for b in c.blocks
            ],
            request_id=c.request_id,
        )

    @rpc
    def get_revision(self, node_id: int, number: int = 0) -> Revision:
        req = metadata_pb2.GetRevisionRequest(node_id=node_id, number=number)
        msg = self._stub.GetRevision(req, timeout=UNARY_TIMEOUT)
        issued, expires = msg.grants_issued_ms, msg.grants_expire_s
        self.grants.add(
            msg.node_id,
            (b.hash for b in msg.blocks),
            (Grant(b.grant, issued, expires) for b in msg.blocks),
            number,
        )
        return Revision(
            node_id=msg.node_id,
            number=msg.number,
            size=msg.size,
            mtime_ns=msg.mtime_ns,
            blocks=tuple(BlockRef(b.hash, b.offset, b.size) for b in msg.blocks),
        )

    @rpc
    def rename(
        self,
        parent_id: int,
        name: str,
        new_parent_id: int,
        new_name: str,
        no_replace: bool,
        exchange: bool = False,
        expect_id: int | None = None,
    ) -> Renamed:
        """What a rename did: see Renamed. expect_id: the node believed to be at name
        (NotFound if another is)."""
        change = RenameRequest(
            parent_id, name, new_parent_id, new_name, no_replace, expect_id, request_id(),
            exchange,
        )  # fmt: skip
        req = self._rename_message(change)
        return _renamed(self._stub.Rename(req, timeout=UNARY_TIMEOUT))

    @rpc
    def delete(self, parent_id: int, name: str, directory: bool) -> tuple[int, bool]:
        """(the node id, whether the node stays under its other names)."""
        req = self._delete_message(DeleteRequest(parent_id, name, directory, None, request_id()))
        resp = self._stub.Delete(req, timeout=UNARY_TIMEOUT)
        return resp.node_id, resp.remains

    @rpc
    def get_xattrs(self, node_id: int) -> dict[str, bytes]:
        req = metadata_pb2.GetXattrsRequest(node_id=node_id)
        resp = self._stub.GetXattrs(req, timeout=UNARY_TIMEOUT)
        return {x.name: x.value for x in resp.xattrs}

    @rpc
    def set_xattr(self, node_id: int, name: str, value: bytes, how: int = 0) -> Node:
        """how: 0 create or replace, 1 create only, 2 replace only."""
        req = metadata_pb2.SetXattrRequest(
            node_id=node_id,
            name=name,
            value=value,
            how=how,
            device=self.device,
            request_id=request_id(),
        )
        return _node(self._stub.SetXattr(req, timeout=UNARY_TIMEOUT))

    @rpc
    def remove_xattr(self, node_id: int, name: str) -> Node:
        req = metadata_pb2.RemoveXattrRequest(
            node_id=node_id, name=name, device=self.device, request_id=request_id()
        )
        return _node(self._stub.RemoveXattr(req, timeout=UNARY_TIMEOUT))

    @rpc
    def link(self, node_id: int, new_parent_id: int, new_name: str) -> Node:
        """A further name (hard link) for a file; the node as the new name names it."""
        req = metadata_pb2.LinkRequest(
            node_id=node_id,
            new_parent_id=new_parent_id,
            new_name=new_name,
            device=self.device,
            request_id=request_id(),
        )
        return _node(self._stub.Link(req, timeout=UNARY_TIMEOUT))

    @rpc
    def set_attributes(
        self,
        node_id: int,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """Changes what is given (None: leave as it is)."""
        change = AttributeChange(mode, atime_ns, owner)
        req = self._attributes_message(AttributesRequest(node_id, change, mtime_ns, request_id()))
        return _node(self._stub.SetAttributes(req, timeout=UNARY_TIMEOUT))

    @rpc
    def mark_accessed(self, node_ids: list[int]) -> list[Node]:
        """Records reads (relatime is the caller's to apply); returns the nodes marked."""
        req = metadata_pb2.MarkAccessedRequest(node_ids=node_ids)
        return [_node(n) for n in self._stub.MarkAccessed(req, timeout=UNARY_TIMEOUT).nodes]

    @rpc
    def list_revisions(self, node_id: int) -> list[RevisionInfo]:
        """Every kept revision of a file, newest first."""
        req = metadata_pb2.ListRevisionsRequest(node_id=node_id)
        resp = self._stub.ListRevisions(req, timeout=UNARY_TIMEOUT)
        return [
            RevisionInfo(r.number, r.size, r.mtime_ns, r.author_id, r.device, r.created_ns)
            for r in resp.revisions
        ]

    @rpc
    def restore_revision(self, node_id: int, number: int) -> Node:
        req = metadata_pb2.RestoreRevisionRequest(
            node_id=node_id, number=number, device=self.device, request_id=request_id()
        )
        return _node(self._stub.RestoreRevision(req, timeout=UNARY_TIMEOUT))

    @rpc
    def share(self, node_id: int, user_name: str, role: Role) -> ShareInfo:
        req = metadata_pb2.ShareRequest(
            node_id=node_id,
            user_name=user_name,
            role=int(role),
            device=self.device,
            request_id=request_id(),
        )
        return _share(self._stub.Share(req, timeout=UNARY_TIMEOUT))

    @rpc
    def unshare(self, node_id: int, user_name: str = "") -> int:
        """Takes the share away from user_name ("" = from everyone); returns how many."""
        req = metadata_pb2.UnshareRequest(
            node_id=node_id, user_name=user_name, device=self.device, request_id=request_id()
        )
        return self._stub.Unshare(req, timeout=UNARY_TIMEOUT).removed

    @rpc
    def list_shares(self, node_id: int = 0) -> list[ShareInfo]:
        req = metadata_pb2.ListSharesRequest(node_id=node_id)
        return [_share(m) for m in self._stub.ListShares(req, timeout=UNARY_TIMEOUT).shares]

    @rpc
    def shared_with_me(self) -> list[ShareInfo]:
        req = metadata_pb2.ListSharedWithMeRequest()
        resp = self._stub.ListSharedWithMe(req, timeout=UNARY_TIMEOUT)
        return [_share(m) for m in resp.shares]

    @rpc
    def list_trash(self) -> list[TrashEntry]:
        resp = self._stub.ListTrash(metadata_pb2.ListTrashRequest(), timeout=UNARY_TIMEOUT)
        return [TrashEntry(_node(e.node), e.path, e.deleted_ns, e.purge_ns) for e in resp.entries]

    @rpc
    def restore_from_trash(self, node_id: int) -> Restored:
        req = metadata_pb2.RestoreFromTrashRequest(
            node_id=node_id, device=self.device, request_id=request_id()
        )
        resp = self._stub.RestoreFromTrash(req, timeout=UNARY_TIMEOUT)
        return Restored(_node(resp.node), resp.path, resp.restored)

    @rpc
    def list_snapshot(self, node_id: int, time_ns: int) -> list[SnapshotEntry]:
        """Entries of a folder as they were at time_ns (node_id 0 = the drive root)."""
        req = metadata_pb2.ListSnapshotRequest(node_id=node_id, time_ns=time_ns)
        resp = self._stub.ListSnapshot(req, timeout=UNARY_TIMEOUT)
        return [
            SnapshotEntry(
                e.node_id,
                e.name,
                Kind(e.kind),
                e.size,
                e.mtime_ns,
                e.revision,
                e.content_kept,
                e.symlink_target,
            )
            for e in resp.entries
        ]

    @rpc
    def restore_snapshot(self, node_id: int, time_ns: int) -> Restored:
        req = metadata_pb2.RestoreSnapshotRequest(
            node_id=node_id, time_ns=time_ns, device=self.device, request_id=request_id()
        )
        resp = self._stub.RestoreSnapshot(req, timeout=STREAM_TIMEOUT)
        return Restored(_node(resp.node), resp.path, resp.files, resp.directories, resp.skipped)

    @rpc
    def usage(self) -> Usage:
        msg = self._stub.GetUsage(metadata_pb2.GetUsageRequest(), timeout=UNARY_TIMEOUT)
        return Usage(msg.used_bytes, msg.quota_bytes, msg.node_count)

    @rpc
    def condemned_among(self, blocks: Sequence[BlockRef]) -> list[bytes]:
        """Which of these blocks GC is deleting right now.

        Only blocks we hold receipts for can be condemned in a commit of ours
        (the others are in revisions we may read: referenced, so kept), and
        metad answers only about those.
        """
        receipt = self.grants.receipt
        ours = [
            metadata_pb2.BlockRef(hash=b.hash, size=b.size, receipt=mac)
            for b in blocks
            if (mac := receipt(b.hash, b.size))
        ]
        condemned: list[bytes] = []
        for batch in batches(ours, CONDEMNED_BATCH):
            req = metadata_pb2.ListCondemnedBlocksRequest(blocks=batch)
            condemned += self._stub.ListCondemnedBlocks(req, timeout=UNARY_TIMEOUT).hashes
        return condemned

    @rpc
    def condemned(self, hashes: list[bytes]) -> list[bytes]:
        """Administrators: which of hashes (all, if empty) are condemned."""
        req = metadata_pb2.ListCondemnedBlocksRequest(hashes=hashes)
        return list(self._stub.ListCondemnedBlocks(req, timeout=UNARY_TIMEOUT).hashes)

    @rpc
    def block_references(self, hashes: list[bytes]) -> list[BlockReference]:
        """Administrators: the files whose kept revisions refer to these blocks."""
        found: list[BlockReference] = []
        for batch in batches(hashes, CONDEMNED_BATCH):
            req = metadata_pb2.ListBlockReferencesRequest(hashes=batch)
            resp = self._stub.ListBlockReferences(req, timeout=UNARY_TIMEOUT)
            found += [
                BlockReference(
                    r.hash,
                    r.node_id,
                    r.owner_name,
                    r.path,
                    tuple(r.revisions),
                    r.current,
                    r.deleted,
                )
                for r in resp.references
            ]
        return found

    @rpc
    def report_damaged(self, hashes: list[bytes]) -> int:
        """Administrators: asks the devices holding these blocks to upload them again."""
        files = 0
        for batch in batches(hashes, CONDEMNED_BATCH):
            req = metadata_pb2.ReportDamagedBlocksRequest(hashes=batch)
            files += self._stub.ReportDamagedBlocks(req, timeout=UNARY_TIMEOUT).files
        return files

    @rpc
    def journal_head(self) -> int:
        req = metadata_pb2.GetJournalHeadRequest()
        return self._stub.GetJournalHead(req, timeout=UNARY_TIMEOUT).sequence

    @rpc
    def empty_trash(self) -> tuple[int, int]:
        req = metadata_pb2.EmptyTrashRequest(request_id=request_id())
        resp = self._stub.EmptyTrash(req, timeout=UNARY_TIMEOUT)
        return resp.nodes, resp.bytes

    @rpc
    def storage_summary(self) -> StorageSummary:
        req = metadata_pb2.GetStorageSummaryRequest()
        msg = self._stub.GetStorageSummary(req, timeout=UNARY_TIMEOUT)
        return StorageSummary(msg.logical_bytes, msg.referenced_blocks, msg.referenced_bytes)

    def subscribe(self, from_sequence: int) -> ChangeStream:
        """A live stream of changes after from_sequence; cancel() ends it."""
        call = self._stub.Subscribe(metadata_pb2.SubscribeRequest(from_sequence=from_sequence))
        return ChangeStream(call)


class ChangeStream:
    """Iterates change events of one Subscribe call (no deadline: it is live)."""

    def __init__(self, call: grpc.Call) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Change]:
        try:
            for msg in self._call:
                yield _change(msg)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise translate(exc) from None

    def cancel(self) -> None:
        self._call.cancel()


@dataclass(frozen=True, slots=True)
class BlockReference:
    hash: bytes
    node_id: int
    owner_name: str
    path: str
    revisions: tuple[int, ...]
    current: bool
    deleted: bool


@dataclass(frozen=True, slots=True)
class StorageSummary:
    logical_bytes: int
    referenced_blocks: int
    referenced_bytes: int
