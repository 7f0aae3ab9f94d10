"""Throughput of blockd's codec (zstd + AES-256-GCM) next to the raw backend, in one run.

For random data and for text-like data (64 MiB each by default), cut into
1 MiB objects (the chunker's average block), prints put and get MiB/s of:

    raw local     LocalBackend alone: temp file, fsync, rename per object
    codec local   CodecBackend around LocalBackend: what blockd runs by default
    codec only    CodecBackend around memory: the codec's own cost, no I/O

and the bytes stored per byte written. Objects go `--concurrency` at a time,
as the store's upload window sends them; gets read what the puts just wrote
(the page cache is warm: the figure is the codec's, not the disk's).

    .venv/bin/python bench/codec.py [--size-mib 64] [--block-kib 1024] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blockd.backends.base import Backend
from blockd.backends.codec import CodecBackend
from blockd.backends.local import LocalBackend
from blockd.backends.memory import MemoryBackend
from blockd.keys import Keyring, new_master_key

MiB = 1024 * 1024
console = Console()


def random_data(size: int) -> bytes:
    return random.Random(1).randbytes(size)


def text_data(size: int) -> bytes:
    """Words of a made-up language with punctuation and line breaks: compresses like prose."""
    rng = random.Random(2)
    letters = string.ascii_lowercase
    words = ["".join(rng.choices(letters, k=rng.randint(1, 10))) for _ in range(8000)]
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choices(words, k=rng.randint(6, 14))).capitalize() + ".\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


async def timed(
    label: str,
    pieces: list[tuple[str, bytes]],
    op: Callable[[str, bytes], Awaitable[int]],
    concurrency: int,
) -> tuple[float, int]:
    """Seconds to run op on every piece, concurrency at a time, and the sum of its results."""
    limit = asyncio.Semaphore(concurrency)
    total = 0
    with progress() as bar:
        task = bar.add_task(label, total=sum(len(data) for _, data in pieces))

        async def one(key: str, data: bytes) -> None:
            nonlocal total
            async with limit:
                result = await op(key, data)
            total += result  # not `total += await ...`: that reads total before the wait
            bar.advance(task, len(data))

        start = time.perf_counter()
        await asyncio.gather(*(one(key, data) for key, data in pieces))
        return time.perf_counter() - start, total


async def measure(
    name: str, backend: Backend, data: bytes, block: int, concurrency: int
) -> tuple[float, float, float]:
    """(put MiB/s, get MiB/s, stored bytes per byte written) of one backend and data set."""
    starts = range(0, len(data), block)
    pieces = [(f"{n:08x}", data[at : at + block]) for n, at in enumerate(starts)]

    async def put(key: str, piece: bytes) -> int:
        return await backend.put(key, piece)

    async def get(key: str, piece: bytes) -> int:
        got = await backend.get(key)
        if got != piece:
            raise AssertionError(f"{name}: object {key} came back different")
        return len(got)

    put_s, stored = await timed(f"{name} put", pieces, put, concurrency)
    get_s, _ = await timed(f"{name} get", pieces, get, concurrency)
    return len(data) / put_s / MiB, len(data) / get_s / MiB, stored / len(data)


async def run(args: argparse.Namespace, work: Path) -> Table:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=48))
    key = new_master_key()
    keyring = Keyring((key,), key)
    size, block = args.size_mib * MiB, args.block_kib * 1024
    with console.status("making data"):
        datasets = {"random": random_data(size), "text": text_data(size)}

    table = Table(
        title=f"codec vs raw backend: {args.size_mib} MiB in {args.block_kib} KiB objects, "
        f"{args.concurrency} at a time, {os.cpu_count()} CPUs"
    )
    for column in ("data", "path", "put MiB/s", "get MiB/s", "stored/written"):
        table.add_column(column, justify="left" if column in ("data", "path") else "right")
    for kind, data in datasets.items():
        for path in ("raw local", "codec local", "codec only"):
            directory = work / f"{kind}-{path.replace(' ', '-')}"
            backend: Backend
            if path == "codec only":
                backend = CodecBackend(MemoryBackend(), keyring)
            else:
                backend = await LocalBackend.open(directory)
                if path == "codec local":
                    backend = CodecBackend(backend, keyring)
            try:
                put, get, ratio = await measure(
                    f"{kind}, {path}", backend, data, block, args.concurrency
                )
            finally:
                await backend.close()
                shutil.rmtree(directory, ignore_errors=True)
            table.add_row(kind, path, f"{put:,.0f}", f"{get:,.0f}", f"{ratio:.4f}")
        table.add_section()
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=64, help="of each data set (default 64)")
    ap.add_argument("--block-kib", type=int, default=1024, help="object size (default 1024)")
    ap.add_argument("--concurrency", type=int, default=8, help="objects in flight (default 8)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drivefs-codec-bench-", dir=args.dir))
    try:
        table = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
