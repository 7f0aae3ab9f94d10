"""The local block cache: blocks by hash on disk, recent ones in memory.

Owns: the cache directory (bounded, least recently used evicted first, kept
across remounts), a small in-memory LRU (fusefs/cachememory.py: fetched batches
held whole), and single-flight fetching (two
readers of one missing block cause one download). Every block is verified
against its BLAKE3 hash when it arrives, and a disk copy the first time it is
read after the mount started: a torn or corrupt cache file is a miss, never
wrong bytes. From then on a read takes only the bytes it asks for from the
disk copy (read_range): a 4 KiB read costs a 4 KiB pread, not a 1 MiB read
and hash.

Packs: the blocks of a file written here are not copied block by block into
the cache. The journal's sealed content file they were cut from is hard-linked
into packs/ (no byte copied, no inode made per block: on this ext4 a new inode
costs more than a MiB of copying) and its blocks are indexed as ranges of it in
packs.log, an append-only list of "PACK HASH OFFSET SIZE" lines read back (and
compacted) at start; a torn line is skipped, a wrong one fails the hash check of
the first read after the mount like any damaged copy. The sealed file never
changes once sealed; the link keeps it after the journal lets it go. A pack goes
when its last indexed block is evicted; before that, an evicted block's range is
punched out of it (fallocate PUNCH_HOLE) once the cache's link is the file's
only one, so evicted blocks free their disk space as block files do. While the
journal still links the file the range is left alone: those bytes are the
journal's, which may cut them into blocks again.

Blocks fetched from blockd go into packs too: each batch is appended to the
current fill pack (one pwritev into a range reserved under `_fill_lock`, then
its log lines), a new one started every FILL_PACK_BYTES. A cold read of 1 GiB
makes 16 files, not 1,024 (open, create and rename of a file per block cost the
mount three times its write). The filler holds a reference on its fill pack
(one more in `_pack_blocks`) so eviction of its first blocks does not unlink a
pack still being filled; the reference goes when the next fill pack starts.
A batch's blocks are gathered, verified, side by side in file order into one
page-aligned buffer (cachefiles.gather: the one copy they get here), written with
O_DIRECT as it is (ranges start at a 4 KiB boundary): the bytes go to disk by
DMA instead of being copied into page cache pages, which cost the mount more
than the copy (allocation, accounting, writeback). The memory LRU keeps views
of that buffer, so a read across two blocks of a batch is one view as well
(read_span), not a join. Readers waiting for the blocks get them before the
buffer is written; a later read of the pack goes through the page cache as
usual. A file system without O_DIRECT gets a plain pwritev.

Locking: the memory LRU and the in-flight table are touched only from the
trio thread. The disk index is shared with worker threads and guarded by
`_disk_lock`; file I/O happens outside it (a file can vanish between the
index lookup and the open: that is a miss).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from fusefs import errors
from fusefs.cachefiles import (
    O_DIRECT,
    PACK_LOG,
    PACKS,
    NotDirect,
    copy_range,
    gather,
    log_line,
    pack_entries,
    punch,
    write_all,
    write_direct,
)
from fusefs.cachememory import Batch, Data, MemoryBlocks
from fusefs.chunker import block_hash

log = logging.getLogger(__name__)

Fetcher = Callable[[list[bytes]], list[tuple[bytes, Data]]]


FILL_PACK_BYTES = 64 * 1024 * 1024  # fetched blocks per fill pack, roughly


class BlockCache:
    def __init__(
        self,
        directory: Path,
        fetch: Fetcher,
        *,
        capacity_bytes: int,
        memory_bytes: int = 128 * 1024 * 1024,
        limiter: trio.CapacityLimiter,
    ) -> None:
        """fetch(hashes) downloads blocks (blocking; called in a worker thread)."""
        self._dir = directory / "blocks"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._packs = directory / PACKS
        self._packs.mkdir(exist_ok=True)
        self._pack_log = directory / PACK_LOG
        self._log_lock = threading.Lock()
        self._fill_lock = threading.Lock()
        self._fill: tuple[str, int] | None = None  # the fill pack and its reserved end
        self._direct = bool(O_DIRECT)  # fill packs written with O_DIRECT (until refused)
        self._fetch = fetch
        self._capacity = capacity_bytes
        self._limiter = limiter
        self._memory = MemoryBlocks(memory_bytes)
        self._inflight: dict[bytes, trio.Event] = {}
        self._disk_lock = threading.Lock()
        self._disk: OrderedDict[bytes, int] = OrderedDict()  # hash -> size, LRU order
        self._where: dict[bytes, tuple[str, int]] = {}  # packed blocks: hash -> (pack, offset)
        self._pack_blocks: dict[str, int] = {}  # pack -> how many of _disk it holds
        self._verified: set[bytes] = set()  # disk copies hashed since the mount started
        self._disk_bytes = 0
        self._warned_full = False
        # For /metrics, counted on the trio thread: reads served without loading a
        # block, and blocks loaded (from a cache file not verified yet, or blockd).
        self.hits = 0
        self.loads = 0
        self._scan()

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    def _scan(self) -> None:
        """Rebuilds the disk index, oldest use first; drops leftover temp files."""
        entries: list[tuple[int, bytes, int, tuple[str, int] | None]] = []
        for sub in self._dir.iterdir():
            for f in sub.iterdir():
                if f.name.endswith(".tmp"):
                    f.unlink(missing_ok=True)
                    continue
                with contextlib.suppress(ValueError, FileNotFoundError):
                    st = f.stat()
                    entries.append((st.st_atime_ns, bytes.fromhex(f.name), st.st_size, None))
        files = {h for _, h, _, _ in entries}
        packs = {f.name: f.stat() for f in self._packs.iterdir()}
        for name, h, offset, size in pack_entries(self._pack_log):
            st = packs.get(name)
            if st is not None and h not in files and offset + size <= st.st_size:
                entries.append((st.st_atime_ns, h, size, (name, offset)))
        for _, h, size, where in sorted(entries, key=lambda e: e[0]):
            if h in self._disk:
                continue  # a block file, or an earlier pack, has it
            self._disk[h] = size
            self._disk_bytes += size
            if where is not None:
                self._where[h] = where
                self._pack_blocks[where[0]] = self._pack_blocks.get(where[0], 0) + 1
        for name in packs:
            if name not in self._pack_blocks:
                (self._packs / name).unlink(missing_ok=True)
        self._evict()
        # Compacted: only what is indexed now (a crash meanwhile leaves the old log).
        tmp = self._pack_log.with_name(PACK_LOG + ".tmp")
        tmp.write_text(
            "".join(
                log_line(h, name, offset, self._disk[h])
                for h, (name, offset) in self._where.items()
            )
        )
        os.replace(tmp, self._pack_log)

    def keep(self, blocks: Iterable[tuple[bytes, bytes]]) -> None:
        """Stores blocks this device made itself (hashed from these very bytes), so a file
        written here reads back without a download, also offline. Blocking: a worker thread."""
        for h, data in blocks:
            with self._disk_lock:
                known = h in self._disk
            if not known:
                self._write_disk(h, data)

    def keep_from_file(self, path: Path, blocks: Iterable[tuple[bytes, int, int]]) -> None:
        """keep(), for blocks (hash, offset, size) cut from the file at path, which must
        never change again (a sealed journal file): the file becomes a pack (see the
        module docstring). Blocking."""
        blocks = list(blocks)
        with self._disk_lock:
            new = {h: (offset, size) for h, offset, size in blocks if h not in self._disk}
        if not new:
            return
        name = f"p-{uuid.uuid4().hex}"
        try:
            os.link(path, self._packs / name)
        except OSError:
            self._copy_from_file(path, blocks)  # another file system, say: copies
            return
        # Hashed from these very bytes when cut.
        if not self._index_packed(name, [(h, at, n) for h, (at, n) in new.items()]):
            (self._packs / name).unlink(missing_ok=True)
        self._evict()

    def _index_packed(self, name: str, entries: list[tuple[bytes, int, int]]) -> bool:
        """Logs and indexes blocks (hash, offset, size) of pack name, as verified copies
        (the caller hashed these very bytes); one kept meanwhile by another thread keeps
        its copy. Whether the pack holds any block now."""
        with self._log_lock, open(self._pack_log, "a") as log_file:
            log_file.write("".join(log_line(h, name, at, n) for h, at, n in entries))
        with self._disk_lock:
            for h, at, n in entries:
                if h in self._disk:
                    continue
                self._disk[h] = n
                self._disk_bytes += n
                self._where[h] = (name, at)
                self._pack_blocks[name] = self._pack_blocks.get(name, 0) + 1
                self._verified.add(h)
            return name in self._pack_blocks

    def _copy_from_file(self, path: Path, blocks: list[tuple[bytes, int, int]]) -> None:
        """keep_from_file by copies: the kernel copies each block (copy_file_range)."""
        with open(path, "rb") as source:
            for h, offset, size in blocks:
                with self._disk_lock:
                    known = h in self._disk
                if not known:
                    self._write_disk(h, size, source=(source.fileno(), offset))

    def _path(self, h: bytes) -> Path:
        hexh = h.hex()
        return self._dir / hexh[:2] / hexh

    def _location(self, h: bytes) -> tuple[Path, int]:
        """The file holding block h's disk copy and where in it; under _disk_lock."""
        where = self._where.get(h)
        if where is None:
            return self._path(h), 0
        return self._packs / where[0], where[1]

    # --- trio side -------------------------------------------------------

    def read_range(self, h: bytes, start: int, length: int) -> Data | None:
        """length bytes of block h from start, when memory or a disk copy verified since
        the mount started holds them; None when the block must be loaded (get_many).

        Reads on the event loop: a pread of a local file, mostly from the page cache,
        costs less than a hand-off to a worker thread. From memory the bytes are a
        view, not a copy (the kernel copies them into the reader's buffer anyway).
        """
        data = self._memory.get(h)
        if data is not None:
            self.hits += 1
            return memoryview(data)[start : start + length]
        with self._disk_lock:
            if h not in self._verified:
                return None
            self._disk.move_to_end(h)
            path, at = self._location(h)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget_disk(h)  # (evicted meanwhile)
            return None
        try:
            part = os.pread(fd, length, at + start)
        finally:
            os.close(fd)
        if len(part) != length:
            return None
        self.hits += 1
        return part

    def read_span(self, spans: list[tuple[bytes, int, int]]) -> memoryview | None:
        """The parts (block, start, length) of consecutive blocks a read covers, as one
        view, when one fetched batch holds them side by side in memory; else None.

        A read across a block boundary then costs no copy to join its parts (the batch
        was gathered in file order: see cachefiles.gather).
        """
        whole = self._memory.span(spans)
        if whole is not None:
            self.hits += 1
        return whole

    async def get(self, h: bytes) -> Data:
        return (await self.get_many([h]))[h]

    async def get_many(self, hashes: Iterable[bytes]) -> dict[bytes, Data]:
        """The blocks, from memory, disk or blockd (one download per batch)."""
        result: dict[bytes, Data] = {}
        pending = list(dict.fromkeys(hashes))
        while pending:
            to_fetch: list[bytes] = []
            waits: list[trio.Event] = []
            for h in pending:
                data = self._memory.get(h)
                if data is not None:
                    result[h] = data
                elif h in self._inflight:
                    waits.append(self._inflight[h])
                else:
                    to_fetch.append(h)
            if to_fetch:
                self.loads += len(to_fetch)
                for h in to_fetch:
                    self._inflight[h] = trio.Event()
                try:
                    loaded, batch = await trio.to_thread.run_sync(
                        self._load, to_fetch, limiter=self._limiter
                    )
                    if batch is not None:
                        self._memory.add_batch(batch, loaded)
                    for h, data in loaded.items():
                        self._memory.add(h, data)  # (those from disk; a batch's are in)
                        result[h] = data
                finally:
                    for h in to_fetch:
                        self._inflight.pop(h).set()
                if batch is not None:
                    # Written to disk once readers waiting for them have them in memory:
                    # a sequential reader does not wait for the cache's write.
                    await trio.to_thread.run_sync(
                        self._append_fetched, batch, limiter=self._limiter
                    )
            for event in waits:
                await event.wait()
            # Blocks another task was fetching: now in memory, or that task
            # failed and we try ourselves on the next round.
            pending = [h for h in pending if h not in result]
        return result

    async def copies(self, hashes: Iterable[bytes]) -> dict[bytes, bytes]:
        """Verified copies of these blocks held here (memory or disk); fetches nothing."""
        found = {
            h: bytes(data)
            for h in dict.fromkeys(hashes)
            if (data := self._memory.peek(h)) is not None
        }
        rest = [h for h in dict.fromkeys(hashes) if h not in found]
        if rest:
            on_disk = await trio.to_thread.run_sync(
                self._read_disk_many, rest, limiter=self._limiter
            )
            found.update(on_disk)
        return found

    @property
    def memory_bytes(self) -> int:
        """What the memory LRU holds (see MemoryBlocks.held_bytes)."""
        return self._memory.held_bytes

    # --- worker-thread side ---------------------------------------------

    def _load(self, hashes: list[bytes]) -> tuple[dict[bytes, Data], Batch | None]:
        """The blocks, verified, from disk or blockd; those fetched also as a Batch (to
        append to the cache), which the returned data of each is a view of."""
        found: dict[bytes, Data] = {}
        missing: list[bytes] = []
        batch: Batch | None = None
        for h in hashes:
            data = self._read_disk(h)
            if data is None:
                missing.append(h)
            else:
                found[h] = data
        if missing:
            try:
                fetched = self._fetch(missing)
            except errors.NotFound as exc:
                raise errors.DataLoss(
                    f"a block of this file is missing on the server: {exc}"
                ) from None
            for h, data in fetched:
                if block_hash(data) != h:
                    raise errors.DataLoss(f"block {h.hex()} arrived corrupt")
            absent = set(missing).difference(h for h, _ in fetched)
            if absent:
                raise errors.DataLoss(f"block {min(absent).hex()} was not delivered")
            batch = gather(fetched)
            buf, entries = batch
            for h, at, n in entries:
                found[h] = buf[at : at + n]
        return found, batch

    def _read_disk_many(self, hashes: list[bytes]) -> dict[bytes, bytes]:
        return {h: data for h in hashes if (data := self._read_disk(h)) is not None}

    def _read_disk(self, h: bytes) -> bytes | None:
        with self._disk_lock:
            size = self._disk.get(h)
            if size is None:
                return None
            self._disk.move_to_end(h)
            path, at = self._location(h)
            packed = h in self._where
        try:
            if packed:
                with open(path, "rb", buffering=0) as f:
                    data = os.pread(f.fileno(), size, at)
            else:
                data = path.read_bytes()
        except FileNotFoundError:
            self._forget_disk(h)
            return None
        if block_hash(data) != h:
            log.info("dropping corrupt cache file %s (block %s)", path, h.hex())
            if not packed:  # a pack holds other blocks, maybe intact: only this one goes
                path.unlink(missing_ok=True)
            self._forget_disk(h)
            return None
        with self._disk_lock:
            if h in self._disk:
                self._verified.add(h)
        return data

    def _append_fetched(self, batch: Batch) -> None:
        """Appends a batch of verified fetched blocks to the fill pack, its buffer as it is,
        and indexes them (see the module docstring). No fsync: a block lost in a crash is
        only a miss."""
        buf, entries = batch
        with self._disk_lock:
            entries = [e for e in entries if e[0] not in self._disk]
        if not entries:
            return
        try:
            name, offset = self._reserve(len(buf))
            self._write_pack(self._packs / name, buf, offset)
        except FileNotFoundError:
            return  # every block of it evicted, and its filler moved on: not cached
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._warn_full()
            return
        # Hashed on arrival, these very bytes written (a block the disk had meanwhile
        # keeps its copy; its range here is only padding).
        self._index_packed(name, [(h, offset + at, n) for h, at, n in entries])
        self._evict()

    def _write_pack(self, path: Path, buf: memoryview, offset: int) -> None:
        """An aligned batch buffer at offset (aligned) of path; O_DIRECT when it can."""
        if self._direct:
            try:
                fd = os.open(path, os.O_WRONLY | O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False  # no O_DIRECT on this file system
            else:
                try:
                    write_direct(fd, buf, offset)
                    return
                except NotDirect:
                    self._direct = False
                finally:
                    os.close(fd)
        fd = os.open(path, os.O_WRONLY)
        try:
            write_all(fd, [buf], offset)
        finally:
            os.close(fd)

    def _reserve(self, size: int) -> tuple[str, int]:
        """A range of size bytes at the end of the fill pack: (pack, offset)."""
        released = None
        with self._fill_lock:
            if self._fill is None or self._fill[1] >= FILL_PACK_BYTES:
                name = f"p-{uuid.uuid4().hex}"
                os.close(os.open(self._packs / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
                with self._disk_lock:
                    self._pack_blocks[name] = self._pack_blocks.get(name, 0) + 1  # the hold
                    if self._fill is not None:
                        released = self._release(self._fill[0])
                self._fill = (name, 0)
            name, offset = self._fill
            self._fill = (name, offset + size)
        if released is not None:
            (self._packs / released).unlink(missing_ok=True)
        return name, offset

    def _release(self, name: str) -> str | None:
        """Drops one reference on pack name (under _disk_lock); its name if none is left."""
        left = self._pack_blocks.get(name, 0) - 1
        if left > 0:
            self._pack_blocks[name] = left
            return None
        self._pack_blocks.pop(name, None)
        return name

    def _warn_full(self) -> None:
        if not self._warned_full:
            log.warning("cache disk full; blocks are not cached until space frees up")
            self._warned_full = True

    def _forget_disk(self, h: bytes) -> None:
        with self._disk_lock:
            self._verified.discard(h)
            size = self._disk.pop(h, None)
            if size is not None:
                self._disk_bytes -= size
            hole = self._hole(h, size)
            gone = self._unpack(h)
        if gone is not None:
            (self._packs / gone).unlink(missing_ok=True)
        elif hole is not None:
            punch(*hole)

    def _hole(self, h: bytes, size: int | None) -> tuple[Path, int, int] | None:
        """Where packed block h lies, to punch out if its pack stays (under _disk_lock)."""
        where = self._where.get(h)
        if where is None or size is None:
            return None
        return self._packs / where[0], where[1], size

    def _unpack(self, h: bytes) -> str | None:
        """Drops h's pack entry (under _disk_lock); the pack's name if it holds no more."""
        where = self._where.pop(h, None)
        if where is None:
            return None
        return self._release(where[0])

    def _write_disk(
        self, h: bytes, data: Data | int, source: tuple[int, int] | None = None
    ) -> None:
        """temp + rename; no fsync: a cache file lost in a crash is only a miss. data was
        hashed by the caller (h is its hash): the copy counts as verified. With source
        (fd, offset), data is the size of the block to copy from there."""
        path = self._path(h)
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        size = data if isinstance(data, int) else len(data)
        try:
            try:
                f = open(tmp, "wb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                path.parent.mkdir(exist_ok=True)  # the first block of this fan-out folder
                f = open(tmp, "wb")  # noqa: SIM115
            with f:
                if source is None:
                    f.write(data)
                else:
                    copy_range(source[0], f.fileno(), source[1], size)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._warn_full()
                return
            raise
        with self._disk_lock:
            if h not in self._disk:
                self._disk[h] = size
                self._disk_bytes += size
            hole = self._hole(h, size)
            gone = self._unpack(h)  # packed meanwhile: the block file takes over
            self._verified.add(h)
        if gone is not None:
            (self._packs / gone).unlink(missing_ok=True)
        elif hole is not None:
            punch(*hole)
        self._evict()

    def make_room(self, nbytes: int) -> int:
        """Evicts the least recently used blocks until nbytes are freed (or none are left):
        the local disk is full, and what programs write comes first. Returns bytes freed."""
        return self._evict(max(self._disk_bytes - nbytes, 0))

    def _evict(self, capacity: int | None = None) -> int:
        limit = self._capacity if capacity is None else capacity
        victims = []
        holes = []
        freed = 0
        with self._disk_lock:
            while self._disk_bytes > limit and self._disk:
                h, size = self._disk.popitem(last=False)
                self._verified.discard(h)
                self._disk_bytes -= size
                freed += size
                hole = self._hole(h, size)
                if hole is None:
                    victims.append(self._path(h))
                elif (gone := self._unpack(h)) is not None:
                    victims.append(self._packs / gone)
                else:
                    holes.append(hole)
        for path in victims:
            path.unlink(missing_ok=True)
        for hole in holes:
            punch(*hole)
        return freed
