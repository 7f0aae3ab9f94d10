"""The many-small-entries figures the benchmarks share: small files, untar of a
generated tree (beside the same untar into a trivial pyfuse3 file system), stat of
known names after a remount (beside a trivial pyfuse3 file system timed in the same
state), recursive listings, and the change latency between two mounts. The trivial
file systems, the floors, are floor_fs.py's.

Must not: start daemons (drive_runner.py) or print tables (each script).
"""

from __future__ import annotations

import io
import math
import os
import random
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drive_runner import Drive, Syncer, SyncFailed
from figures_io import console, drop_page_cache, progress, sched_ns
from floor_fs import FloorMount

SMALL = 4096  # bytes in each small file
LIST_TIMEOUT = 600.0  # seconds for `ls -lR`
LATENCY_TIMEOUT = 5.0  # seconds one change may take to show on the other mount
# stat of known names runs this often, each time first thing on a fresh remount (a cold
# page cache locally): one run takes ~0.1 s, so a single preemption on this shared
# 2-core machine moved it by a third. The table shows the median: of 5 runs, as two
# slow ones (the first, right after the untar, often is) decided the median of 3.
STAT_RUNS = 5


def small_names(count: int) -> list[str]:
    return [f"f{i:05d}" for i in range(count)]


def small_files(folder: Path, count: int, label: str, *, fsync: bool) -> float:
    """Seconds to create count 4 KiB files in folder, until the last close returned.

    With fsync, each file is fsynced before its close (the durable variant).
    """
    payload = os.urandom(SMALL)
    folder.mkdir()
    with progress() as bar:
        task = bar.add_task(label, total=count)
        start = time.perf_counter()
        for name in small_names(count):
            with open(folder / name, "wb") as f:
                f.write(payload)
                if fsync:
                    os.fsync(f.fileno())
            bar.update(task, advance=1)
        return time.perf_counter() - start


