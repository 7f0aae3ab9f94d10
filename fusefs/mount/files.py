"""Open files: reading revisions block by block, local edits, commits.

RevisionReader reads one revision through the block cache; OpenFile adds
local edits and commits on top of it, and past revisions (.drive-history)
are read by a bare RevisionReader.

One OpenFile per inode however many handles the kernel has open on it, so
every handle sees the others' writes (as on a local disk). A file being
changed gets a private local copy, materialized from its blocks, or from
its sealed content, on the first write unless the write starts from empty:
in memory while it is small (INLINE_BYTES), else a staging file. close()
seals it: the copy becomes a durable row of the write-back journal
(journal.py; a small one inside the row), which the synchronizer commits
later; until then reads and stat show the sealed content.

Locking: `_lock` serializes writes, truncation and sealing of one file so a
seal never takes content that is still being written.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import time
import uuid
from pathlib import Path

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.models import NO_CHANGE, AttributeChange, Node, Revision
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import PendingChange
from fusefs.mount.quicklock import QuickLock

log = logging.getLogger(__name__)

# Blocks read ahead of a sequential reader: the window starts small (a program that
# reads a file's head pays for little) and doubles while the reader keeps catching up
# with it (or waits for blocks it fetches), to ~48 MiB (6 batches on their way: with 4,
# a cold read waited for blockd half the time); a read elsewhere than where the last
# one ended shrinks it again.
# It is fetched in whole batches of FETCH_BATCH blocks (one Download call and one cache
# write each), launched as the reader frees room for one.
PREFETCH_FIRST_BLOCKS = 4
PREFETCH_MAX_BLOCKS = 48
FETCH_BATCH = 8  # blocks per Download call
# A read starting this close to where the last one ended still counts as sequential:
# the kernel's read-ahead has several reads in flight, and they may come in any order.
SEQUENTIAL_SLACK = 4 * 1024 * 1024
COPY_CHUNK = 64 * 1024**2  # bytes per copy_file_range when edits start on sealed content
SEAL_HERE_BYTES = 256 * 1024  # sealed on the event loop up to this size (see seal)
# Edits up to this size stay in memory and are sealed inside their journal row: one
# durable write at close instead of a staging file, its fsync and its folder's.
INLINE_BYTES = 64 * 1024


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
        self._window = PREFETCH_FIRST_BLOCKS

    def _set_revision(self, revision: Revision) -> None:
        self.revision = revision.number
        self._refs = revision.blocks
        self._starts = [b.offset for b in revision.blocks]

    async def read(self, offset: int, size: int) -> bytes | memoryview:
        return await self._read_blocks(offset, size)

    async def _read_blocks(self, offset: int, size: int) -> bytes | memoryview:
        """The bytes, from the block cache: a view of a cached block when one holds them."""
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_left(self._starts, end) - 1
        refs = self._refs[first : last + 1]
        # The part of each block the read covers: (block, its start, its length).
        spans = [
            (ref, max(offset, ref.offset) - ref.offset, min(end, ref.end) - max(offset, ref.offset))
            for ref in refs
        ]
        # Judged and launched before this read waits for its blocks: the kernel sends
        # the next reads meanwhile (its own read-ahead), and they find the reader
        # where this one leaves it, not where the last one that ended did.
        # A read continuing the previous one past the first block: a sequential
        # reader (a peek at the head of a file fetches nothing more).
        sequential = abs(offset - self._next_read) <= SEQUENTIAL_SLACK and first > 0
        if sequential:
            self._prefetch(last + 1)
        elif abs(offset - self._next_read) > SEQUENTIAL_SLACK:
            self._window = PREFETCH_FIRST_BLOCKS  # random access: no more than a little
        self._next_read = end
        if len(spans) > 1:
            # Blocks fetched together lie side by side in memory: one view, no join.
            whole = self._cache.read_span([(ref.hash, lo, n) for ref, lo, n in spans])
            if whole is not None:
                return whole
        kept = [self._cache.read_range(ref.hash, lo, n) for ref, lo, n in spans]
        found: dict[bytes, bytes] = {}
        if None in kept:
            if sequential:
                # The reader caught up with blocks still on their way: the read-ahead
                # does not reach far enough to hide a fetch; it reaches further.
                self._window = min(self._window * 2, PREFETCH_MAX_BLOCKS)
            found = await self._cache.get_many(
                ref.hash for (ref, _, _), part in zip(spans, kept, strict=True) if part is None
            )
        parts = [
            memoryview(found[ref.hash])[lo : lo + n] if part is None else part
            for (ref, lo, n), part in zip(spans, kept, strict=True)
        ]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _prefetch(self, start: int) -> None:
        """Fetches the blocks a sequential reader will want next, in the background."""
        if start + FETCH_BATCH >= self._prefetched_until:
            # The reader has nearly caught up with what was fetched ahead of it.
            self._window = min(self._window * 2, PREFETCH_MAX_BLOCKS)
        stop = min(start + self._window, len(self._refs))
        start = max(start, self._prefetched_until)
        if stop < len(self._refs):
            # Whole batches only (the rest waits for the next read): else each read
            # would fetch the one block it moved the window by, a Download call and a
            # cache write with their overheads per block instead of per batch.
            stop = start + max(stop - start, 0) // FETCH_BATCH * FETCH_BATCH
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
        cache: BlockCache,
        staging_dir: Path,
        nursery: trio.Nursery,
        sealed: PendingChange | None = None,
        sealed_data: bytes | None = None,
    ) -> None:
        super().__init__(revision, cache=cache, nursery=nursery)
        self.node = node
        self.handles = 0
        self._staging_dir = staging_dir
        self._lock = QuickLock()  # (a trio.Lock that skips the scheduler when free)
        self.mtime_ns = node.mtime_ns
        self.ctime_ns = node.ctime_ns
        self.held = NO_CHANGE  # chmod/chown/utime made while dirty: sealed with the content
        self.unlinked = False  # its name is gone; it lives on until the last close
        self._staging_fd: int | None = None
        self._staging_path: Path | None = None
        self._buffer: bytearray | None = None  # unsaved edits of a small file, in memory
        # Content closed but not committed yet (journal): what reads show until edited
        # again; in its file, or (small) in memory as its row holds it.
        self._sealed_fd: int | None = None
        self._sealed_data: bytes | None = None
        self.dirty = False
        # A write failed for want of local disk: the edit cannot be kept whole, so none of it
        # is (close says ENOSPC); a partial file never reaches the drive.
        self.write_failed = False
        self.stale = False  # what it shows may not be ours to read: reads ask metad first
        # Another device committed a newer revision: handles open now keep reading
        # theirs (close-to-open, as NFS and JuiceFS); the next open reads the new one.
        self.superseded = False
        if sealed is not None:
            if sealed.inline:
                assert sealed_data is not None
                self._sealed_data = sealed_data
            else:
                assert sealed.content is not None
                self._sealed_fd = os.open(sealed.content, os.O_RDONLY)
            self.size, self.mtime_ns = sealed.size, sealed.mtime_ns
        # What it shows without its unsaved edits (see discard).
        self._saved = (self.size, self.mtime_ns, self.ctime_ns)

    def attributes(self, node: Node) -> Node:
        """node with the local size, times and held attributes while the content is local."""
        if not self.local:
            return node
        if (node.size, node.mtime_ns, node.ctime_ns) == (self.size, self.mtime_ns, self.ctime_ns):
            return self.held.applied_to(node)
        return self.held.applied_to(
            node, size=self.size, mtime_ns=self.mtime_ns, ctime_ns=self.ctime_ns
        )  # (one copy of node: asked at every stat of a file being written)

    # --- reading ---------------------------------------------------------

    async def read(self, offset: int, size: int) -> bytes | memoryview:
        if self._buffer is not None:
            return bytes(self._buffer[offset : offset + size])
        if self._staging_fd is not None:
            return os.pread(self._staging_fd, min(size, max(self.size - offset, 0)), offset)
        if self._sealed_data is not None:
            return self._sealed_data[offset : offset + size]
        if self._sealed_fd is not None:
            return os.pread(self._sealed_fd, min(size, max(self.size - offset, 0)), offset)
        return await self._read_blocks(offset, size)

    @property
    def local(self) -> bool:
        """Whether its content is on this device (edited, or closed and not committed)."""
        return (
            self._buffer is not None
            or self._staging_fd is not None
            or self._sealed_fd is not None
            or self._sealed_data is not None
        )

    def reload(self, revision: Revision) -> None:
        """Reads on from this revision (the current one, asked again after a share changed)."""
        self._set_revision(revision)
        self.size, self.mtime_ns = revision.size, revision.mtime_ns
        self.stale = False
        self._prefetched_until = 0

    # --- changing --------------------------------------------------------

    async def write(self, offset: int, data: bytes) -> int:
        async with self._lock:
            await self._ensure_staging(keep_content=True)
            end = offset + len(data)
            if self._buffer is not None and end > INLINE_BYTES:
                self._spill()
            if self._buffer is not None:
                if offset > len(self._buffer):
                    self._buffer.extend(bytes(offset - len(self._buffer)))  # a hole reads zeros
                self._buffer[offset:end] = data
                written = len(data)
            else:
                assert self._staging_fd is not None
                try:
                    written = os.pwrite(self._staging_fd, data, offset)
                except OSError as exc:
                    raise local_disk_error(exc) from exc
            self.size = max(self.size, offset + written)
            self.mtime_ns = self.ctime_ns = time.time_ns()
            self.dirty = True
            return written

    async def truncate(self, length: int) -> None:
        async with self._lock:
            await self._ensure_staging(keep_content=length > 0)
            if self._buffer is not None and length > INLINE_BYTES:
                self._spill()
            if self._buffer is not None:
                del self._buffer[length:]
                self._buffer.extend(bytes(length - len(self._buffer)))
            else:
                assert self._staging_fd is not None
                try:
                    os.ftruncate(self._staging_fd, length)
                except OSError as exc:
                    raise local_disk_error(exc) from exc
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

    def landed(self, node: Node) -> None:
        """Sealed content of this file was committed as node's revision."""
        if node.id == self.node.id:
            self.node = node
            self.revision = node.revision
            if not self.local:
                self._saved = (node.size, node.mtime_ns, node.ctime_ns)

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
        """Starts local edits on the content this file shows now.

        That is its sealed content if it has some, else the revision it had
        when the program saw it. Even if another device has committed since,
        the edit is based on the revision the program read: the commit will
        then be refused as stale and kept as a conflicted copy, never
        silently applied over the other device's version.
        """
        if self._staging_fd is not None or self._buffer is not None:
            return
        if not keep_content:
            self._buffer, self.size = bytearray(), 0
            return
        if self.size <= INLINE_BYTES:
            self._buffer = bytearray(await self._small_content())
            return
        fd, path = self._new_staging_file()
        try:
            if self._sealed_data is not None:
                os.pwrite(fd, self._sealed_data, 0)
            elif self._sealed_fd is not None:
                await trio.to_thread.run_sync(_copy_content, self._sealed_fd, fd, self.size)
            else:
                for lo in range(0, len(self._refs), FETCH_BATCH * 2):
                    batch = self._refs[lo : lo + FETCH_BATCH * 2]
                    found = await self._cache.get_many(r.hash for r in batch)
                    for ref in batch:
                        os.pwrite(fd, found[ref.hash], ref.offset)
                os.ftruncate(fd, self.size)
        except BaseException as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise local_disk_error(exc) from exc
            raise
        self._staging_fd, self._staging_path = fd, path

    async def _small_content(self) -> bytes:
        """What the file shows now, whole (it is small)."""
        if self._sealed_data is not None:
            return self._sealed_data
        if self._sealed_fd is not None:
            return os.pread(self._sealed_fd, self.size, 0)
        found = await self._cache.get_many(r.hash for r in self._refs)
        content = bytearray(self.size)
        for ref in self._refs:
            content[ref.offset : ref.end] = found[ref.hash]
        return bytes(content)

    def _new_staging_file(self) -> tuple[int, Path]:
        path = self._staging_dir / f"{self.node.id}-{uuid.uuid4().hex}"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), path
        except OSError as exc:
            raise local_disk_error(exc) from exc

    def _spill(self) -> None:
        """The edits outgrew memory: on into a staging file."""
        assert self._buffer is not None
        fd, path = self._new_staging_file()
        try:
            os.pwrite(fd, self._buffer, 0)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise local_disk_error(exc) from exc
        self._staging_fd, self._staging_path, self._buffer = fd, path, None

    async def seal(self, journal: Journal, mine: bool) -> PendingChange | None:
        """close(2): makes unsaved edits a durable journal row; None if there were none.

        From then on reads show the sealed content until it is edited again.
        """
        async with self._lock:
            if not self.dirty:
                return None
            staging_path, staging_fd = self._staging_path, self._staging_fd
            data = bytes(self._buffer) if self._buffer is not None else None

            def seal() -> PendingChange:
                return journal.seal(
                    node_id=self.node.id,
                    parent_id=self.node.parent_id,
                    name=self.node.name,
                    mine=mine,
                    base_revision=self.revision,
                    size=self.size,
                    mtime_ns=self.mtime_ns,
                    held=self.held,
                    staging=staging_path,
                    staging_fd=staging_fd,
                    data=data,
                )

            try:
                if self.size <= SEAL_HERE_BYTES:
                    # A small file's fsyncs take less than handing them to a thread.
                    sealed = seal()
                else:
                    sealed = await trio.to_thread.run_sync(seal)
            except OSError as exc:
                raise local_disk_error(exc) from exc
            self._close_sealed()
            self._sealed_fd, self._staging_fd, self._staging_path = self._staging_fd, None, None
            self._sealed_data, self._buffer = data, None
            self.dirty, self.held = False, NO_CHANGE
            self._saved = (self.size, self.mtime_ns, self.ctime_ns)
            return sealed

    def discard(self) -> None:
        """Forgets unsaved edits the drive cannot take (a full quota): it shows what it
        showed before them."""
        self._drop_staging()
        self.dirty, self.held = False, NO_CHANGE
        self.size, self.mtime_ns, self.ctime_ns = self._saved

    def _close_sealed(self) -> None:
        self._sealed_data = None
        if self._sealed_fd is not None:
            os.close(self._sealed_fd)
            self._sealed_fd = None

    def _drop_staging(self) -> None:
        self._buffer = None
        if self._staging_fd is not None:
            os.close(self._staging_fd)
            self._staging_fd = None
        if self._staging_path is not None:
            self._staging_path.unlink(missing_ok=True)
            self._staging_path = None

    def close(self) -> None:
        """Frees local resources once the last handle is released (after sealing)."""
        self._drop_staging()
        self._close_sealed()


def _copy_content(source: int, target: int, size: int) -> None:
    """Copies size bytes between two descriptors in the kernel (no Python buffers)."""
    done = 0
    while done < size:
        n = os.copy_file_range(source, target, min(COPY_CHUNK, size - done), done, done)
        if n == 0:
            break
        done += n
    os.ftruncate(target, size)


def local_disk_error(exc: OSError) -> errors.DriveError:
    """A local write that failed (staging file, journal) as the error a program is told."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return errors.NoSpace("local disk full (staging area)")
    return errors.DriveError(f"local staging file: {exc.strerror}")
