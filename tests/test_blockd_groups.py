"""The block store's group writes: a stream's small blocks reach the backend in groups.

In-process (asyncio.run) over the local backend, wrapped to count or fail the
groups (put_many calls) it is given, as test_blockd_store.py does for single
puts. What a client relies on stays as it was: every valid block before the
first bad one is stored, durable and counted once; a failed write is an error
of the upload, never a block reported stored; nothing waits forever.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import blake3
import pytest

from blockd.backends.base import Backend, BackendError, BackendFull, Bytes, WrappingBackend
from blockd.backends.local import LocalBackend
from blockd.store import Block, BlockStore
from blockd.storeerrors import InvalidBlock, StoreFull


def block(data: bytes) -> Block:
    return Block(blake3.blake3(data).digest(), data)


def small_blocks(count: int, tag: bytes = b"") -> list[Block]:
    return [block(tag + os.urandom(1 + n * 37 % 16_000)) for n in range(count)]


async def burst(blocks: Sequence[Block]) -> AsyncIterator[Block]:
    """Blocks as a fast client stream delivers them: a pause only now and then."""
    for n, b in enumerate(blocks):
        if n % 50 == 0:
            await asyncio.sleep(0.001)
        yield b


class Groups(WrappingBackend):
    """Records the size of every put_many; fails the keys `fail` picks; slow if told."""

    def __init__(self, backend: Backend, delay: float = 0.0) -> None:
        super().__init__(backend)
        self.delay = delay
        self.sizes: list[int] = []
        self.fail: Callable[[str], BackendError | None] = lambda key: None

    async def put_many(self, items: Sequence[tuple[str, Bytes]]) -> list[int | BackendError]:
        self.sizes.append(len(items))
        await asyncio.sleep(self.delay)
        results = await self.backend.put_many([i for i in items if self.fail(i[0]) is None])
        out: list[int | BackendError] = []
        for k, _ in items:
            error = self.fail(k)
            out.append(error if error is not None else results.pop(0))
        return out


def with_store(
    tmp_path: Path, delay: float, scenario: Callable[[BlockStore, Groups], Awaitable[None]]
) -> None:
    async def main() -> None:
        backend = Groups(await LocalBackend.open(tmp_path / "data"), delay)
        store = await BlockStore.open(backend)
        try:
            await scenario(store, backend)
        finally:
            await store.close()
            await backend.close()

    asyncio.run(main())


def test_a_stream_of_small_blocks_is_written_in_groups_and_each_block_counted(
    tmp_path: Path,
) -> None:
    blocks = small_blocks(400)
    large = block(os.urandom(300_000))  # written on its own, as before

    async def scenario(store: BlockStore, backend: Groups) -> None:
        held: list[tuple[bytes, int]] = []
        summary = await store.put_stream(burst([*blocks[:200], large, *blocks[200:]]), held)
        assert summary.blocks_stored == summary.blocks_received == 401
        assert sorted(held) == sorted((b.hash, len(b.data)) for b in [*blocks, large])
        assert sum(backend.sizes) == 400
        assert len(backend.sizes) < 100  # groups, not one call per block
        assert store.stats().object_count == 401
        assert await backend.contains([b.hash.hex() for b in blocks]) == [True] * 400

    with_store(tmp_path, 0.01, scenario)


def test_grouped_blocks_survive_a_reopen_and_read_back(tmp_path: Path) -> None:
    blocks = small_blocks(50)

    async def main() -> None:
        backend = await LocalBackend.open(tmp_path)
        store = await BlockStore.open(backend)
        await store.put_stream(burst(blocks))
        await store.close()
        await backend.close()
        backend = await LocalBackend.open(tmp_path)
        store = await BlockStore.open(backend)
        try:
            assert store.stats().object_count == 50
            got = [b async for b in store.get_stream([b.hash for b in blocks])]
            assert [bytes(b.data) for b in got] == [b.data for b in blocks]
        finally:
            await store.close()
            await backend.close()

    asyncio.run(main())


def test_a_bad_small_block_ends_the_stream_after_the_blocks_before_it_are_stored(
    tmp_path: Path,
) -> None:
    good = small_blocks(120)
    bad = Block(blake3.blake3(b"claimed").digest(), b"actual")

    async def scenario(store: BlockStore, backend: Groups) -> None:
        held: list[tuple[bytes, int]] = []
        with pytest.raises(InvalidBlock, match="hash mismatch"):
            await store.put_stream(burst([*good, bad, *small_blocks(5)]), held)
        assert sorted(held) == sorted((b.hash, len(b.data)) for b in good)
        assert store.stats().object_count == 120
        assert await backend.contains([bad.hash.hex()]) == [False]

    with_store(tmp_path, 0.01, scenario)


def test_a_block_whose_group_write_failed_is_not_held_and_a_retry_stores_it(
    tmp_path: Path,
) -> None:
    blocks = small_blocks(60)
    doomed = {b.hash.hex() for b in blocks[10:13]}

    async def scenario(store: BlockStore, backend: Groups) -> None:
        backend.fail = lambda k: BackendFull("disk full") if k in doomed else None
        held: list[tuple[bytes, int]] = []
        with pytest.raises(StoreFull):
            await store.put_stream(burst(blocks), held)
        assert not doomed & {digest.hex() for digest, _ in held}
        assert store.stats().object_count == len(held)
        backend.fail = lambda k: None
        summary = await store.put_stream(burst(blocks))  # no claim of the failed write lingers
        assert summary.blocks_stored == 60
        assert store.stats().object_count == 60

    with_store(tmp_path, 0.0, scenario)


def test_concurrent_streams_of_the_same_small_blocks_store_each_once(tmp_path: Path) -> None:
    shared = small_blocks(80, b"shared")

    async def scenario(store: BlockStore, backend: Groups) -> None:
        helds: list[list[tuple[bytes, int]]] = [[], [], []]
        summaries = await asyncio.gather(*(store.put_stream(burst(shared), held) for held in helds))
        assert [s.blocks_stored for s in summaries] == [80, 80, 80]
        for held in helds:
            assert sorted(held) == sorted((b.hash, len(b.data)) for b in shared)
        assert store.stats().object_count == 80

    with_store(tmp_path, 0.02, scenario)


def test_a_cancelled_upload_leaves_no_write_hanging_and_its_verified_blocks_stored(
    tmp_path: Path,
) -> None:
    blocks = small_blocks(30)

    async def endless() -> AsyncIterator[Block]:
        async for b in burst(blocks):
            yield b
        await asyncio.Event().wait()  # the client goes quiet, then away

    async def scenario(store: BlockStore, backend: Groups) -> None:
        upload = asyncio.create_task(store.put_stream(endless()))
        await asyncio.sleep(0.05)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        await asyncio.wait_for(store.close(), 10)  # every claimed write settles
        assert await backend.contains([b.hash.hex() for b in blocks]) == [True] * 30
        assert store.stats().object_count == 30
        # The same blocks again: nothing of the cancelled upload is in the way.
        assert (await store.put_stream(burst(blocks))).blocks_stored == 30

    with_store(tmp_path, 0.2, scenario)
