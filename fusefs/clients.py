"""Blocking clients of metad and blockd, called from trio worker threads.

Owns: protobuf ↔ domain values, deadlines, retries, the proofs that go with
blocks (grants from metad, receipts from blockd, kept in a GrantBook), and
gRPC status → domain error (the one place that mapping lives on the client
side). Must not know about inodes, FUSE or caching.

Retries: a call that failed UNAVAILABLE is repeated for a few seconds. A
change is safe to repeat because each carries a request id, made once per
call and sent again with every retry of it: metad answers a retry of a
change it already applied with the first answer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import grpc

from fusefs import errors
from fusefs.models import (
    BlockRef,
    Change,
    ChangeKind,
    Kind,
    Node,
    Restored,
    Revision,
    RevisionInfo,
    Role,
    ShareInfo,
    SnapshotEntry,
    TrashEntry,
    Usage,
)
from protos import auth
from protos.drive.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    blocks_pb2,
    blocks_pb2_grpc,
    metadata_pb2,
    metadata_pb2_grpc,
)
from protos.runtime import CURRENT_REVISION_KEY, ERROR_REASON_KEY, create_channel
from protos.tls import Trust

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

UNARY_TIMEOUT = 30.0
# Streams carry up to a few GB; their deadline only guards against a hang.
STREAM_TIMEOUT = 3600.0
# How long a call keeps retrying a daemon that is unreachable (e.g. restarting).
RETRY_WINDOW = 5.0
# Hashes per FindMissing, and per ListCondemnedBlocks, ListBlockReferences and
# ReportDamagedBlocks: within the daemons' limits.
FIND_BATCH = 10_000
CONDEMNED_BATCH = 10_000

_REASONS: dict[str, type[errors.DriveError]] = {
    "not-a-directory": errors.NotADirectory,
    "is-a-directory": errors.IsADirectory,
    "not-a-file": errors.InvalidArgument,
    "directory-not-empty": errors.DirectoryNotEmpty,
    "invalid-move": errors.InvalidMove,
    "name-too-long": errors.NameTooLong,
    "invalid-name": errors.InvalidName,
    "blocks-condemned": errors.BlocksCondemned,
    "quota-exceeded": errors.QuotaExceeded,
    "cross-drive": errors.CrossDrive,
    "content-gone": errors.NotFound,
    "unproven-blocks": errors.UnprovenBlocks,
    "too-large": errors.FileTooLarge,
}

_CODES: dict[grpc.StatusCode, type[errors.DriveError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: errors.InvalidArgument,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: errors.NotSignedIn,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.QuotaExceeded,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
    grpc.StatusCode.DATA_LOSS: errors.DataLoss,
}


def translate(exc: grpc.RpcError) -> errors.DriveError:
    """The domain error for a failed call (status code refined by its reason)."""
    code = exc.code()
    details = exc.details() or code.name
    trailers = dict(exc.trailing_metadata() or ())
    if code == grpc.StatusCode.ABORTED and CURRENT_REVISION_KEY in trailers:
        return errors.StaleRevision(details, int(trailers[CURRENT_REVISION_KEY]))
    reason = trailers.get(ERROR_REASON_KEY)
    cls = _REASONS.get(reason) or _CODES.get(code, errors.DriveError)
    return cls(details)


_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id() -> str:
    """The id of the change being made: the same for every retry of one call."""
    return _request_id.get() or uuid.uuid4().hex


def _rpc(fn: Callable[P, T]) -> Callable[P, T]:
    """Maps RpcError to domain errors; retries calls that did not get through.

    A call keeps one request id (request_id()) across its retries.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + RETRY_WINDOW
        delay = 0.05
        outer = _request_id.set(_request_id.get() or uuid.uuid4().hex)
        try:
            while True:
                try:
                    return fn(*args, **kwargs)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                        time.sleep(delay)
                        delay = min(delay * 2, 1.0)
                        continue
                    raise translate(exc) from None
        finally:
            _request_id.reset(outer)

    return wrapper


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    )


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


Token = Callable[[], str]


