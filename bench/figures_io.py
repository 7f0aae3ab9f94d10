"""The large-file figures the benchmarks share: write, sequential and random reads,
and the CPU and scheduler time of a process, with the console and progress bars
every bench script prints through.

Must not: start daemons or mounts (drive_runner.py) or print tables (each script).
"""

from __future__ import annotations

import mmap
import os
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drive_runner import Drive

MiB = 1024 * 1024
PIECE = 1 * MiB
console = Console(width=None if sys.stdout.isatty() else 110)  # the table unwrapped in logs


def drop_page_cache() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def local_sync(_last: Path, _size: int) -> None:
    os.sync()


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def write_file(path: Path, size: int, label: str) -> float:
    """Seconds to write size bytes and close (close = durable on the drive; fsync locally).

    The content is a 64 MiB random pattern with a counter stamped every
    64 KiB (less than the smallest block), so no block repeats and dedup
    cannot flatter the figure.
    """
    pattern = bytearray(random.Random(0).randbytes(64 * MiB))
    with progress() as bar:
        task = bar.add_task(label, total=size)
        start = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            done = 0
            while done < size:
                n = min(PIECE, size - done)
                at = done % len(pattern)
                for stamp in range(at, at + n, 64 * 1024):
                    pattern[stamp : stamp + 8] = (done + stamp - at).to_bytes(8, "little")
                f.write(memoryview(pattern)[at : at + n])
                done += n
                bar.update(task, completed=done)
            os.fsync(f.fileno())
        return time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (/proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(drive: Drive, mnt: Path) -> tuple[float, float]:
    """CPU seconds used so far by the mount of mnt and by blockd."""
    mount_pid = next(p.pid for p, path, _ in drive.mounts if path == mnt)
    return cpu_seconds(mount_pid), cpu_seconds(drive.blockd.process.pid)


def sched_ns(pid: int) -> tuple[int, int]:
    """Nanoseconds the threads of a live process ran on a CPU and waited for one, so far
    (/proc/PID/task/*/schedstat; a thread that ended meanwhile is not counted)."""
    ran = waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran, waited


def cpu_per_gib(before: tuple[float, float], after: tuple[float, float], size: int) -> list[float]:
    return [(b - a) * 1024**3 / size for a, b in zip(before, after, strict=True)]


def read_file(path: Path, label: str) -> float:
    size = path.stat().st_size
    with progress() as bar:
        task = bar.add_task(label, total=size)
        start = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            done = 0
            while chunk := f.read(PIECE):
                done += len(chunk)
                bar.update(task, completed=done)
        return time.perf_counter() - start


def random_reads(path: Path, label: str, seconds: float = 3.0) -> tuple[float, float]:
    """4 KiB reads at random 4 KiB-aligned offsets with O_DIRECT for `seconds`:
    (reads/s, p99 latency in ms)."""
    size = path.stat().st_size
    rng = random.Random(7)
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
    latencies = []
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        with progress() as bar:
            task = bar.add_task(label, total=seconds)
            start = time.perf_counter()
            while (now := time.perf_counter()) - start < seconds:
                offset = rng.randrange(size // 4096) * 4096
                os.preadv(fd, [buf], offset)
                latencies.append(time.perf_counter() - now)
                if len(latencies) % 1000 == 0:
                    bar.update(task, completed=now - start)
            elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    latencies.sort()
    return len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1000
