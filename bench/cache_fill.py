"""CPU the mount's block cache spends taking in blocks, per GiB, in one run.

The cold-read share of the mount that is neither gRPC nor FUSE: blocks
arriving from blockd are hashed (BLAKE3) and written into the cache. Prints
the process CPU seconds per GiB (user + system, every thread) of:

    fetched     get_many of blocks a stand-in for blockd serves from memory,
                4 per call (the mount's FETCH_BATCH), several calls at once:
                hashed on arrival, appended to fill packs
    one file    the same blocks, 4 per worker thread, several at once, hashed
                then keep(): a cache file each (temp, write, rename), as
                fetched blocks were kept before fill packs

Each is measured twice, alternating, and the lower figure printed: the first
gigabyte written in a process costs more (page cache reclaim) whichever it is.

    .venv/bin/python bench/cache_fill.py [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fusefs.cache import BlockCache
from fusefs.chunker import block_hash

MiB = 1024 * 1024
BATCH = 4


def _blocks(n: int) -> list[tuple[bytes, bytes]]:
    """n distinct blocks of about 1 MiB (views of one random buffer, shifted)."""
    base = random.Random(1).randbytes(MiB + 4096)
    made = []
    for i in range(n):
        data = base[i % 4096 : i % 4096 + MiB - i % 7]
        made.append((block_hash(data), data))
    return made


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _fetched(cache: BlockCache, blocks: list[tuple[bytes, bytes]]) -> None:
    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(0, len(blocks), BATCH):
                nursery.start_soon(cache.get_many, [h for h, _ in blocks[i : i + BATCH]])

    trio.run(run)


def _one_file_each(cache: BlockCache, blocks: list[tuple[bytes, bytes]]) -> None:
    limiter = trio.CapacityLimiter(4)

    def keep(batch: list[tuple[bytes, bytes]]) -> None:
        cache.keep((h, d) for h, d in batch if block_hash(d) == h)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(0, len(blocks), BATCH):
                batch = blocks[i : i + BATCH]
                nursery.start_soon(partial(trio.to_thread.run_sync, keep, batch, limiter=limiter))

    trio.run(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = ap.parse_args()
    blocks = _blocks(args.size_mib)
    served = dict(blocks)
    gib = sum(len(d) for _, d in blocks) / 1024**3
    work = Path(tempfile.mkdtemp(prefix="drivefs-cache-fill-", dir=args.dir))
    best: dict[str, tuple[float, float]] = {}
    try:
        for run in range(4):
            label = ("fetched", "one file")[run % 2]
            cache = BlockCache(
                work / f"{run}",
                lambda hashes: [(h, served[h]) for h in hashes],
                capacity_bytes=2 * len(blocks) * MiB,
                memory_bytes=64 * MiB,
                limiter=trio.CapacityLimiter(4),
            )
            cpu, wall = _cpu(), time.perf_counter()
            if label == "fetched":
                _fetched(cache, blocks)
            else:
                _one_file_each(cache, blocks)
            cpu, wall = _cpu() - cpu, time.perf_counter() - wall
            best[label] = min(best.get(label, (cpu, wall)), (cpu, wall))
            shutil.rmtree(work / f"{run}")
        for label, (cpu, wall) in best.items():
            print(f"{label:10} {cpu / gib:5.2f} CPU s/GiB  {gib * 1024 / wall:6.0f} MiB/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