def small_files_synced(
    folder: Path,
    count: int,
    label: str,
    sync: Syncer,
    closed_hook: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Seconds until the last close returned, and until everything was synced after it
    (closed_hook: called in between)."""
    start = time.perf_counter()
    closed = small_files(folder, count, label, fsync=False)
    closed_hook()
    synced = timed_sync(sync, folder / small_names(count)[-1], SMALL, f"{label}: syncing", start)
    return closed, synced


def timed_sync(sync: Syncer, last: Path, size: int, label: str, start: float) -> float:
    """Seconds from start until sync returned; NaN if it failed (the figure prints as failed)."""
    with console.status(label):
        try:
            sync(last, size)
        except SyncFailed as e:
            console.print(f"[red]{label} failed: {e}")
            return math.nan
    return time.perf_counter() - start


def make_tarball(path: Path, entries: int) -> tuple[str, int]:
    """A source-tree-like archive: folders of 20 files of 0..16 KiB.

    Returns the path and size of its last file, the last one tar writes.
    """
    rng = random.Random(3)
    last = ("", 0)
    with tarfile.open(path, "w") as tar:
        folder = ""
        for i in range(entries):
            if i % 21 == 0:
                folder = f"tree/d{i:05d}"
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = rng.randbytes(rng.randint(0, 16 * 1024))
            info = tarfile.TarInfo(f"{folder}/f{i:05d}.c")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            last = (info.name, info.size)
    return last


def tar_xf(tarball: Path, dest: Path, label: str) -> float:
    """Seconds `tar -xf tarball -C dest` takes, until tar returned."""
    with console.status(f"{label}: tar -xf"):
        start = time.perf_counter()
        subprocess.run(
            ["tar", "-xf", str(tarball), "-C", str(dest)], check=True, timeout=LIST_TIMEOUT
        )
        return time.perf_counter() - start


def untar(
    tarball: Path,
    dest: Path,
    last: tuple[str, int],
    label: str,
    sync: Syncer,
    closed_hook: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Seconds to unpack tarball into dest until tar returned, and until synced after it
    (closed_hook: called in between)."""
    start = time.perf_counter()
    closed = tar_xf(tarball, dest, label)
    closed_hook()
    synced = timed_sync(sync, dest / last[0], last[1], f"{label}: syncing", start)
    return closed, synced


def stat_known(folder: Path, names: list[str]) -> float:
    """stat/s of names in folder, known beforehand: nothing lists the folder first."""
    with console.status(f"stat {len(names)} known names in {folder.name}"):
        start = time.perf_counter()
        for name in names:
            os.stat(folder / name)
        return len(names) / (time.perf_counter() - start)


@dataclass(frozen=True)
class StatRun:
    """One stat of known names after a remount, and who had the CPUs meanwhile.

    The stats are a ping-pong between this process and the mount (one request in
    flight), so the rate is about 1 / (the mount's CPU + ours per stat) unless the
    two wait for a CPU that other programs hold: waited_ms tells a slow mount from
    a busy machine.
    """

    rate: float  # stat/s
    mount_us: float  # the mount's CPU µs per stat
    bench_us: float  # this process's CPU µs per stat
    # ms the mount and this process were ready to run but had no CPU: some 20 ms per
    # 2,000 stats on an idle machine too (each wakes on the CPU the other is leaving)
    waited_ms: float
    daemons_ms: float  # CPU ms metad and blockd used meanwhile (work left from before)
    window: tuple[float, float] = (0.0, 0.0)  # time.perf_counter() at the first and last stat


def stat_remounted(drive: Drive, mnt: Path, names: list[str]) -> tuple[Path, StatRun]:
    """throughput.py's "remount: stat/s, known names": a fresh remount of mnt, the page
    cache dropped, a stat of every name in mnt/small (remount_stat.py runs this too)."""
    mnt = drive.remount(mnt)
    drop_page_cache()
    mount_pid = next(p.pid for p, path, _ in drive.mounts if path == mnt)
    daemons = [d.process.pid for d in (drive.metad, drive.blockd)]
    (mount_ran, mount_waited), (ran, waited) = sched_ns(mount_pid), sched_ns(os.getpid())
    daemons_ran = sum(sched_ns(pid)[0] for pid in daemons)
    started = time.perf_counter()
    rate = stat_known(mnt / "small", names)
    ended = time.perf_counter()
    mount_after, after = sched_ns(mount_pid), sched_ns(os.getpid())
    daemons_after = sum(sched_ns(pid)[0] for pid in daemons)
    per_stat = 1e-3 / len(names)
    return mnt, StatRun(
        rate,
        (mount_after[0] - mount_ran) * per_stat,
        (after[0] - ran) * per_stat,
        (mount_after[1] - mount_waited + after[1] - waited) / 1e6,
        (daemons_after - daemons_ran) / 1e6,
        (started, ended),
    )


class Floor:
    """The stat floor (floor_fs.py), mounted at mnt until closed. Its stat runs go
    between the drive's, so both see the machine alike: here the same trivial file
    system took 16 or 30 µs of CPU per stat within minutes (other virtual machines,
    other work)."""

    def __init__(self, mnt: Path) -> None:
        self.mnt = mnt
        self.fs = FloorMount("stat", mnt)
        self.runs = 0

    def stat_run(self, count: int) -> StatRun:
        """count stats of names it never answered before (the kernel knows none)."""
        names = [f"f{self.runs * count + i}" for i in range(count)]
        self.runs += 1
        drop_page_cache()
        (ran, waited), (mine, mine_waited) = sched_ns(self.fs.pid), sched_ns(os.getpid())
        rate = stat_known(self.mnt, names)
        (ran_after, waited_after), after = sched_ns(self.fs.pid), sched_ns(os.getpid())
        per_stat = 1e-3 / count
        waited_ms = (waited_after - waited + after[1] - mine_waited) / 1e6
        return StatRun(
            rate, (ran_after - ran) * per_stat, (after[0] - mine) * per_stat, waited_ms, 0.0
        )

    def close(self) -> None:
        self.fs.close()


def untar_floor(tarball: Path, mnt: Path, scratch: Path | None) -> float:
    """Seconds `tar -xf tarball` takes into a fresh untar floor (floor_fs.py) at mnt;
    with scratch, each close first makes the file's first bytes durable there."""
    label = "floor untar" + (", fdatasync at close" if scratch is not None else "")
    with FloorMount("untar", mnt, scratch):
        return tar_xf(tarball, mnt, label)


def untar_floors(tarball: Path, work: Path) -> tuple[float, float]:
    """Seconds of the untar floor as is and with durable closes, its scratch file in work
    (the disk the drive's cache and journal are on)."""
    plain = untar_floor(tarball, work / "mnt-floor-untar", None)
    durable = untar_floor(tarball, work / "mnt-floor-untar", work / "floor-scratch")
    return plain, durable


def stat_all(folder: Path) -> float:
    """stat/s of every entry of folder, listed first (listdir is timed too)."""
    with console.status(f"listdir + stat {folder.name}"):
        start = time.perf_counter()
        names = os.listdir(folder)
        for name in names:
            os.stat(folder / name)
        return len(names) / (time.perf_counter() - start)


def _walk_lstat(top: str) -> int:
    count = 0
    with os.scandir(top) as entries:
        for entry in entries:
            os.lstat(entry.path)
            count += 1
            if entry.is_dir(follow_symlinks=False):
                count += _walk_lstat(entry.path)
    return count


def walk_lstat(top: Path) -> tuple[float, int]:
    """Seconds to list top recursively with an lstat of every entry, and the entries seen."""
    with console.status(f"scandir + lstat -R {top}"):
        start = time.perf_counter()
        count = _walk_lstat(str(top))
        return time.perf_counter() - start, count


def ls_lr(top: Path) -> float:
    """Seconds `ls -lR top > /dev/null` takes."""
    with console.status(f"ls -lR {top}"):
        start = time.perf_counter()
        subprocess.run(
            ["ls", "-lR", str(top)], stdout=subprocess.DEVNULL, check=True, timeout=LIST_TIMEOUT
        )
        return time.perf_counter() - start


def change_latency(a: Path, b: Path, rounds: int = 50) -> tuple[list[float], int]:
    """Seconds until a file written on a shows on b, per round; and how many rounds timed out."""
    latencies, timeouts = [], 0
    with progress() as bar:
        task = bar.add_task("change latency a → b", total=rounds)
        for i in range(rounds):
            os.listdir(b)
            start = time.perf_counter()
            (a / f"latency-{i}").write_bytes(b"x")
            while not os.path.exists(b / f"latency-{i}"):
                if time.perf_counter() - start > LATENCY_TIMEOUT:
                    timeouts += 1
                    break
                time.sleep(0.002)
            latencies.append(time.perf_counter() - start)
            bar.update(task, advance=1)
    return latencies, timeouts
