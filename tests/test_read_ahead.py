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
