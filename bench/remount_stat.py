"""stat/s of known names after a remount, in throughput.py's own sequence, and what it waits for.

Runs only the drive side of bench/throughput.py up to its "remount: stat/s,
known names" figure, with the same functions in the same order (a large file
written and read, small files made and synced, small files fsynced, a tree
untarred and synced), then `--runs` times: a remount, the page cache dropped,
a stat of every small file by its known name. Each run prints its stat/s and
latency percentiles, and the mount's own account of its lookups
(DRIVEFS_OP_STATS: requests and seconds inside the handlers), so a slow run
shows whether the mount's handlers or the round trip around them took the
time. A trivial pyfuse3 file system answering the same stats is the floor
(`--floor`): what pyfuse3, trio and the kernel cost per request here.

Run as root (FUSE, drop_caches):

    .venv/bin/python bench/remount_stat.py [--size-mib 1024] [--files 2000]
        [--untar-entries 10000] [--runs 3] [--floor] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as t
from drive_runner import Drive

OP_STATS_ENV = "DRIVEFS_OP_STATS"  # fusefs/mount/operations.py: a mount's own request counts

FLOOR_FS = """
import os, stat, sys, pyfuse3, trio
class Fs(pyfuse3.Operations):
    async def lookup(self, parent, name, ctx=None):
        a = pyfuse3.EntryAttributes()
        a.st_ino, a.st_mode, a.st_size = 2 + int(name[1:]), stat.S_IFREG | 0o644, 4096
        a.entry_timeout = a.attr_timeout = 2
        return a
    async def getattr(self, inode, ctx=None):
        a = pyfuse3.EntryAttributes()
        a.st_ino, a.st_mode = inode, (stat.S_IFDIR | 0o755) if inode == 1 else stat.S_IFREG
        return a
pyfuse3.init(Fs(), sys.argv[1], set(pyfuse3.default_options))
try:
    trio.run(pyfuse3.main)
finally:
    pyfuse3.close(unmount=False)
"""


def timed_stats(folder: Path, names: list[str]) -> tuple[float, list[float]]:
    """stat/s of the names in folder, and each stat's seconds."""
    seconds = []
    start = time.perf_counter()
    for name in names:
        before = time.perf_counter()
        os.stat(folder / name)
        seconds.append(time.perf_counter() - before)
    return len(names) / (time.perf_counter() - start), seconds


def latencies(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p50, p90, p99 = (ordered[int(len(ordered) * q)] * 1e6 for q in (0.5, 0.9, 0.99))
    return f"p50 {p50:.0f} µs, p90 {p90:.0f} µs, p99 {p99:.0f} µs, max {ordered[-1] * 1e3:.1f} ms"


def lookups_of(op_stats: Path) -> tuple[int, float]:
    """Lookups the mount answered and seconds in its handler (written when it exits)."""
    counts = json.loads(op_stats.read_text())
    return int(counts["lookup"][0]), counts["lookup"][1]


def floor(work: Path, files: int, runs: int) -> None:
    """The same stats answered by a pyfuse3 file system that does nothing else."""
    mnt = work / "floor"
    mnt.mkdir()
    server = subprocess.Popen([sys.executable, "-c", FLOOR_FS, str(mnt)])
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the floor file system did not mount")
            time.sleep(0.02)
        for run in range(runs):
            t.drop_page_cache()  # (also makes the kernel forget the names of the last run)
            rate, seconds = timed_stats(mnt, [f"f{run * files + i}" for i in range(files)])
            print(f"floor run {run}: {rate:,.0f} stat/s ({latencies(seconds)})")
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--untar-entries", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=t.STAT_RUNS)
    ap.add_argument("--floor", action="store_true", help="also time a trivial pyfuse3 fs")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark drops the kernel page cache")
    work = Path(tempfile.mkdtemp(prefix="drivefs-remount-stat-", dir=args.dir))
    op_stats = work / "op-stats.json"
    os.environ[OP_STATS_ENV] = str(op_stats)  # each mount writes it as it exits
    tarball = work / "tree.tar"
    last = t.make_tarball(tarball, args.untar_entries)
    names = t.small_names(args.files)
    drive = Drive(work, t.console, "local")
    rates = []
    try:
        mnt = drive.mount("a")
        sync = drive.syncer(mnt)
        size = args.size_mib * t.MiB
        t.write_file(mnt / "big", size, "drive write")
        t.read_file(mnt / "big", "drive read (warm)")
        t.small_files_synced(mnt / "small", args.files, "drive small files", sync)
        t.small_files(mnt / "small-fsync", args.files, "drive small files, fsync", fsync=True)
        t.untar(tarball, mnt, last, "drive untar", sync)
        drive.unmount(mnt)
        for run in range(args.runs):
            mnt = drive.mount("a")  # the same cache again: a remount
            t.drop_page_cache()
            rate, seconds = timed_stats(mnt / "small", names)
            rates.append(rate)
            drive.unmount(mnt)  # its lookups are counted as it exits
            count, spent = lookups_of(op_stats)
            print(
                f"run {run}: {rate:,.0f} stat/s ({latencies(seconds)}); the mount answered "
                f"{count} lookups, {spent / max(count, 1) * 1e6:.1f} µs each in its handler"
            )
        print(f"median {statistics.median(rates):,.0f} stat/s (throughput.py's figure)")
        if args.floor:
            floor(work, args.files, args.runs)
    finally:
        drive.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
