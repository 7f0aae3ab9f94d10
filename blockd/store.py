"""The block store: content-addressed blocks on top of any Backend.

Owns: what a valid block is (BLAKE3-256 of its data, 1 B to 16 MiB), hash
verification of every block written *and* read, dedup (a held block is never
rewritten; concurrent uploads of one block become one write), the object key
of a block (its hash in lowercase hex), the pipelining of a stream of blocks,
the counters of GetStats, the mapping of backend errors to store errors, and
which blocks the hot-block cache gets (verified ones, on write and on read).

Must not: know gRPC or protobuf (the service translates), know which backend
it has, block the event loop (hashing of anything but small blocks runs in a
worker thread; blake3 releases the GIL).

Concurrency: everything here runs on the one event loop, so the counters need
no lock. A write in flight is a Task in `_writes`, keyed by object key; it is
shielded from the cancellation of the upload that started it, so a write that
reached the backend is always counted, and `close()` waits for all of them.
Reads are single-flight the same way: concurrent requests for one block (read
ahead in one stream, or many devices fetching it at once) share one Task in
`_reads`, so one backend read, one decryption and one hash check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import blake3

from blockd.backends.base import (
    Backend,
    BackendFull,
    BackendUnavailable,
    ObjectCorrupt,
    ObjectNotFound,
)
from blockd.hotcache import HotBlocks

log = logging.getLogger(__name__)

HASH_BYTES = 32
MAX_BLOCK_BYTES = 16 * 1024 * 1024
# Below this, hashing (~20 µs) costs less than a hop to a worker thread.
_INLINE_HASH_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    hash: bytes  # BLAKE3-256 of data
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredBlock:
    hash: bytes
    stored_size: int  # bytes on the backend
    modified_ns: int  # when it was written


@dataclass(frozen=True, slots=True)
class UploadSummary:
    blocks_received: int
    blocks_stored: int  # new to the store; the others were already held
    bytes_received: int
    bytes_stored: int  # payload bytes of the new blocks


@dataclass(frozen=True, slots=True)
class StoreStats:
    object_count: int
    stored_bytes: int  # bytes on the backend
    bytes_received: int  # counters since start: payload of every uploaded block
    blocks_received: int
    bytes_sent: int
    blocks_sent: int


class StoreError(Exception):
    """Base of the store's domain errors; the message is for the client."""


class InvalidBlock(StoreError):
    """A malformed hash, an empty or too large block, or data not matching its hash."""


class BlockNotFound(StoreError):
    """The store does not hold the block."""


class BlockCorrupt(StoreError):
    """The store holds the block but cannot return its exact bytes."""


class StoreUnavailable(StoreError):
    """The backend is down; retrying later may succeed."""


class StoreFull(StoreError):
    """The backend has no room for a new block."""


async def block_hash(data: bytes) -> bytes:
    """BLAKE3-256 of data, computed off the event loop unless data is small."""
    if len(data) < _INLINE_HASH_BYTES:
        return blake3.blake3(data).digest()
    return await asyncio.to_thread(_hash_large, data)


def _hash_large(data: bytes) -> bytes:
    return blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest()


def check_hash(digest: bytes) -> None:
    if len(digest) != HASH_BYTES:
        raise InvalidBlock(
            f"a block hash is {HASH_BYTES} bytes (BLAKE3-256), got {len(digest)}: "
            f"{digest[:64].hex()}"
        )


