"""The block store: content-addressed blocks on top of any Backend.

Owns: what a valid block is (BLAKE3-256 of its data, 1 B to 16 MiB), hash
verification of every block written *and* read (a read from a backend that
authenticates its objects, the codec, is proven by that instead), dedup (one object per hash;
concurrent uploads of one block become one write), the object key of a block
(its hash in lowercase hex), the pipelining of a stream of blocks (with
streamwrites.py: small blocks are written in groups), the
counters of GetStats (by the store's own record of the blocks it holds,
held.py, not by asking the backend before each write), the mapping of
backend errors to store errors (storeerrors.py), which blocks the hot-block cache gets
(verified ones, on write and on read), and quarantine: a block found damaged
(on a read or a scrub) is moved aside so it counts as missing, and whoever
holds its content uploads it again.

Every uploaded block is written, even one the store holds already: the cost
is a write, and it buys two things. The answer and the timing of an upload do
not depend on whether someone else holds that content (no oracle), and an
upload always replaces a damaged copy (healing).

Must not: know gRPC or protobuf (the service translates), know which backend
it has, block the event loop (hashing of anything but small blocks runs in a
worker thread; blake3 releases the GIL), or hop to a thread per small block.

Concurrency: everything here runs on the one event loop, so the counters need
no lock. A write in flight is a future in `_writes`, keyed by object key: the
Task of a large block's write, or the claim of a small block that a group
write (one backend put_many for the small blocks of a stream that arrived
together) settles. Either is shielded from the cancellation of the upload
that started it, so a write that reached the backend is always counted, and
`close()` waits for all of them.
Reads are single-flight the same way: concurrent requests for one block (read
ahead in one stream, or many devices fetching it at once) share one future in
`_reads`, so one backend read, one decryption and one hash check. A stream's
blocks are read in runs (`_runs`: one backend get_many per run, which the local
backend serves in one worker-thread job) that settle those futures. A
quarantine is a Task in `_quarantines`: a write of that block waits for it
(so a fresh copy is never moved aside), and a quarantine is skipped while a
write of the block is in flight (that write replaces the damaged copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import blake3

from blockd.backends.base import (
    Backend,
    BackendError,
)
from blockd.held import HeldBlocks
from blockd.hotcache import HotBlocks
from blockd.storeerrors import (
    HASH_BYTES,
    BlockDamaged,
    StoreError,
    StoreUnavailable,
    backend_errors,
    check_hash,
    check_stored,
)
from blockd.streamwrites import StreamWrites, abandon
from blockd.validblocks import (  # Block: the store's, defined beside its checks
    INLINE_HASH_BYTES,
    Block,
    block_hash,
    check_matches,
    check_shape,
    hashed,
)

log = logging.getLogger(__name__)

# Blocks below this are hashed on the loop and written in groups: one backend
# put_many (one worker-thread job on the local backend, a group commit) for the
# blocks of a stream that arrive while its earlier groups are written.
_SMALL_BLOCK_BYTES = INLINE_HASH_BYTES


@dataclass(frozen=True, slots=True)
class StoredBlock:
    hash: bytes
    stored_size: int  # bytes on the backend
    modified_ns: int  # when it was written


@dataclass(frozen=True, slots=True)
class UploadSummary:
    blocks_received: int
    blocks_stored: int  # verified and written (every valid block received)
    bytes_received: int
    bytes_stored: int  # their payload bytes


@dataclass(frozen=True, slots=True)
class StoreStats:
    object_count: int
    stored_bytes: int  # bytes on the backend
    bytes_received: int  # counters since start: payload of every uploaded block
    blocks_received: int
    bytes_sent: int
    blocks_sent: int


class BlockStore:
    """Blocks by hash; obtain one with `await BlockStore.open(backend)`."""

    def __init__(
        self,
        backend: Backend,
        object_count: int,
        stored_bytes: int,
        *,
        upload_window_bytes: int = 32 * 1024 * 1024,
        download_window: int = 8,
        hot: HotBlocks | None = None,
        on_damaged: Callable[[bytes], None] | None = None,
        held: HeldBlocks | None = None,
    ) -> None:
        self._backend = backend
        # The blocks the counters count (see held.py): none known, if not given.
        self._held = held if held is not None else HeldBlocks()
        self._upload_window_bytes = upload_window_bytes
        self._download_window = download_window
        self._hot = hot
        self._on_damaged = on_damaged
        self._writes: dict[str, asyncio.Future[bool]] = {}  # a _write Task, or a claim
        self._reads: dict[bytes, asyncio.Future[bytes]] = {}
        self._runs: set[asyncio.Task[None]] = set()  # runs of reads (_read_run) in flight
        self._quarantines: dict[str, asyncio.Task[int]] = {}
        self._object_count = object_count
        self._stored_bytes = stored_bytes
        self._bytes_received = 0
        self._blocks_received = 0
        self._bytes_sent = 0
        self._blocks_sent = 0

    @classmethod
    async def open(
        cls,
        backend: Backend,
        *,
        upload_window_bytes: int = 32 * 1024 * 1024,
        download_window: int = 8,
        hot: HotBlocks | None = None,
        on_damaged: Callable[[bytes], None] | None = None,
    ) -> BlockStore:
        """Counts what the backend holds (one listing) and returns the store.

        upload_window_bytes: payload of one Upload stream being verified and
        written at once (at least one block); download_window: blocks of one
        Download read ahead (so up to 8 x 16 MiB). Both bound the memory a
        stream holds and let disk waits overlap. hot: the cache of recently
        read and written blocks, if any. on_damaged(hash) is called on the
        event loop for every block quarantined (it must not block).
        """
        count = size = 0
        held = HeldBlocks()
        with backend_errors(None):
            async for info in backend.list_objects():
                count += 1
                size += info.size
                if len(info.key) == 2 * HASH_BYTES:
                    with contextlib.suppress(ValueError):
                        held.add_listed(bytes.fromhex(info.key))
        return cls(
            backend,
            count,
            size,
            upload_window_bytes=upload_window_bytes,
            download_window=download_window,
            hot=hot,
            on_damaged=on_damaged,
            held=held,
        )

    async def close(self) -> None:
        """Waits for the writes still in flight (their uploads may be gone)."""
        while self._writes or self._reads or self._runs or self._quarantines:
            await asyncio.gather(
                *self._writes.values(),
                *self._reads.values(),
                *self._runs,
                *self._quarantines.values(),
                return_exceptions=True,
            )

    def stats(self) -> StoreStats:
        return StoreStats(
            object_count=self._object_count,
            stored_bytes=self._stored_bytes,
            bytes_received=self._bytes_received,
            blocks_received=self._blocks_received,
            bytes_sent=self._bytes_sent,
            blocks_sent=self._blocks_sent,
        )

    async def find_missing(self, hashes: Sequence[bytes]) -> list[bytes]:
        """The hashes (in their order, repeats kept) of blocks the store does not hold."""
        for digest in hashes:
            check_hash(digest)
        with backend_errors(None):
            present = await self._backend.contains([digest.hex() for digest in hashes])
        return [digest for digest, held in zip(hashes, present, strict=True) if not held]

    async def put_stream(
        self, blocks: AsyncIterable[Block], held: list[tuple[bytes, int]] | None = None
    ) -> UploadSummary:
        """Verifies and stores a stream of blocks, up to upload_window_bytes at once.

        Reading the next block overlaps with hashing and writing the previous
        ones. On the first bad block no further block is read; the blocks
        already in flight are finished (the valid ones stay stored) and then
        the error of the earliest failing block is raised. Returns only when
        every block is durably stored. The hash and size of every block
        verified and stored is appended to `held`, even if the call fails.

        Small blocks (see _SMALL_BLOCK_BYTES) are verified on the loop and
        written in groups (streamwrites.py).
        """
        received = bytes_received = 0
        writes = StreamWrites(
            window_bytes=self._upload_window_bytes,
            claim=self._claim,
            put=self._put,
            write_group=self._write_group,
            held=held,
        )
        try:
            async for block in blocks:
                self._blocks_received += 1
                self._bytes_received += len(block.data)
                received += 1
                bytes_received += len(block.data)
                if writes.failed():
                    break  # a block before this one was bad: this one is not stored
                await writes.add(block)
                if writes.failed():
                    break
            await writes.finish()
        finally:
            writes.abandon()  # left over only when cancelled (the client went away)
        writes.raise_first_failure()
        return UploadSummary(received, writes.stored, bytes_received, writes.bytes_stored)

    def _claim(self, block: Block) -> asyncio.Future[bool] | None:
        """For a small block: verifies it here (raises InvalidBlock) and returns the claim
        of its write, which the caller owes (a group write, _write_group, settles it).
        None for a large block, or one being written or quarantined already: _put it
        (it waits for those first)."""
        if len(block.data) >= _SMALL_BLOCK_BYTES:
            return None
        check_shape(block)
        check_matches(block, blake3.blake3(block.data).digest())
        key = block.hash.hex()
        if key in self._writes or key in self._quarantines:
            return None
        claim: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._writes[key] = claim
        claim.add_done_callback(partial(self._write_done, key))
        return claim

    async def _put(self, block: Block) -> bool:
        """Verifies one block and writes it; True if the store did not hold it."""
        check_shape(block)
        check_matches(block, await block_hash(block.data))
        key = block.hash.hex()
        while True:
            quarantine = self._quarantines.get(key)
            if quarantine is not None:
                with contextlib.suppress(StoreError):
                    await asyncio.shield(quarantine)
                continue
            write = self._writes.get(key)
            if write is None:
                write = asyncio.create_task(self._write(key, block.data))
                self._writes[key] = write
                write.add_done_callback(partial(self._write_done, key))
                new = await asyncio.shield(write)
                break
            try:
                await asyncio.shield(write)
            except StoreError:
                continue  # that write failed; try ours
            new = False
            break
        if self._hot is not None:
            self._hot.add(block.hash, block.data)  # stored and verified: others may fetch it soon
        return new

    async def _write_group(
        self, group: list[tuple[Block, asyncio.Future[bool]]]
    ) -> list[StoreError | None]:
        """Writes verified blocks in one backend call (put_many) and settles each one's
        claim (see _claim); each block's error, or None where it was stored."""
        out: list[StoreError | None] = []
        try:
            try:
                results: list[Any] = await self._backend.put_many(
                    [(block.hash.hex(), block.data) for block, _ in group]
                )
            except BackendError as exc:
                results = [exc] * len(group)
            mapped: dict[int, StoreError] = {}  # one log line per distinct backend error
            for (block, claim), result in zip(group, results, strict=True):
                if isinstance(result, BackendError):
                    if id(result) not in mapped:
                        try:
                            with backend_errors(block.hash.hex()):
                                raise result
                        except StoreError as exc:
                            mapped[id(result)] = exc
                    out.append(mapped[id(result)])
                    claim.set_exception(mapped[id(result)])
                    continue
                new = self._held.add(block.hash)
                if new:
                    self._object_count += 1
                    self._stored_bytes += result
                if self._hot is not None:
                    self._hot.add(block.hash, block.data)
                claim.set_result(new)
                out.append(None)
        finally:
            for _, claim in group:
                if not claim.done():  # cancelled, or a bug: never leave a waiter hanging
                    claim.set_exception(StoreUnavailable("the write of this block was cut short"))
        return out

    async def _write(self, key: str, data: bytes) -> bool:
        """Writes the object, replacing any copy there (see the module docstring); new?

        New or not is the store's own knowledge (held.py), not a question to
        the backend: one request per block, and the same one whether or not
        the block is held. A write racing another writer of the same block
        (another replica) is harmless: both write the same content.
        """
        with backend_errors(key):
            size = await self._backend.put(key, data)
        new = self._held.add(bytes.fromhex(key))
        if new:
            self._object_count += 1
            self._stored_bytes += size
        return new

    def _write_done(self, key: str, write: asyncio.Future[bool]) -> None:
        if self._writes.get(key) is write:
            del self._writes[key]
        if not write.cancelled():
            write.exception()  # retrieved: its uploader may have gone away

    async def get_stream(self, hashes: Sequence[bytes]) -> AsyncIterator[Block]:
        """The blocks in request order, reading up to download_window ahead.

        Read in runs of download_window // 2 blocks (see _get_run), the next
        run read while this one is yielded. Raises the error of the first block
        that cannot be returned, after yielding the ones before it. An async
        generator: close it (aclosing) so the reads ahead are abandoned.
        """
        for digest in hashes:
            check_hash(digest)
        run = max(self._download_window // 2, 1)
        queue: deque[asyncio.Task[list[Block | StoreError]]] = deque()
        starts = iter(range(0, len(hashes), run))

        def read_ahead() -> None:
            while len(queue) < 2 and (start := next(starts, None)) is not None:
                queue.append(asyncio.create_task(self._get_run(hashes[start : start + run])))

        try:
            read_ahead()
            while queue:
                blocks = await queue.popleft()
                read_ahead()
                for block in blocks:
                    if isinstance(block, StoreError):
                        raise block
                    self._blocks_sent += 1
                    self._bytes_sent += len(block.data)
                    yield block
        finally:
            abandon(queue)

    async def _get_run(self, digests: Sequence[bytes]) -> list[Block | StoreError]:
        """The blocks in order, up to and including the first that fails (its error).

        Hot blocks come from memory; a block another request is reading is
        awaited (single-flight); the rest are read by one backend call for the
        run (get_many: one worker-thread job on the local backend, not one per
        block), each verified against its hash.
        """
        reads: dict[bytes, asyncio.Future[bytes]] = {}
        todo: list[bytes] = []
        for digest in dict.fromkeys(digests):
            if self._hot is not None and digest in self._hot:
                continue
            if (read := self._reads.get(digest)) is not None:
                reads[digest] = read
            else:
                todo.append(digest)
        if todo:
            loop = asyncio.get_running_loop()
            futures = {d: loop.create_future() for d in todo}
            for digest, future in futures.items():
                self._reads[digest] = reads[digest] = future
                future.add_done_callback(partial(self._read_done, digest))
            # Its own task: a reader that goes away does not cancel what others await.
            self._runs.add(task := asyncio.create_task(self._read_run(futures)))
            task.add_done_callback(self._runs.discard)
        out: list[Block | StoreError] = []
        for digest in digests:
            data = self._hot.get(digest) if digest not in reads and self._hot is not None else None
            if data is None:
                # (A hot block evicted since the run began is read on its own.)
                read = reads.get(digest) or reads.setdefault(digest, self._read_alone(digest))
                try:
                    data = await asyncio.shield(read)
                except StoreError as exc:
                    out.append(exc)
                    break
            out.append(Block(digest, data))
        return out

    async def _read_run(self, futures: dict[bytes, asyncio.Future[bytes]]) -> None:
        """Reads the blocks of futures in one backend call and settles each future."""
        try:
            digests = list(futures)
            keys = [digest.hex() for digest in digests]
            try:
                if self._backend.authenticates_objects:
                    found: list[Any] = await self._backend.get_many(keys)
                else:
                    found = await self._backend.get_many_then(keys, hashed)
            except BackendError as exc:
                found = [exc] * len(keys)
            for digest, key, result in zip(digests, keys, found, strict=True):
                try:
                    data = self._checked(digest, key, result)
                except BlockDamaged as exc:
                    with contextlib.suppress(StoreError):
                        await self.quarantine(digest)
                    futures[digest].set_exception(exc)
                except StoreError as exc:
                    futures[digest].set_exception(exc)
                else:
                    if self._hot is not None:
                        self._hot.add(digest, data)
                    futures[digest].set_result(data)
        finally:
            for future in futures.values():
                if not future.done():
                    future.cancel()

    def _checked(self, digest: bytes, key: str, result: Any) -> bytes:
        """A block's data from what get_many(_then) returned for it, or its store error."""
        if isinstance(result, BackendError):
            with backend_errors(key):
                raise result
        if self._backend.authenticates_objects:
            return result  # see _read_backend
        data, actual = result
        check_stored(key, digest, actual)
        return data

    def _read_alone(self, digest: bytes) -> asyncio.Future[bytes]:
        """A read of one block (a hot one evicted while its run was read, say)."""
        read = asyncio.create_task(self._read(digest))
        self._reads[digest] = read
        read.add_done_callback(partial(self._read_done, digest))
        return read

    def _read_done(self, digest: bytes, read: asyncio.Future[bytes]) -> None:
        if self._reads.get(digest) is read:
            del self._reads[digest]
        if not read.cancelled():
            read.exception()  # retrieved: its readers may have gone away

    # --- maintenance: garbage collection and scrub ------------------------

    async def objects(self) -> AsyncIterator[StoredBlock]:
        """Every block on the backend, with its stored size and age."""
        async with contextlib.aclosing(self._backend.list_objects()) as listing:
            async for info in listing:
                try:
                    digest = bytes.fromhex(info.key)
                except ValueError:
                    continue  # not a block (a marker or a stranger's object)
                if len(digest) == HASH_BYTES:
                    yield StoredBlock(digest, info.size, info.modified_ns)

    async def verify(self, digest: bytes) -> bool:
        """Reads a block from the backend itself (never the hot blocks) and checks it.

        A damaged block is quarantined, then rewritten at once from the hot
        blocks if they hold a verified copy: returns True when it was healed
        so. Raises BlockNotFound, BlockCorrupt (BlockDamaged: quarantined and
        not healed) or StoreUnavailable.
        """
        try:
            await self._read_backend(digest)
        except BlockDamaged:
            await self.quarantine(digest)
            copy = self._hot.get(digest) if self._hot is not None else None
            if copy is None:
                raise
            await self._put(Block(digest, copy))
            log.warning("block %s healed from a verified copy in memory", digest.hex())
            return True
        return False

    async def quarantine(self, digest: bytes) -> None:
        """Moves a damaged block aside so it counts as missing (see the module docstring)."""
        key = digest.hex()
        if key in self._writes:
            return  # being written right now: the write replaces the damaged copy
        task = self._quarantines.get(key)
        if task is None:
            task = asyncio.create_task(self._move_aside(digest))
            self._quarantines[key] = task
            task.add_done_callback(partial(self._quarantine_done, key))
        await asyncio.shield(task)

    async def _move_aside(self, digest: bytes) -> int:
        key = digest.hex()
        if self._hot is not None:
            self._hot.discard(digest)
        with backend_errors(key):
            size = await self._backend.quarantine(key)
        self._held.discard(digest)
        if size:
            self._object_count = max(self._object_count - 1, 0)
            self._stored_bytes = max(self._stored_bytes - size, 0)
            log.warning(
                "quarantined corrupt block %s: it counts as missing until its content is "
                "uploaded again",
                key,
            )
            if self._on_damaged is not None:
                self._on_damaged(digest)
        return size

    def _quarantine_done(self, key: str, task: asyncio.Task[int]) -> None:
        if self._quarantines.get(key) is task:
            del self._quarantines[key]
        if not task.cancelled():
            task.exception()

    async def delete(self, block: StoredBlock) -> None:
        """Removes a block the garbage collector has condemned (idempotent)."""
        key = block.hash.hex()
        if self._hot is not None:
            self._hot.discard(block.hash)
        with backend_errors(key):
            await self._backend.delete(key)
        if self._held.discard(block.hash):  # a second delete of it is not counted again
            self._object_count = max(self._object_count - 1, 0)
            self._stored_bytes = max(self._stored_bytes - block.stored_size, 0)

    async def _read(self, digest: bytes) -> bytes:
        try:
            data = await self._read_backend(digest)
        except BlockDamaged:
            await self.quarantine(digest)
            raise
        if self._hot is not None:
            self._hot.add(digest, data)
        return data

    async def _read_backend(self, digest: bytes) -> bytes:
        """The block's bytes from the backend, verified. Raises BlockDamaged if they are not."""
        key = digest.hex()
        with backend_errors(key):
            data = await self._backend.get(key)
        if self._backend.authenticates_objects:
            # Proven to be what was put under this hash, and a put follows a check of it.
            return data
        check_stored(key, digest, await block_hash(data))
        return data