def _signed_channel(
    address: str, token: Token | None, trust: Trust | None, interceptors: Sequence[object] = ()
) -> grpc.Channel:
    """A channel sending token with every call: TLS when trust is given (see fusefs.trust).

    interceptors (tests) see each call first.
    """
    channel = create_channel(address, trust)
    if token is not None:
        channel = grpc.intercept_channel(channel, auth.BearerAuth(token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


@dataclass(frozen=True, slots=True)
class Grant:
    grant: bytes
    issued_ms: int
    expires_s: int


NO_GRANT = Grant(b"", 0, 0)


class GrantBook:
    """The proofs this client holds for blocks: grants (to read) and receipts (to commit).

    Grants arrive with revisions (MetadataClient.get_revision). A block whose
    grant is missing or about to expire is re-granted by asking metad again
    for the revision it came with (refresh(node_id, number); 0 = the current
    one, for blocks just committed), so a past revision held open for hours
    keeps reading; a grant blockd refuses (revoked after an unshare) is
    refreshed the same way. Receipts arrive with uploads
    (BlockClient.upload) and go with the blocks of the next commit.
    """

    MAX_ENTRIES = 500_000
    MARGIN_S = 60

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # hash -> (grant, node_id, revision number it came with)
        self._book: OrderedDict[bytes, tuple[Grant, int, int]] = OrderedDict()
        # hash -> (size, receipt): a hash has one size, its content's
        self._receipts: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self.refresh: Callable[[int, int], object] | None = None

    def add(
        self, node_id: int, hashes: Iterable[bytes], grants: Iterable[Grant], number: int = 0
    ) -> None:
        with self._lock:
            for digest, grant in zip(hashes, grants, strict=True):
                self._book[digest] = (grant, node_id, number)
                self._book.move_to_end(digest)
            while len(self._book) > self.MAX_ENTRIES:
                self._book.popitem(last=False)

    def add_receipts(self, receipts: Iterable[tuple[bytes, int, bytes]]) -> None:
        """(hash, size, receipt) of blocks this client uploaded."""
        with self._lock:
            for digest, size, mac in receipts:
                self._receipts[digest] = (size, mac)
                self._receipts.move_to_end(digest)
            while len(self._receipts) > self.MAX_ENTRIES:
                self._receipts.popitem(last=False)

    def receipt(self, digest: bytes, size: int) -> bytes:
        """The receipt for this block, or b"" (then a readable revision must hold it)."""
        with self._lock:
            held = self._receipts.get(digest)
        return held[1] if held is not None and held[0] == size else b""

    def receipts(self, hashes: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """Per hash, (size, receipt) of a receipt held for it, or (0, b"")."""
        with self._lock:
            return [self._receipts.get(h, (0, b"")) for h in hashes]

    def expect(self, node_id: int, hashes: Iterable[bytes]) -> None:
        """Blocks of node_id (just committed) that have no grant yet."""
        with self._lock:
            for digest in hashes:
                if digest not in self._book:
                    self._book[digest] = (NO_GRANT, node_id, 0)

    def known(self, hashes: Sequence[bytes]) -> list[Grant]:
        """Per hash, its grant, or NO_GRANT."""
        with self._lock:
            return [self._book.get(h, (NO_GRANT, 0, 0))[0] for h in hashes]

    def for_download(self, hashes: Sequence[bytes], renew: bool = False) -> list[Grant]:
        """Valid grants for hashes, refreshing the stale ones (all, with renew) from metad first."""
        soon = time.time() + self.MARGIN_S
        with self._lock:
            stale = {
                entry[1:]
                for h in hashes
                if (entry := self._book.get(h)) is not None
                and entry[1]
                and (renew or entry[0].expires_s < soon)
            }
        if stale and self.refresh is not None:
            for node_id, number in stale:
                with contextlib.suppress(errors.DriveError):
                    self.refresh(node_id, number)
        return self.known(hashes)


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
        self._channel = _signed_channel(address, token, trust, interceptors)
        self._stub = metadata_pb2_grpc.MetadataStub(self._channel)
        self.grants = grants or GrantBook()
        if self.grants.refresh is None:
            self.grants.refresh = self.get_revision

    def close(self) -> None:
        self._channel.close()

    @_rpc
    def root(self) -> Node:
        return _node(self._stub.GetRoot(metadata_pb2.GetRootRequest(), timeout=UNARY_TIMEOUT))

    @_rpc
    def lookup(self, parent_id: int, name: str) -> Node:
        req = metadata_pb2.LookupRequest(parent_id=parent_id, name=name)
        return _node(self._stub.Lookup(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def stat(self, node_id: int) -> Node:
        req = metadata_pb2.StatRequest(node_id=node_id)
        return _node(self._stub.Stat(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def list_directory(
        self, node_id: int, after_id: int = 0, page_size: int = 0
    ) -> tuple[list[Node], bool]:
        req = metadata_pb2.ListDirectoryRequest(
            node_id=node_id, after_id=after_id, page_size=page_size
        )
        resp = self._stub.ListDirectory(req, timeout=UNARY_TIMEOUT)
        return [_node(e) for e in resp.entries], resp.more

    @_rpc
    def make_directory(self, parent_id: int, name: str, mode: int) -> Node:
        req = metadata_pb2.MakeDirectoryRequest(
            parent_id=parent_id, name=name, mode=mode, device=self.device, request_id=request_id()
        )
        return _node(self._stub.MakeDirectory(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def create_file(self, parent_id: int, name: str, mode: int) -> Node:
        req = metadata_pb2.CreateFileRequest(
            parent_id=parent_id, name=name, mode=mode, device=self.device, request_id=request_id()
        )
        return _node(self._stub.CreateFile(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def create_symlink(self, parent_id: int, name: str, target: str) -> Node:
        req = metadata_pb2.CreateSymlinkRequest(
            parent_id=parent_id,
            name=name,
            target=target,
            device=self.device,
            request_id=request_id(),
        )
        return _node(self._stub.CreateSymlink(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def commit_revision(
        self,
        node_id: int,
        base_revision: int,
        size: int,
        mtime_ns: int,
        blocks: Iterable[BlockRef],
    ) -> Node:
        receipt = self.grants.receipt
        req = metadata_pb2.CommitRevisionRequest(
            node_id=node_id,
            base_revision=base_revision,
            size=size,
            mtime_ns=mtime_ns,
            device=self.device,
            blocks=[
                metadata_pb2.BlockRef(
                    hash=b.hash, offset=b.offset, size=b.size, receipt=receipt(b.hash, b.size)
                )
                for b in blocks
            ],
            request_id=request_id(),
        )
        node = _node(self._stub.CommitRevision(req, timeout=UNARY_TIMEOUT))
        self.grants.expect(node.id, (b.hash for b in req.blocks))
        return node

    @_rpc
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

    @_rpc
    def rename(
        self, parent_id: int, name: str, new_parent_id: int, new_name: str, no_replace: bool
    ) -> tuple[Node, int]:
        req = metadata_pb2.RenameRequest(
            parent_id=parent_id,
            name=name,
            new_parent_id=new_parent_id,
            new_name=new_name,
            no_replace=no_replace,
            device=self.device,
            request_id=request_id(),
        )
        resp = self._stub.Rename(req, timeout=UNARY_TIMEOUT)
        return _node(resp.node), resp.replaced_node_id

    @_rpc
    def delete(self, parent_id: int, name: str, directory: bool) -> int:
        req = metadata_pb2.DeleteRequest(
            parent_id=parent_id,
            name=name,
            directory=directory,
            device=self.device,
            request_id=request_id(),
        )
        return self._stub.Delete(req, timeout=UNARY_TIMEOUT).node_id

    @_rpc
    def set_attributes(
        self, node_id: int, mode: int | None = None, mtime_ns: int | None = None
    ) -> Node:
        req = metadata_pb2.SetAttributesRequest(
            node_id=node_id, device=self.device, request_id=request_id()
        )
        if mode is not None:
            req.mode = mode
        if mtime_ns is not None:
            req.mtime_ns = mtime_ns
        return _node(self._stub.SetAttributes(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def list_revisions(self, node_id: int) -> list[RevisionInfo]:
        """Every kept revision of a file, newest first."""
        req = metadata_pb2.ListRevisionsRequest(node_id=node_id)
        resp = self._stub.ListRevisions(req, timeout=UNARY_TIMEOUT)
        return [
            RevisionInfo(r.number, r.size, r.mtime_ns, r.author_id, r.device, r.created_ns)
            for r in resp.revisions
        ]

    @_rpc
    def restore_revision(self, node_id: int, number: int) -> Node:
        req = metadata_pb2.RestoreRevisionRequest(
            node_id=node_id, number=number, device=self.device, request_id=request_id()
        )
        return _node(self._stub.RestoreRevision(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def share(self, node_id: int, user_name: str, role: Role) -> ShareInfo:
        req = metadata_pb2.ShareRequest(
            node_id=node_id,
            user_name=user_name,
            role=int(role),
            device=self.device,
            request_id=request_id(),
        )
        return _share(self._stub.Share(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def unshare(self, node_id: int, user_name: str = "") -> int:
        """Takes the share away from user_name ("" = from everyone); returns how many."""
        req = metadata_pb2.UnshareRequest(
            node_id=node_id, user_name=user_name, device=self.device, request_id=request_id()
        )
        return self._stub.Unshare(req, timeout=UNARY_TIMEOUT).removed

    @_rpc
    def list_shares(self, node_id: int = 0) -> list[ShareInfo]:
        req = metadata_pb2.ListSharesRequest(node_id=node_id)
        return [_share(m) for m in self._stub.ListShares(req, timeout=UNARY_TIMEOUT).shares]

    @_rpc
    def shared_with_me(self) -> list[ShareInfo]:
        req = metadata_pb2.ListSharedWithMeRequest()
        resp = self._stub.ListSharedWithMe(req, timeout=UNARY_TIMEOUT)
        return [_share(m) for m in resp.shares]

    @_rpc
    def list_trash(self) -> list[TrashEntry]:
        resp = self._stub.ListTrash(metadata_pb2.ListTrashRequest(), timeout=UNARY_TIMEOUT)
        return [TrashEntry(_node(e.node), e.path, e.deleted_ns, e.purge_ns) for e in resp.entries]

    @_rpc
    def restore_from_trash(self, node_id: int) -> Restored:
        req = metadata_pb2.RestoreFromTrashRequest(
            node_id=node_id, device=self.device, request_id=request_id()
        )
        resp = self._stub.RestoreFromTrash(req, timeout=UNARY_TIMEOUT)
        return Restored(_node(resp.node), resp.path, resp.restored)

    @_rpc
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

    @_rpc
    def restore_snapshot(self, node_id: int, time_ns: int) -> Restored:
        req = metadata_pb2.RestoreSnapshotRequest(
            node_id=node_id, time_ns=time_ns, device=self.device, request_id=request_id()
        )
        resp = self._stub.RestoreSnapshot(req, timeout=STREAM_TIMEOUT)
        return Restored(_node(resp.node), resp.path, resp.files, resp.directories, resp.skipped)

    @_rpc
    def usage(self) -> Usage:
        msg = self._stub.GetUsage(metadata_pb2.GetUsageRequest(), timeout=UNARY_TIMEOUT)
        return Usage(msg.used_bytes, msg.quota_bytes, msg.node_count)

    @_rpc
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
        for batch in _batches(ours, CONDEMNED_BATCH):
            req = metadata_pb2.ListCondemnedBlocksRequest(blocks=batch)
            condemned += self._stub.ListCondemnedBlocks(req, timeout=UNARY_TIMEOUT).hashes
        return condemned

    @_rpc
    def condemned(self, hashes: list[bytes]) -> list[bytes]:
        """Administrators: which of hashes (all, if empty) are condemned."""
        req = metadata_pb2.ListCondemnedBlocksRequest(hashes=hashes)
        return list(self._stub.ListCondemnedBlocks(req, timeout=UNARY_TIMEOUT).hashes)

    @_rpc
    def block_references(self, hashes: list[bytes]) -> list[BlockReference]:
        """Administrators: the files whose kept revisions refer to these blocks."""
        found: list[BlockReference] = []
        for batch in _batches(hashes, CONDEMNED_BATCH):
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

    @_rpc
    def report_damaged(self, hashes: list[bytes]) -> int:
        """Administrators: asks the devices holding these blocks to upload them again."""
        files = 0
        for batch in _batches(hashes, CONDEMNED_BATCH):
            req = metadata_pb2.ReportDamagedBlocksRequest(hashes=batch)
            files += self._stub.ReportDamagedBlocks(req, timeout=UNARY_TIMEOUT).files
        return files

    @_rpc
    def journal_head(self) -> int:
        req = metadata_pb2.GetJournalHeadRequest()
        return self._stub.GetJournalHead(req, timeout=UNARY_TIMEOUT).sequence

    @_rpc
    def empty_trash(self) -> tuple[int, int]:
        req = metadata_pb2.EmptyTrashRequest(request_id=request_id())
        resp = self._stub.EmptyTrash(req, timeout=UNARY_TIMEOUT)
        return resp.nodes, resp.bytes

    @_rpc
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


@dataclass(frozen=True, slots=True)
class GarbageProgress:
    scanned: int
    total: int
    deleted: int
    bytes_reclaimed: int
    done: bool


@dataclass(frozen=True, slots=True)
class BlockProblem:
    hash: bytes
    problem: str
    repaired: bool


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    checked: int
    total: int
    referenced_checked: int
    problems: tuple[BlockProblem, ...]
    done: bool


@dataclass(frozen=True, slots=True)
class UploadResult:
    blocks_received: int
    blocks_stored: int
    bytes_received: int
    bytes_stored: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    object_count: int
    stored_bytes: int
    bytes_received: int
    blocks_received: int
    bytes_sent: int
    blocks_sent: int


def _grant_messages(grants: Sequence[Grant]) -> list[blocks_pb2.Grant]:
    return [
        blocks_pb2.Grant(grant=g.grant, issued_ms=g.issued_ms, expires_s=g.expires_s)
        for g in grants
    ]


class BlockClient:
    """The blockd API as blocking calls. Safe to use from many threads.

    Downloads carry the grants of `grants` (shared with the MetadataClient
    that received them).
    """

    def __init__(
        self,
        address: str,
        token: Token | None = None,
        grants: GrantBook | None = None,
        *,
        trust: Trust | None = None,
        interceptors: Sequence[object] = (),
    ) -> None:
        self.address = address
        self._channel = _signed_channel(address, token, trust, interceptors)
        self._stub = blocks_pb2_grpc.BlocksStub(self._channel)
        self.grants = grants or GrantBook()

    def close(self) -> None:
        self._channel.close()

    @_rpc
    def find_missing(self, hashes: list[bytes]) -> set[bytes]:
        """Which blocks to upload: those blockd lacks or will not say it holds (no proof)."""
        missing: set[bytes] = set()
        for batch in _batches(hashes, FIND_BATCH):
            grants = _grant_messages(self.grants.known(batch))
            receipts = [
                blocks_pb2.Receipt(hash=h, size=size, mac=mac)
                for h, (size, mac) in zip(batch, self.grants.receipts(batch), strict=True)
            ]
            req = blocks_pb2.FindMissingRequest(hashes=batch, grants=grants, receipts=receipts)
            missing.update(self._stub.FindMissing(req, timeout=UNARY_TIMEOUT).missing)
        return missing

    @_rpc
    def check(self) -> None:
        """One call that needs a valid token: is blockd there and does it accept us?"""
        self._stub.FindMissing(blocks_pb2.FindMissingRequest(), timeout=UNARY_TIMEOUT)

    @_rpc
    def upload(self, blocks: Callable[[], Iterable[tuple[bytes, bytes]]]) -> UploadResult:
        """Uploads what blocks() yields; a factory, so a retry can start over."""
        requests = (blocks_pb2.UploadRequest(hash=h, data=d) for h, d in blocks())
        resp = self._stub.Upload(requests, timeout=STREAM_TIMEOUT)
        self.grants.add_receipts((r.hash, r.size, r.mac) for r in resp.receipts)
        return UploadResult(
            resp.blocks_received, resp.blocks_stored, resp.bytes_received, resp.bytes_stored
        )

    @_rpc
    def download(self, hashes: list[bytes]) -> list[tuple[bytes, bytes]]:
        """The blocks, in request order.

        Grants blockd refuses (revoked: a share was taken away, the password
        changed) are asked for again once; what metad still lets us read
        comes with fresh ones.
        """
        for renew in (False, True):
            grants = _grant_messages(self.grants.for_download(hashes, renew=renew))
            req = blocks_pb2.DownloadRequest(hashes=hashes, grants=grants)
            try:
                return [(b.hash, b.data) for b in self._stub.Download(req, timeout=STREAM_TIMEOUT)]
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.PERMISSION_DENIED or renew:
                    raise
        raise AssertionError("unreachable")

    @_rpc
    def stats(self) -> StoreStats:
        msg = self._stub.GetStats(blocks_pb2.GetStatsRequest(), timeout=UNARY_TIMEOUT)
        return StoreStats(
            msg.object_count,
            msg.stored_bytes,
            msg.bytes_received,
            msg.blocks_received,
            msg.bytes_sent,
            msg.blocks_sent,
        )

    def collect_garbage(self, grace_seconds: int, dry_run: bool) -> Iterator[GarbageProgress]:
        """Runs a garbage collection in blockd, yielding its progress."""
        req = blocks_pb2.CollectGarbageRequest(grace_seconds=grace_seconds, dry_run=dry_run)
        try:
            for m in self._stub.CollectGarbage(req, timeout=STREAM_TIMEOUT):
                yield GarbageProgress(m.scanned, m.total, m.deleted, m.bytes_reclaimed, m.done)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    def scrub(self, only: Sequence[bytes] = ()) -> Iterator[ScrubProgress]:
        """Verifies the whole store (or only those blocks) in blockd: progress and problems."""
        req = blocks_pb2.ScrubRequest(hashes=list(only))
        try:
            for m in self._stub.Scrub(req, timeout=STREAM_TIMEOUT):
                problems = tuple(BlockProblem(p.hash, p.problem, p.repaired) for p in m.problems)
                yield ScrubProgress(m.checked, m.total, m.referenced_checked, problems, m.done)
        except grpc.RpcError as exc:
            raise translate(exc) from None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    admin: bool
    quota_bytes: int
    root_id: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    expires_s: int
    account: Account


def _account(msg: accounts_pb2.User) -> Account:
    return Account(msg.id, msg.name, msg.admin, msg.quota_bytes, msg.root_id, msg.disabled)


def _signed_in(msg: accounts_pb2.SignInResponse) -> SignedIn:
    return SignedIn(msg.token, msg.expires_s, _account(msg.user))


class AccountsClient:
    """Sign-in and user management at metad, as blocking calls."""

    def __init__(
        self, address: str, token: Token | None = None, *, trust: Trust | None = None
    ) -> None:
        self.address = address
        self._channel = _signed_channel(address, token, trust)
        self._stub = accounts_pb2_grpc.AccountsStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    @_rpc
    def sign_in(self, name: str, password: str, ttl_seconds: int = 0) -> SignedIn:
        req = accounts_pb2.SignInRequest(name=name, password=password, ttl_seconds=ttl_seconds)
        return _signed_in(self._stub.SignIn(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def renew(self, ttl_seconds: int = 0) -> SignedIn:
        req = accounts_pb2.RenewTokenRequest(ttl_seconds=ttl_seconds)
        return _signed_in(self._stub.RenewToken(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def whoami(self) -> Account:
        return _account(self._stub.WhoAmI(accounts_pb2.WhoAmIRequest(), timeout=UNARY_TIMEOUT))

    @_rpc
    def create_user(
        self, name: str, password: str, quota_bytes: int = 0, admin: bool = False
    ) -> Account:
        req = accounts_pb2.CreateUserRequest(
            name=name,
            password=password,
            quota_bytes=quota_bytes,
            admin=admin,
            request_id=request_id(),
        )
        return _account(self._stub.CreateUser(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def list_users(self) -> list[Account]:
        resp = self._stub.ListUsers(accounts_pb2.ListUsersRequest(), timeout=UNARY_TIMEOUT)
        return [_account(u) for u in resp.users]

    @_rpc
    def set_password(
        self, new_password: str, current_password: str = "", name: str = ""
    ) -> Account:
        req = accounts_pb2.SetPasswordRequest(
            name=name,
            current_password=current_password,
            new_password=new_password,
            request_id=request_id(),
        )
        return _account(self._stub.SetPassword(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def set_quota(self, name: str, quota_bytes: int) -> Account:
        req = accounts_pb2.SetQuotaRequest(
            name=name, quota_bytes=quota_bytes, request_id=request_id()
        )
        return _account(self._stub.SetQuota(req, timeout=UNARY_TIMEOUT))

    @_rpc
    def set_disabled(self, name: str, disabled: bool) -> Account:
        req = accounts_pb2.DisableUserRequest(name=name, disabled=disabled, request_id=request_id())
        return _account(self._stub.DisableUser(req, timeout=UNARY_TIMEOUT))
