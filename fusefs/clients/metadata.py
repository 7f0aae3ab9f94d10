"""The metad API (drive.v1.Metadata) as blocking calls on domain values.

Called from trio worker threads by the mount, and by the drive command.
Owns: the channel and stub, a deadline on every call, and the proofs that go
with blocks (grants kept in its GrantBook, receipts sent with commits). The
messages are read and written in metadata_wire.py; the live change stream
(Subscribe) is change_stream.py.

Must not: let protobuf out (callers see fusefs.models), or know about inodes,
FUSE or caching.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fusefs import errors
from fusefs.clients.change_stream import ChangeStream
from fusefs.clients.metadata_wire import (
    attributes_message,
    batch_operation,
    commit_message,
    create_message,
    delete_message,
    rename_message,
    to_node,
    to_outcome,
    to_renamed,
    to_share,
)
from fusefs.clients.proofs import Grant, GrantBook
from fusefs.clients.rpc import (
    CONDEMNED_BATCH,
    STREAM_TIMEOUT,
    Token,
    batches,
    request_id,
    rpc,
    signed_channel,
    timeout,
)
from fusefs.models import (
    NO_CHANGE,
    NO_OWNERSHIP,
    AttributeChange,
    AttributesRequest,
    BatchChange,
    BatchOutcome,
    BlockRef,
    CommitRequest,
    CreateRequest,
    DeleteRequest,
    Kind,
    Node,
    Ownership,
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
)
from protos.drive.v1 import (
    metadata_pb2,
    metadata_pb2_grpc,
)
from protos.runtime import LIVE_STREAM_OPTIONS
from protos.tls import Trust


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
        # Pinged often: its Subscribe stream has no deadline (see LIVE_KEEPALIVE_MS).
        self._channel = signed_channel(address, token, trust, interceptors, LIVE_STREAM_OPTIONS)
        self._stub = metadata_pb2_grpc.MetadataStub(self._channel)
        self.grants = grants or GrantBook()
        if self.grants.refresh is None:
            self.grants.refresh = self.get_revision

    def close(self) -> None:
        self._channel.close()

    @rpc
    def root(self) -> Node:
        return to_node(self._stub.GetRoot(metadata_pb2.GetRootRequest(), timeout=timeout()))

    @rpc
    def lookup(self, parent_id: int, name: str) -> Node:
        req = metadata_pb2.LookupRequest(parent_id=parent_id, name=name)
        return to_node(self._stub.Lookup(req, timeout=timeout()))

    @rpc
    def stat(self, node_id: int) -> Node:
        req = metadata_pb2.StatRequest(node_id=node_id)
        return to_node(self._stub.Stat(req, timeout=timeout()))

    @rpc
    def list_directory(
        self, node_id: int, after_id: int = 0, page_size: int = 0
    ) -> tuple[list[Node], bool]:
        req = metadata_pb2.ListDirectoryRequest(
            node_id=node_id, after_id=after_id, page_size=page_size
        )
        resp = self._stub.ListDirectory(req, timeout=timeout())
        return [to_node(e) for e in resp.entries], resp.more

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
        req = create_message(change, self.device)
        return to_node(self._stub.MakeDirectory(req, timeout=timeout()))

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
        change = CreateRequest(node_id, parent_id, name, mode, owner, 0, request_id())
        req = create_message(change, self.device)
        return to_node(self._stub.CreateFile(req, timeout=timeout()))

    @rpc
    def reserve_node_ids(self, count: int) -> tuple[int, int]:
        """A range of node ids for this user alone: (first, count)."""
        req = metadata_pb2.ReserveNodeIdsRequest(count=count, request_id=request_id())
        resp = self._stub.ReserveNodeIds(req, timeout=timeout())
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
        return to_node(self._stub.MakeNode(req, timeout=timeout()))

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
        req = create_message(change, self.device)
        return to_node(self._stub.CreateSymlink(req, timeout=timeout()))

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
        req = commit_message(commit, self.device, self.grants.receipt)
        node = to_node(self._stub.CommitRevision(req, timeout=timeout()))
        self.grants.expect(node.id, (b.hash for b in commit.blocks))
        return node

    @rpc
    def apply_batch(self, changes: Sequence[BatchChange]) -> list[BatchOutcome | errors.DriveError]:
        """Many changes in one call and one transaction (ApplyBatch), in order: per
        change, what it did (the node after it; Renamed; Removed) or why it was refused.
        Each keeps its request id across retries (a retry gets the first answers)."""
        operations = [batch_operation(c, self.device, self.grants.receipt) for c in changes]
        req = metadata_pb2.ApplyBatchRequest(operations=operations)
        resp = self._stub.ApplyBatch(req, timeout=timeout())
        outcomes: list[BatchOutcome | errors.DriveError] = []
        for change, result in zip(changes, resp.results, strict=True):
            outcome = to_outcome(change, result)
            if isinstance(outcome, Node) and isinstance(change, CommitRequest):
                self.grants.expect(outcome.id, (b.hash for b in change.blocks))
            outcomes.append(outcome)
        return outcomes

    @rpc
    def get_revision(self, node_id: int, number: int = 0) -> Revision:
        req = metadata_pb2.GetRevisionRequest(node_id=node_id, number=number)
        msg = self._stub.GetRevision(req, timeout=timeout())
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
        req = rename_message(change, self.device)
        return to_renamed(self._stub.Rename(req, timeout=timeout()))

    @rpc
    def delete(self, parent_id: int, name: str, directory: bool) -> tuple[int, bool]:
        """(the node id, whether the node stays under its other names)."""
        req = delete_message(
            DeleteRequest(parent_id, name, directory, None, request_id()), self.device
        )
        resp = self._stub.Delete(req, timeout=timeout())
        return resp.node_id, resp.remains

    @rpc
    def get_xattrs(self, node_id: int) -> dict[str, bytes]:
        req = metadata_pb2.GetXattrsRequest(node_id=node_id)
        resp = self._stub.GetXattrs(req, timeout=timeout())
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
        return to_node(self._stub.SetXattr(req, timeout=timeout()))

    @rpc
    def remove_xattr(self, node_id: int, name: str) -> Node:
        req = metadata_pb2.RemoveXattrRequest(
            node_id=node_id, name=name, device=self.device, request_id=request_id()
        )
        return to_node(self._stub.RemoveXattr(req, timeout=timeout()))

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
        return to_node(self._stub.Link(req, timeout=timeout()))

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
        req = attributes_message(
            AttributesRequest(node_id, change, mtime_ns, request_id()), self.device
        )
        return to_node(self._stub.SetAttributes(req, timeout=timeout()))

    @rpc
    def mark_accessed(self, node_ids: list[int]) -> list[Node]:
        """Records reads (relatime is the caller's to apply); returns the nodes marked."""
        req = metadata_pb2.MarkAccessedRequest(node_ids=node_ids)
        return [to_node(n) for n in self._stub.MarkAccessed(req, timeout=timeout()).nodes]

    @rpc
    def list_revisions(self, node_id: int) -> list[RevisionInfo]:
        """Every kept revision of a file, newest first."""
        req = metadata_pb2.ListRevisionsRequest(node_id=node_id)
        resp = self._stub.ListRevisions(req, timeout=timeout())
        return [
            RevisionInfo(r.number, r.size, r.mtime_ns, r.author_id, r.device, r.created_ns)
            for r in resp.revisions
        ]

    @rpc
    def restore_revision(self, node_id: int, number: int) -> Node:
        req = metadata_pb2.RestoreRevisionRequest(
            node_id=node_id, number=number, device=self.device, request_id=request_id()
        )
        return to_node(self._stub.RestoreRevision(req, timeout=timeout()))

    @rpc
    def share(self, node_id: int, user_name: str, role: Role) -> ShareInfo:
        req = metadata_pb2.ShareRequest(
            node_id=node_id,
            user_name=user_name,
            role=int(role),
            device=self.device,
            request_id=request_id(),
        )
        return to_share(self._stub.Share(req, timeout=timeout()))

    @rpc
    def unshare(self, node_id: int, user_name: str = "") -> int:
        """Takes the share away from user_name ("" = from everyone); returns how many."""
        req = metadata_pb2.UnshareRequest(
            node_id=node_id, user_name=user_name, device=self.device, request_id=request_id()
        )
        return self._stub.Unshare(req, timeout=timeout()).removed

    @rpc
    def list_shares(self, node_id: int = 0) -> list[ShareInfo]:
        req = metadata_pb2.ListSharesRequest(node_id=node_id)
        return [to_share(m) for m in self._stub.ListShares(req, timeout=timeout()).shares]

    @rpc
    def shared_with_me(self) -> list[ShareInfo]:
        req = metadata_pb2.ListSharedWithMeRequest()
        resp = self._stub.ListSharedWithMe(req, timeout=timeout())
        return [to_share(m) for m in resp.shares]

    @rpc
    def list_trash(self) -> list[TrashEntry]:
        resp = self._stub.ListTrash(metadata_pb2.ListTrashRequest(), timeout=timeout())
        return [TrashEntry(to_node(e.node), e.path, e.deleted_ns, e.purge_ns) for e in resp.entries]

    @rpc
    def restore_from_trash(self, node_id: int) -> Restored:
        req = metadata_pb2.RestoreFromTrashRequest(
            node_id=node_id, device=self.device, request_id=request_id()
        )
        resp = self._stub.RestoreFromTrash(req, timeout=timeout())
        return Restored(to_node(resp.node), resp.path, resp.restored)

    @rpc
    def list_snapshot(self, node_id: int, time_ns: int) -> list[SnapshotEntry]:
        """Entries of a folder as they were at time_ns (node_id 0 = the drive root)."""
        req = metadata_pb2.ListSnapshotRequest(node_id=node_id, time_ns=time_ns)
        resp = self._stub.ListSnapshot(req, timeout=timeout())
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
        return Restored(to_node(resp.node), resp.path, resp.files, resp.directories, resp.skipped)

    @rpc
    def usage(self) -> Usage:
        msg = self._stub.GetUsage(metadata_pb2.GetUsageRequest(), timeout=timeout())
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
            condemned += self._stub.ListCondemnedBlocks(req, timeout=timeout()).hashes
        return condemned

    @rpc
    def condemned(self, hashes: list[bytes]) -> list[bytes]:
        """Administrators: which of hashes (all, if empty) are condemned."""
        req = metadata_pb2.ListCondemnedBlocksRequest(hashes=hashes)
        return list(self._stub.ListCondemnedBlocks(req, timeout=timeout()).hashes)

    @rpc
    def block_references(self, hashes: list[bytes]) -> list[BlockReference]:
        """Administrators: the files whose kept revisions refer to these blocks."""
        found: list[BlockReference] = []
        for batch in batches(hashes, CONDEMNED_BATCH):
            req = metadata_pb2.ListBlockReferencesRequest(hashes=batch)
            resp = self._stub.ListBlockReferences(req, timeout=timeout())
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
            files += self._stub.ReportDamagedBlocks(req, timeout=timeout()).files
        return files

    @rpc
    def journal_head(self) -> int:
        req = metadata_pb2.GetJournalHeadRequest()
        return self._stub.GetJournalHead(req, timeout=timeout()).sequence

    @rpc
    def empty_trash(self) -> tuple[int, int]:
        req = metadata_pb2.EmptyTrashRequest(request_id=request_id())
        resp = self._stub.EmptyTrash(req, timeout=timeout())
        return resp.nodes, resp.bytes

    @rpc
    def storage_summary(self) -> StorageSummary:
        req = metadata_pb2.GetStorageSummaryRequest()
        msg = self._stub.GetStorageSummary(req, timeout=timeout())
        return StorageSummary(msg.logical_bytes, msg.referenced_blocks, msg.referenced_bytes)

    def subscribe(self, from_sequence: int) -> ChangeStream:
        """A live stream of changes after from_sequence; cancel() ends it.

        Batched: a burst comes a journal page per message, not an event per
        message (our own untar echoes back two events per file; each message costs
        the reading thread ~30 us of CPU, mostly holding the GIL the FUSE handlers
        want). A metad that predates it sends one per message: read all the same."""
        request = metadata_pb2.SubscribeRequest(from_sequence=from_sequence, batched=True)
        call = self._stub.Subscribe(request)
        return ChangeStream(call)


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
