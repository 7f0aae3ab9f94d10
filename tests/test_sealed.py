"""What the synchronizer keeps in the block cache once a batch is sent (sealed.py), no
kernel, no daemons: a file written here reads back without a download, also after a
restart. An untar's batch is hundreds of small files: their blocks go to the cache
as one pack, not as a file each.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

from fusefs.cache import BlockCache
from fusefs.mount.sealed import blocks_of, keep_all_in_cache

MiB = 1024 * 1024


class _Offline:
    """Stands in for an unreachable blockd: any download is a failure of the test."""

    def __call__(self, hashes: list[bytes]) -> list[tuple[bytes, bytes]]:
        raise AssertionError(f"downloaded {len(hashes)} block(s)")


def _cache(tmp_path: Path) -> BlockCache:
    return BlockCache(
        tmp_path / "cache", _Offline(), capacity_bytes=64 * MiB, limiter=trio.CapacityLimiter(2)
    )


def _read(cache: BlockCache, content: bytes) -> bytes:
    refs = blocks_of(content)

    async def read() -> bytes:
        found = await cache.get_many(r.hash for r in refs)
        return b"".join(bytes(found[r.hash]) for r in refs)

    return trio.run(read)


def test_a_batch_of_small_files_reads_back_offline_from_one_pack(tmp_path: Path) -> None:
    rng = random.Random(5)
    small = [rng.randbytes(rng.randint(1, 16 * 1024)) for _ in range(40)]
    small.append(small[3])  # the same content twice in a batch (a copied file)
    small.append(b"")  # an empty file: no block at all
    big = tmp_path / "sealed-big"
    big.write_bytes(rng.randbytes(3 * MiB))  # a larger file: kept from its own file
    contents = [(c, blocks_of(c)) for c in small] + [(big, blocks_of(big))]
    scratch = tmp_path / "journal" / "scratch-1"
    scratch.parent.mkdir()

    keep_all_in_cache(_cache(tmp_path), contents, scratch)

    assert not scratch.exists()  # the pack is the cache's link now, not a journal file
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert len(files) < 10, files  # one pack, its log and the big file's: no file per block
    again = _cache(tmp_path)  # a restart of the mount
    for content in small:
        assert _read(again, content) == content
    assert _read(again, big.read_bytes()) == big.read_bytes()


def test_one_small_file_is_kept_too(tmp_path: Path) -> None:
    content = random.Random(6).randbytes(5000)
    scratch = tmp_path / "scratch"
    keep_all_in_cache(_cache(tmp_path), [(content, blocks_of(content))], scratch)
    assert not scratch.exists()
    assert _read(_cache(tmp_path), content) == content
