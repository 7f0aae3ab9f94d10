"""Read-ahead of a sequential reader, driven directly (no kernel, no daemons).

What users rely on: a file read from start to end returns its exact bytes, each
block is downloaded once, and the blocks ahead come in whole batches (a Download
call and a cache write per batch, not per block: a cold read's cost in both the
mount and blockd).
"""

from __future__ import annotations

import random

import blake3
import trio

from fusefs.cache import BlockCache
from fusefs.models import BlockRef, Revision
from fusefs.mount.files import FETCH_BATCH, RevisionReader

BLOCK = 64 * 1024


class _Fetcher:
    """Stands in for blockd: serves its blocks, noting each call's hashes."""

    def __init__(self, blocks: dict[bytes, bytes]) -> None:
        self.blocks = blocks
        self.calls: list[list[bytes]] = []

    def __call__(self, hashes: list[bytes]) -> list[tuple[bytes, bytes]]:
        self.calls.append(hashes)
        return [(h, self.blocks[h]) for h in hashes]


def test_a_sequential_reader_gets_its_bytes_with_blocks_fetched_once_in_whole_batches(
    tmp_path,
) -> None:
    count = 5 * FETCH_BATCH + 3  # a tail shorter than a batch
    rng = random.Random(5)
    datas = [rng.randbytes(BLOCK - 7 * n) for n in range(count)]  # boundaries off the reads
    refs, offset = [], 0
    for data in datas:
        refs.append(BlockRef(blake3.blake3(data).digest(), offset, len(data)))
        offset += len(data)
    content = b"".join(datas)
    fetch = _Fetcher({r.hash: d for r, d in zip(refs, datas, strict=True)})

    async def main() -> bytes:
        cache = BlockCache(
            tmp_path / "cache", fetch, capacity_bytes=1 << 30, limiter=trio.CapacityLimiter(4)
        )
        got = bytearray()
        async with trio.open_nursery() as nursery:
            reader = RevisionReader(
                Revision(1, 1, len(content), 0, tuple(refs)), cache=cache, nursery=nursery
            )
            while part := await reader.read(len(got), BLOCK):
                got += part
        return bytes(got)

    assert trio.run(main) == content
    fetched = [h for call in fetch.calls for h in call]
    assert sorted(fetched) == sorted(r.hash for r in refs), "a block fetched twice, or never"
    # The reader's first reads fetch their own blocks; from then on the read-ahead
    # fetches whole batches (one per FETCH_BATCH blocks), not a call per read.
    assert len(fetch.calls) <= count // FETCH_BATCH + 4, [len(c) for c in fetch.calls]


def _remote_file(count: int, seed: int) -> tuple[list[BlockRef], bytes, _Fetcher]:
    rng = random.Random(seed)
    datas = [rng.randbytes(BLOCK - 7 * n) for n in range(count)]  # boundaries off the reads
    refs, offset = [], 0
    for data in datas:
        refs.append(BlockRef(blake3.blake3(data).digest(), offset, len(data)))
        offset += len(data)
    return refs, b"".join(datas), _Fetcher({r.hash: d for r, d in zip(refs, datas, strict=True)})


def test_reads_the_kernel_sends_out_of_order_keep_the_read_ahead_going(tmp_path) -> None:
    # The kernel's own read-ahead has several reads in flight; the mount may take a
    # later one first. Both get their bytes, and the blocks ahead still come in batches.
    count = 6 * FETCH_BATCH
    refs, content, fetch = _remote_file(count, seed=6)

    async def main() -> list[bytes]:
        cache = BlockCache(
            tmp_path / "cache", fetch, capacity_bytes=1 << 30, limiter=trio.CapacityLimiter(4)
        )
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            reader = RevisionReader(
                Revision(1, 1, len(content), 0, tuple(refs)), cache=cache, nursery=nursery
            )
            for offset in range(0, len(content), 2 * BLOCK):
                pair: dict[int, bytes] = {}

                async def read(at: int, into: dict[int, bytes] = pair) -> None:
                    into[at] = bytes(await reader.read(at, BLOCK))

                async with trio.open_nursery() as both:
                    both.start_soon(read, offset + BLOCK)  # the later one first
                    await trio.sleep(0)
                    both.start_soon(read, offset)
                got += [pair[offset], pair[offset + BLOCK]]
        return got

    assert b"".join(trio.run(main)) == content
    # (Taken for random access, the reads fetch their blocks a call or two at a time.)
    assert len(fetch.calls) <= count // FETCH_BATCH + 2, [len(c) for c in fetch.calls]


def test_a_read_across_blocks_fetched_together_is_one_view_of_them(tmp_path) -> None:
    # Blocks of one batch lie side by side in memory: a read across their boundary
    # joins nothing; one across two batches still returns the right bytes.
    refs, content, fetch = _remote_file(2 * FETCH_BATCH, seed=8)

    async def main() -> None:
        cache = BlockCache(
            tmp_path / "cache", fetch, capacity_bytes=1 << 30, limiter=trio.CapacityLimiter(4)
        )
        async with trio.open_nursery() as nursery:
            reader = RevisionReader(
                Revision(1, 1, len(content), 0, tuple(refs)), cache=cache, nursery=nursery
            )
            await cache.get_many(r.hash for r in refs[:FETCH_BATCH])
            await cache.get_many(r.hash for r in refs[FETCH_BATCH:])
            inside = refs[2].offset - 100
            part = await reader.read(inside, 3 * BLOCK)
            assert isinstance(part, memoryview)
            assert part == content[inside : inside + 3 * BLOCK]
            across = refs[FETCH_BATCH].offset - 100
            assert await reader.read(across, BLOCK) == content[across : across + BLOCK]

    trio.run(main)
