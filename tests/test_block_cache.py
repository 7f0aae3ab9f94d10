"""The block cache driven directly (no kernel, no daemons): packs of blocks written here.

A file written on this device gives its blocks to the cache as one hard link of its
sealed content (a pack), not as a copy of each block. What users rely on: the blocks
read back right, also after a restart; a damaged pack is caught by the hash check and
its block fetched again, its intact neighbours kept; eviction frees the pack once
none of its blocks is left; `drive scrub --repair` finds blocks in packs too.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import trio

from fusefs import cache as cache_module
from fusefs import cachefiles
from fusefs.cache import BlockCache
from fusefs.cachefiles import cached_copy
from fusefs.chunker import chunk_file

MiB = 1024 * 1024


def _file(path: Path, size: int, seed: int) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data, [(r.hash, r.offset, r.size) for r in chunk_file(path)]


class _Fetcher:
    """Stands in for blockd: serves the blocks it was given, counting what it sends."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.sent: list[bytes] = []

    def __call__(self, hashes: list[bytes]) -> list[tuple[bytes, bytes]]:
        self.sent += hashes
        return [(h, self.blocks[h]) for h in hashes]


def _cache(tmp_path: Path, fetch: _Fetcher, capacity: int = 64 * MiB) -> BlockCache:
    return BlockCache(
        tmp_path / "cache", fetch, capacity_bytes=capacity, limiter=trio.CapacityLimiter(2)
    )


def _read_all(cache: BlockCache, blocks: list[tuple[bytes, int, int]]) -> bytes:
    async def read() -> bytes:
        found = await cache.get_many(h for h, _, _ in blocks)
        return b"".join(bytes(found[h]) for h, _, _ in blocks)

    return trio.run(read)


def test_a_kept_file_is_one_link_and_reads_back_after_a_restart(tmp_path: Path) -> None:
    data, blocks = _file(tmp_path / "sealed", 5 * MiB, seed=1)
    assert len(blocks) >= 3
    fetch = _Fetcher()
    _cache(tmp_path, fetch).keep_from_file(tmp_path / "sealed", blocks)
    packs = list((tmp_path / "cache" / "packs").iterdir())
    assert len(packs) == 1 and packs[0].stat().st_ino == (tmp_path / "sealed").stat().st_ino
    (tmp_path / "sealed").unlink()  # the journal lets it go once committed

    again = _cache(tmp_path, fetch)
    assert again.disk_bytes == len(data)
    assert _read_all(again, blocks) == data
    h, offset, size = blocks[1]
    assert bytes(again.read_range(h, 10, 100)) == data[offset + 10 : offset + 110]
    assert fetch.sent == [], "a kept block was fetched"
    assert cached_copy(tmp_path / "cache", h) == data[offset : offset + size]


