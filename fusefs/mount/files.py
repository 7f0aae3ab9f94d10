"""Open files: reading revisions block by block, local edits, commits.

RevisionReader reads one revision through the block cache; OpenFile adds
local edits and commits on top of it, and past revisions (.drive-history)
are read by a bare RevisionReader.

One OpenFile per inode however many handles the kernel has open on it, so
every handle sees the others' writes (as on a local disk). A file being
changed gets a staging file (a private local copy, materialized from its
blocks on the first write unless the write starts from empty); the commit
cuts the staging file into content-defined blocks, uploads only the blocks
blockd lacks and commits a revision based on the one the edits were made on.

Locking: `_lock` serializes writes, truncation and commits of one file so a
commit never hashes content that is still being written.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.chunker import chunk_file
from fusefs.clients import BlockClient, MetadataClient
from fusefs.models import NO_CHANGE, AttributeChange, BlockRef, Node, Revision, Role
from protos import names

log = logging.getLogger(__name__)

PREFETCH_BLOCKS = 8  # blocks read ahead of a sequential reader (~8 MiB)
FETCH_BATCH = 4  # blocks per Download call
SMALL_UPLOAD_BYTES = 256 * 1024  # below this, upload without asking what is missing
COMMIT_ATTEMPTS = 10  # commits refused by successive garbage collections before giving up
COLLECTOR_WAIT_SECONDS = 120  # how long one collection may hold our blocks

Invalidate = Callable[[int], Awaitable[None]]


def local_stamp(when: float) -> str:
    """A local time as names carry it: '2026-11-22 093015' (no colons)."""
    return time.strftime("%Y-%m-%d %H%M%S", time.localtime(when))


def conflict_name(name: str, device: str, when: float) -> str:
    """'report (conflicted copy from laptop 2026-11-22 093015).txt', ≤ 255 bytes."""
    return names.tagged(name, f"conflicted copy from {device} {local_stamp(when)}")


class RevisionReader:
    """Reads one revision's bytes through the block cache, read-only.

    Open files build on it, and so do past revisions shown under
    .drive-history, so both fetch, verify and prefetch blocks the same way.
    """

    def __init__(self, revision: Revision, *, cache: BlockCache, nursery: trio.Nursery) -> None:
        self._cache = cache
        self._nursery = nursery
        self._set_revision(revision)
        self.size = revision.size
        self._next_read = 0
        self._prefetched_until = 0

    def _set_revision(self, revision: Revision) -> None:
        self.revision = revision.number
        self._refs = revision.blocks
        self._starts = [b.offset for b in revision.blocks]

    async def read(self, offset: int, size: int) -> bytes:
        return await self._read_blocks(offset, size)

    async def _read_blocks(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_left(self._starts, end) - 1
        refs = self._refs[first : last + 1]
        found = await self._cache.get_many(r.hash for r in refs)
        if offset == self._next_read and first > 0:
            # A read continuing the previous one past the first block: a
            # sequential reader (a peek at the head of a file fetches nothing more).
            self._prefetch(last + 1)
        self._next_read = end
        if len(refs) == 1:
            ref = refs[0]
            return found[ref.hash][offset - ref.offset : end - ref.offset]
        parts = []
        for ref in refs:
            lo = max(offset, ref.offset) - ref.offset
            hi = min(end, ref.end) - ref.offset
            parts.append(found[ref.hash][lo:hi])
        return b"".join(parts)

    def _prefetch(self, start: int) -> None:
        """Fetches the blocks a sequential reader will want next, in the background."""
        stop = min(start + PREFETCH_BLOCKS, len(self._refs))
        start = max(start, self._prefetched_until)
        for lo in range(start, stop, FETCH_BATCH):
            hashes = [r.hash for r in self._refs[lo : min(lo + FETCH_BATCH, stop)]]
            self._nursery.start_soon(self._prefetch_batch, hashes)
        self._prefetched_until = max(self._prefetched_until, stop)

    async def _prefetch_batch(self, hashes: list[bytes]) -> None:
        # A failure here is reported by the read that needs the block.
        with contextlib.suppress(errors.DriveError):
            await self._cache.get_many(hashes)

    def close(self) -> None:
        """Nothing to free: a reader holds no local state beyond the block cache."""


class OpenFile(RevisionReader):
    def __init__(
        self,
        node: Node,
        revision: Revision,
        *,
        meta: MetadataClient,
        blocks: BlockClient,
        cache: BlockCache,
        staging_dir: Path,
        limiter: trio.CapacityLimiter,
        nursery: trio.Nursery,
    ) -> None:
        super().__init__(revision, cache=cache, nursery=nursery)
        self.node = node
        self.handles = 0
        self._meta = meta
        self._blocks = blocks
        self._staging_dir = staging_dir
        self._limiter = limiter
        self._lock = trio.Lock()
        self.mtime_ns = node.mtime_ns
        self.ctime_ns = node.ctime_ns
        self.held = NO_CHANGE  # chmod/chown/utime made while dirty: sent with the commit
        self.unlinked = False  # its name is gone; it lives on until the last close
        self._staging_fd: int | None = None
        self._staging_path: Path | None = None
        self.dirty = False
        self.stale = False  # another device committed; reads reload first

    async def _thread(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def attributes(self, node: Node) -> Node:
        """node with the local size, times and held attributes while there are unsaved edits."""
        if self._staging_fd is None:
            return node
        local = replace(node, size=self.size, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns)
        return self.held.applied_to(local)

    # --- reading ---------------------------------------------------------

    async def read(self, offset: int, size: int) -> bytes:
        if self._staging_fd is not None:
            return os.pread(self._staging_fd, size, offset)
        if self.stale:
            await self.reload()
        return await self._read_blocks(offset, size)

    async def reload(self) -> None:
        """Adopts the current revision (another device changed the file)."""
        revision = await self._thread(self._meta.get_revision, self.node.id, 0)
        self._set_revision(revision)
        self.size = revision.size
        self.mtime_ns = revision.mtime_ns
        self.stale = False
        self._prefetched_until = 0

    # --- changing --------------------------------------------------------

    async def write(self, offset: int, data: bytes) -> int:
        async with self._lock:
            await self._ensure_staging(keep_content=True)
            assert self._staging_fd is not None
            try:
                written = os.pwrite(self._staging_fd, data, offset)
            except OSError as exc:
                raise _local_disk_error(exc) from exc
            self.size = max(self.size, offset + written)
            self.mtime_ns = self.ctime_ns = time.time_ns()
            self.dirty = True
            return written

    async def truncate(self, length: int) -> None:
        async with self._lock:
            await self._ensure_staging(keep_content=length > 0)
            assert self._staging_fd is not None
            try:
                os.ftruncate(self._staging_fd, length)
            except OSError as exc:
                raise _local_disk_error(exc) from exc
            self.size = length
            self.mtime_ns = self.ctime_ns = time.time_ns()
            self.dirty = True

    def adopt(self, node: Node) -> None:
        """This file's content was saved over node (a rename): carry on as node.

        Called once its edits are committed, so its blocks are node's newest
        revision and later writes go on from there.
        """
        self.node = node
        self.revision = node.revision
        self.mtime_ns, self.ctime_ns = node.mtime_ns, node.ctime_ns

    def touch(self, mtime_ns: int) -> None:
        """An explicit mtime (utime) on a file with unsaved edits, kept for the commit."""
        self.mtime_ns = mtime_ns

    def hold(self, change: AttributeChange) -> None:
        """Attributes set on a file with unsaved edits: they go with the commit.

        tar, cp -p and rsync set owner, mode and times on each file they have
        just written: one commit instead of a call for each.
        """
        self.held = self.held.then(change)
        self.ctime_ns = time.time_ns()

    async def _ensure_staging(self, keep_content: bool) -> None:
        """Starts local edits on the revision this file had when the program saw it.

        Even if another device has committed since (self.stale), the edit is
        based on the revision the program read: the commit will then be
        refused as stale and kept as a conflicted copy, never silently
        applied over the other device's version.
        """
        if self._staging_fd is not None:
            return
        path = self._staging_dir / f"{self.node.id}-{uuid.uuid4().hex}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _local_disk_error(exc) from exc
        try:
            if keep_content:
                for lo in range(0, len(self._refs), FETCH_BATCH * 2):
                    batch = self._refs[lo : lo + FETCH_BATCH * 2]
                    found = await self._cache.get_many(r.hash for r in batch)
                    for ref in batch:
                        os.pwrite(fd, found[ref.hash], ref.offset)
                os.ftruncate(fd, self.size)
            else:
                self.size = 0
        except BaseException as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _local_disk_error(exc) from exc
            raise
        self._staging_fd, self._staging_path = fd, path

    async def commit(self, invalidate: Invalidate) -> Node | None:
        """Uploads and commits unsaved edits; returns the new node, or None if clean.

        A commit refused because another device committed first keeps both
        versions: ours becomes a "conflicted copy" beside the file.
        """
        async with self._lock:
            if not self.dirty:
                return None
            assert self._staging_path is not None and self._staging_fd is not None
            refs = await self._thread(chunk_file, self._staging_path)
            try:
                node = await self._upload_and_commit(refs)
            except errors.StaleRevision:
                await self._commit_conflicted_copy(refs, invalidate)
                return None
            except errors.NotFound:
                if self.node.role in (Role.READ, Role.WRITE):
                    # Someone else's file: their share was taken away (or they
                    # deleted it). The program must hear that its edits were
                    # not saved; the caller decides when to drop them.
                    raise errors.PermissionDenied(
                        f"{self.node.name!r} is no longer shared with you; edits not saved"
                    ) from None
                # Deleted (here or on another device) while open: as on a
                # local disk, writes to an unlinked file vanish with it.
                log.info("%r was deleted while open; its last edits are dropped", self.node.name)
                self.dirty, self.held = False, NO_CHANGE
                return None
            self.node = node
            self._set_revision(
                Revision(node.id, node.revision, node.size, node.mtime_ns, tuple(refs))
            )
            self.dirty, self.held = False, NO_CHANGE
            return node

    async def _upload_and_commit(self, refs: list[BlockRef]) -> Node:
        """Uploads what blockd lacks and commits; outlasts a garbage collection.

        A commit is refused while the collector deletes blocks it refers to
        (unreferenced leftovers we deduplicated against). Asking blockd what
        is missing only tells the truth once they are gone, so wait until
        metad has lifted the fence (the collector lifts it after deleting),
        then upload what is missing and commit again.

        A commit is also refused when a block is neither ours by receipt nor
        in a file we may still read (e.g. it came from a file unshared since):
        then every such block is uploaded, for a receipt, and the commit
        retried once.
        """
        attempt = 0
        proven = False
        while True:
            await self._upload(refs, ask=attempt > 0, everything=proven)
            try:
                return await self._thread(
                    self._meta.commit_revision,
                    self.node.id,
                    self.revision,
                    self.size,
                    self.mtime_ns,
                    refs,
                    self.held,
                )
            except errors.UnprovenBlocks:
                if proven:
                    raise
                proven = True
                log.info("blocks of %r need receipts; uploading them", self.node.name)
            except errors.BlocksCondemned:
                attempt += 1
                if attempt == COMMIT_ATTEMPTS:
                    raise
                log.info("blocks of %r are being collected; waiting", self.node.name)
                await self._wait_for_collector(refs)

    async def _wait_for_collector(self, refs: list[BlockRef]) -> None:
        unique = list({r.hash: r for r in refs}.values())
        delay = 0.05
        deadline = trio.current_time() + COLLECTOR_WAIT_SECONDS
        while await self._thread(self._meta.condemned_among, unique):
            if trio.current_time() > deadline:
                raise errors.Unavailable("garbage collection holds blocks of this file too long")
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _upload(
        self, refs: list[BlockRef], ask: bool = False, everything: bool = False
    ) -> None:
        """Uploads the blocks blockd lacks (or will not tell us it holds: no proof).

        everything: each block we hold no receipt for, whatever blockd holds.
        """
        unique = list({r.hash: r for r in refs}.values())
        if everything:
            wanted = [r for r in unique if not self._blocks.grants.receipt(r.hash, r.size)]
        elif not ask and sum(r.size for r in unique) <= SMALL_UPLOAD_BYTES:
            # Sending a small file costs less than asking which blocks blockd lacks.
            wanted = unique
        else:
            missing = await self._thread(self._blocks.find_missing, [r.hash for r in unique])
            wanted = [r for r in unique if r.hash in missing]
        if not wanted:
            return
        fd = self._staging_fd

        def produce() -> Iterator[tuple[bytes, bytes]]:
            for ref in wanted:
                yield ref.hash, os.pread(fd, ref.size, ref.offset)

        await self._thread(self._blocks.upload, produce)

    async def _commit_conflicted_copy(self, refs: list[BlockRef], invalidate: Invalidate) -> None:
        current = await self._thread(self._meta.stat, self.node.id)
        name = conflict_name(current.name, self._meta.device, time.time())
        copy = await self._thread(self._meta.create_file, current.parent_id, name, self.node.mode)
        await self._thread(
            self._meta.commit_revision,
            copy.id,
            copy.revision,
            self.size,
            self.mtime_ns,
            refs,
            self.held,
        )
        log.info("conflict on %r: local edits kept as %r", current.name, name)
        # This inode now shows the other device's version again.
        self._drop_staging()
        self.dirty, self.held = False, NO_CHANGE
        self.node = current
        await self.reload()
        await invalidate(self.node.id)

    def _drop_staging(self) -> None:
        if self._staging_fd is not None:
            os.close(self._staging_fd)
            self._staging_fd = None
        if self._staging_path is not None:
            self._staging_path.unlink(missing_ok=True)
            self._staging_path = None

    def discard(self) -> None:
        """Forgets unsaved edits the drive refused; reads show the saved revision again."""
        self._drop_staging()
        self.dirty, self.held = False, NO_CHANGE
        self.stale = True

    def close(self) -> None:
        """Frees local resources once the last handle is released (after commit)."""
        self._drop_staging()


def _local_disk_error(exc: OSError) -> errors.DriveError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return errors.NoSpace("local disk full (staging area)")
    return errors.DriveError(f"local staging file: {exc.strerror}")