def _abandon(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancels tasks no one will await, retrieving the errors of finished ones."""
    for task in tasks:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()


@contextlib.contextmanager
def _backend_errors(key: str | None) -> Iterator[None]:
    """Backend error → store error, for an operation on the block under key (or many)."""
    try:
        yield
    except ObjectNotFound:
        raise BlockNotFound(f"block {key} not found") from None
    except ObjectCorrupt as exc:
        log.error("stored block %s is unreadable: %s", key, exc)
        raise BlockCorrupt(f"stored block {key} is unreadable") from exc
    except BackendFull as exc:
        log.warning("backend full: %s", exc)
        raise StoreFull("no room to store blocks") from exc
    except BackendUnavailable as exc:
        log.warning("backend unavailable: %s", exc)
        raise StoreUnavailable(f"block storage unavailable: {exc}") from exc


class BlockStore:
    """Blocks by hash; obtain one with `await BlockStore.open(backend)`."""

    def __init__(
        self,
        backend: Backend,
        object_count: int,
        stored_bytes: int,
        *,
        upload_window_bytes: int = 32 * 1024 * 1024,
        download_window: int = 4,
        hot: HotBlocks | None = None,
    ) -> None:
        self._backend = backend
        self._upload_window_bytes = upload_window_bytes
        self._download_window = download_window
        self._hot = hot
        self._writes: dict[str, asyncio.Task[bool]] = {}
        self._reads: dict[bytes, asyncio.Task[bytes]] = {}
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
        download_window: int = 4,
        hot: HotBlocks | None = None,
    ) -> BlockStore:
        """Counts what the backend holds (one listing) and returns the store.

        upload_window_bytes: payload of one Upload stream being verified and
        written at once (at least one block); download_window: blocks of one
        Download read ahead (so up to 4 x 16 MiB). Both bound the memory a
        stream holds and let disk waits overlap. hot: the cache of recently
        read and written blocks, if any.
        """
        count = size = 0
        with _backend_errors(None):
            async for info in backend.list_objects():
                count += 1
                size += info.size
        return cls(
            backend,
            count,
            size,
            upload_window_bytes=upload_window_bytes,
            download_window=download_window,
            hot=hot,
        )

    async def close(self) -> None:
        """Waits for the writes still in flight (their uploads may be gone)."""
        while self._writes or self._reads:
            await asyncio.gather(
                *self._writes.values(), *self._reads.values(), return_exceptions=True
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
        with _backend_errors(None):
            present = await self._backend.contains([digest.hex() for digest in hashes])
        return [digest for digest, held in zip(hashes, present, strict=True) if not held]

    async def put_stream(
        self, blocks: AsyncIterable[Block], held: list[bytes] | None = None
    ) -> UploadSummary:
        """Verifies and stores a stream of blocks, up to upload_window_bytes at once.

        Reading the next block overlaps with hashing and writing the previous
        ones. On the first bad block no further block is read; the blocks
        already in flight are finished (the valid ones stay stored) and then
        the error of the earliest failing block is raised. Returns only when
        every block is durably stored. The hash of every block verified and
        held (new or a duplicate) is appended to `held`, even if the call fails.
        """
        received = stored = bytes_received = bytes_stored = 0
        in_flight = 0  # bytes of the pending blocks
        # task → (position, size, hash)
        pending: dict[asyncio.Task[bool], tuple[int, int, bytes]] = {}
        failures: list[tuple[int, BaseException]] = []

        def harvest(done: set[asyncio.Task[bool]]) -> None:
            nonlocal stored, bytes_stored, in_flight
            for task in done:
                position, size, digest = pending.pop(task)
                in_flight -= size
                if (exc := task.exception()) is not None:
                    failures.append((position, exc))
                    continue
                if held is not None:
                    held.append(digest)
                if task.result():
                    stored += 1
                    bytes_stored += size

        try:
            async for block in blocks:
                self._blocks_received += 1
                self._bytes_received += len(block.data)
                received += 1
                bytes_received += len(block.data)
                harvest({task for task in pending if task.done()})
                if failures:
                    break  # a block before this one was bad: this one is not stored
                task = asyncio.create_task(self._put(block))
                pending[task] = (received - 1, len(block.data), block.hash)
                in_flight += len(block.data)
                if in_flight >= self._upload_window_bytes:
                    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    harvest(done)
                    if failures:
                        break
            if pending:
                done, _ = await asyncio.wait(pending)
                harvest(done)
        finally:
            # Left over only when cancelled (the client went away) or the
            # stream broke: stop verifying. A write already started goes on,
            # shielded, and is counted.
            _abandon(pending)
        if failures:
            raise min(failures, key=lambda failure: failure[0])[1]
        return UploadSummary(received, stored, bytes_received, bytes_stored)

    async def _put(self, block: Block) -> bool:
        """Verifies one block and stores it unless held; True if it was new."""
        check_hash(block.hash)
        if not block.data:
            raise InvalidBlock(f"block {block.hash.hex()} is empty (an empty file has no blocks)")
        if len(block.data) > MAX_BLOCK_BYTES:
            raise InvalidBlock(
                f"block {block.hash.hex()} is {len(block.data)} bytes; "
                f"the limit is {MAX_BLOCK_BYTES}"
            )
        actual = await block_hash(block.data)
        if actual != block.hash:
            raise InvalidBlock(
                f"hash mismatch: block {block.hash.hex()} carries data whose hash is {actual.hex()}"
            )
        key = block.hash.hex()
        while True:
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

    async def _write(self, key: str, data: bytes) -> bool:
        with _backend_errors(key):
            if (await self._backend.contains([key]))[0]:
                return False
            size = await self._backend.put(key, data)
        self._object_count += 1
        self._stored_bytes += size
        return True

    def _write_done(self, key: str, write: asyncio.Task[bool]) -> None:
        if self._writes.get(key) is write:
            del self._writes[key]
        if not write.cancelled():
            write.exception()  # retrieved: its uploader may have gone away

    async def get_stream(self, hashes: Sequence[bytes]) -> AsyncIterator[Block]:
        """The blocks in request order, reading up to download_window ahead.

        Raises the error of the first block that cannot be returned, after
        yielding the ones before it. An async generator: close it (aclosing)
        so the reads ahead are cancelled.
        """
        for digest in hashes:
            check_hash(digest)
        queue: deque[asyncio.Task[Block]] = deque()
        todo = iter(hashes)

        def read_ahead() -> None:
            while len(queue) < self._download_window:
                digest = next(todo, None)
                if digest is None:
                    return
                queue.append(asyncio.create_task(self._get(digest)))

        try:
            read_ahead()
            while queue:
                block = await queue.popleft()
                read_ahead()
                self._blocks_sent += 1
                self._bytes_sent += len(block.data)
                yield block
        finally:
            _abandon(queue)

    async def _get(self, digest: bytes) -> Block:
        """One block, verified against its hash (or from the hot blocks, verified before)."""
        if self._hot is not None and (data := self._hot.get(digest)) is not None:
            return Block(digest, data)
        read = self._reads.get(digest)
        if read is None:
            read = asyncio.create_task(self._read(digest))
            self._reads[digest] = read
            read.add_done_callback(partial(self._read_done, digest))
        return Block(digest, await asyncio.shield(read))

    def _read_done(self, digest: bytes, read: asyncio.Task[bytes]) -> None:
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

    async def verify(self, digest: bytes) -> None:
        """Reads a block from the backend itself (never the hot blocks) and checks it.

        Raises BlockNotFound, BlockCorrupt or StoreUnavailable.
        """
        key = digest.hex()
        with _backend_errors(key):
            data = await self._backend.get(key)
        if await block_hash(data) != digest:
            raise BlockCorrupt(f"stored block {key} does not match its hash")

    async def delete(self, block: StoredBlock) -> None:
        """Removes a block the garbage collector has condemned (idempotent)."""
        key = block.hash.hex()
        if self._hot is not None:
            self._hot.discard(block.hash)
        with _backend_errors(key):
            await self._backend.delete(key)
        self._object_count = max(self._object_count - 1, 0)
        self._stored_bytes = max(self._stored_bytes - block.stored_size, 0)

    async def _read(self, digest: bytes) -> bytes:
        key = digest.hex()
        with _backend_errors(key):
            data = await self._backend.get(key)
        actual = await block_hash(data)
        if actual != digest:
            log.error("stored block %s is corrupt: its data hashes to %s", key, actual.hex())
            raise BlockCorrupt(f"stored block {key} is corrupt")
        if self._hot is not None:
            self._hot.add(digest, data)
        return data