def test_a_damaged_pack_block_is_fetched_again_and_its_neighbours_kept(
    tmp_path: Path, allowed_log_patterns
) -> None:
    allowed_log_patterns += [r"corrupt cache file"]
    data, blocks = _file(tmp_path / "sealed", 5 * MiB, seed=2)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    _cache(tmp_path, fetch).keep_from_file(tmp_path / "sealed", blocks)
    damaged_hash, offset, size = blocks[1]
    with open(tmp_path / "sealed", "r+b") as f:
        f.seek(offset + size // 2)
        f.write(b"\xff\x00\xff")

    again = _cache(tmp_path, fetch)
    assert _read_all(again, blocks) == data
    assert fetch.sent == [damaged_hash]
    assert cached_copy(tmp_path / "cache", damaged_hash) == data[offset : offset + size]


def test_a_torn_pack_log_costs_only_the_torn_entry(tmp_path: Path) -> None:
    data, blocks = _file(tmp_path / "sealed", 3 * MiB, seed=3)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    _cache(tmp_path, fetch).keep_from_file(tmp_path / "sealed", blocks)
    log = tmp_path / "cache" / "packs.log"
    log.write_bytes(log.read_bytes()[:-7])  # a crash in the middle of the last line

    again = _cache(tmp_path, fetch)
    assert _read_all(again, blocks) == data
    assert len(fetch.sent) <= 1


@pytest.mark.parametrize("reopen", [False, True])
def test_a_pack_goes_when_its_last_block_is_evicted(tmp_path: Path, reopen: bool) -> None:
    _, first_blocks = _file(tmp_path / "one", 4 * MiB, seed=4)
    fetch = _Fetcher()
    cache = _cache(tmp_path, fetch, capacity=6 * MiB)
    cache.keep_from_file(tmp_path / "one", first_blocks)
    if reopen:
        cache = _cache(tmp_path, fetch, capacity=6 * MiB)
    second, second_blocks = _file(tmp_path / "two", 5 * MiB, seed=5)
    cache.keep_from_file(tmp_path / "two", second_blocks)
    assert cache.disk_bytes <= 6 * MiB
    # The second file's pack only: the first lost some blocks, then (freed) all of them.
    cache.make_room(cache.disk_bytes - sum(s for _, _, s in second_blocks))
    packs = list((tmp_path / "cache" / "packs").iterdir())
    assert [p.stat().st_ino for p in packs] == [(tmp_path / "two").stat().st_ino]
    os.unlink(tmp_path / "one")
    assert _read_all(cache, second_blocks) == second


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_an_evicted_pack_block_frees_its_space_once_the_journal_let_the_file_go(
    tmp_path: Path,
) -> None:
    data, blocks = _file(tmp_path / "sealed", 4 * MiB, seed=6)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    cache = _cache(tmp_path, fetch)
    cache.keep_from_file(tmp_path / "sealed", blocks)
    (tmp_path / "sealed").unlink()  # committed: the pack is the file's only name
    (pack,) = (tmp_path / "cache" / "packs").iterdir()
    before = _allocated(pack)

    oldest_size = blocks[0][2]
    cache.make_room(oldest_size)  # evicts the oldest block only
    assert before - _allocated(pack) >= oldest_size - 4096, "the evicted range still takes space"
    assert _read_all(cache, blocks) == data
    assert fetch.sent == [blocks[0][0]]


def test_eviction_never_touches_content_the_journal_still_holds(tmp_path: Path) -> None:
    data, blocks = _file(tmp_path / "sealed", 4 * MiB, seed=7)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    cache = _cache(tmp_path, fetch)
    cache.keep_from_file(tmp_path / "sealed", blocks)

    cache.make_room(blocks[0][2] + blocks[1][2])
    assert (tmp_path / "sealed").read_bytes() == data  # the journal may cut it again
    assert len(fetch.sent) == 0
    assert _read_all(cache, blocks) == data


def _log(tmp_path: Path) -> list[str]:
    return (tmp_path / "cache" / "packs.log").read_text().splitlines()


def _fetch_in_batches(cache: BlockCache, blocks: list[tuple[bytes, int, int]], n: int) -> None:
    async def fetch() -> None:
        for i in range(0, len(blocks), n):
            await cache.get_many(h for h, _, _ in blocks[i : i + n])

    trio.run(fetch)


@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "refused"])
def test_fetched_blocks_go_to_a_pack_and_read_back_after_a_restart(
    tmp_path: Path, allowed_log_patterns, monkeypatch, direct: bool
) -> None:
    allowed_log_patterns += [r"corrupt cache file"]
    if not direct:  # a file system that refuses O_DIRECT writes: through the page cache

        def refuse(*_args) -> None:
            raise cachefiles.NotDirect

        monkeypatch.setattr(cache_module, "write_direct", refuse)
    data, blocks = _file(tmp_path / "remote", 6 * MiB, seed=7)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    _fetch_in_batches(_cache(tmp_path, fetch), blocks, 2)
    assert sorted(fetch.sent) == sorted(h for h, _, _ in blocks)
    (pack,) = (tmp_path / "cache" / "packs").iterdir()
    assert len(data) <= pack.stat().st_size < len(data) + len(blocks) * 4096
    assert not any((tmp_path / "cache" / "blocks").iterdir()), "a file per fetched block"

    damaged_hash, _, size = blocks[2]
    (at,) = [int(e.split()[2]) for e in _log(tmp_path) if e.split()[1] == damaged_hash.hex()]
    with open(pack, "r+b") as f:
        f.seek(at + size // 3)
        f.write(b"\x00\xff\x00")
    fetch.sent = []
    again = _cache(tmp_path, fetch)
    assert again.disk_bytes == len(data)
    assert _read_all(again, blocks) == data
    assert fetch.sent == [damaged_hash]
    h, offset, size = blocks[-1]
    assert bytes(again.read_range(h, 5, 50)) == data[offset + 5 : offset + 55]
    assert cached_copy(tmp_path / "cache", h) == data[offset : offset + size]


def test_fill_packs_go_once_filled_and_evicted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("fusefs.cache.FILL_PACK_BYTES", 2 * MiB)
    data, blocks = _file(tmp_path / "remote", 12 * MiB, seed=8)
    fetch = _Fetcher()
    fetch.blocks = {h: data[o : o + s] for h, o, s in blocks}
    cache = _cache(tmp_path, fetch, capacity=4 * MiB)
    _fetch_in_batches(cache, blocks, 1)
    assert cache.disk_bytes <= 4 * MiB
    packs = list((tmp_path / "cache" / "packs").iterdir())
    # Packs holding only evicted blocks are gone; what stays holds the newest ones.
    assert 1 <= len(packs) <= 4
    assert sum(_allocated(p) for p in packs) <= 6 * MiB, "evicted blocks still take space"
    # The memory LRU forgotten (a restart): what the disk kept reads back right, the rest
    # is fetched again.
    fetch.sent = []
    again = _cache(tmp_path, fetch, capacity=64 * MiB)
    assert _read_all(again, blocks) == data
    assert 0 < len(fetch.sent) < len(blocks)


def test_memory_holds_fetched_batches_whole_whatever_blocks_readers_come_back_to(
    tmp_path: Path,
) -> None:
    # A fetched batch's blocks share one buffer, which lives while any of them is in
    # memory: a reader coming back to one block of each batch must not keep every
    # batch's buffer (memory would hold a batch per block it counts).
    rng = random.Random(4)
    datas = [rng.randbytes(64 * 1024 + n) for n in range(64)]
    fetch = _Fetcher()
    fetch.blocks = {cache_module.block_hash(d): d for d in datas}
    hashes = list(fetch.blocks)
    batch_bytes = 8 * (64 * 1024 + 64)
    cache = BlockCache(
        tmp_path / "cache",
        fetch,
        capacity_bytes=64 * MiB,
        memory_bytes=2 * batch_bytes,
        limiter=trio.CapacityLimiter(2),
    )

    async def main() -> None:
        for lo in range(0, len(hashes), 8):
            got = await cache.get_many(hashes[lo : lo + 8])
            assert [bytes(got[h]) for h in hashes[lo : lo + 8]] == datas[lo : lo + 8]
            for first in range(0, lo + 8, 8):  # back to the first block of every batch
                part = cache.read_range(hashes[first], 10, 20)
                if part is not None:
                    assert bytes(part) == datas[first][10:30]
            assert cache.memory_bytes <= 3 * batch_bytes + 3 * 4096

    trio.run(main)
