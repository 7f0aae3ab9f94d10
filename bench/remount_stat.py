"""stat/s of known names after a remount, in throughput.py's own sequence, and what it waits for.

Runs only the drive side of bench/throughput.py up to its "remount: stat/s,
known names" figure, with the same functions in the same order (a large file
written and read, small files made and synced, small files fsynced, a tree
untarred and synced), then `--runs` times throughput.py's own
stat_remounted: a remount, the page cache dropped, a stat of every small file
by its known name. Each run prints its stat/s; the CPU µs per stat of the
mount and of this process, and how long both waited for a CPU that other
programs held (the stats are a ping-pong between the two: the rate is about
1 / their CPU per stat on an idle machine); and the mount's own account of
its requests (DRIVEFS_OP_STATS: lookups, getattrs, forgets, µs inside the
lookup handler); with `--tasks`, also of its trio tasks (DRIVEFS_TASK_STATS:
any task but pyfuse3's workers that held its thread 0.2 ms or more during the
stats; the instrument costs a few µs per request, so the rates drop a little).
A trivial pyfuse3 file system answering the same stats is the floor
(`--floor`): what pyfuse3, trio and the kernel cost per request here.

Run as root (FUSE, drop_caches):

    .venv/bin/python bench/remount_stat.py [--size-mib 1024] [--files 2000]
        [--untar-entries 10000] [--runs 5] [--floor] [--tasks] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drive_runner import Drive
from figures_io import MiB, console, read_file, write_file
from figures_tree import (
    STAT_RUNS,
    Floor,
    StatRun,
    make_tarball,
    small_files,
    small_files_synced,
    small_names,
    stat_remounted,
    untar,
)

OP_STATS_ENV = "DRIVEFS_OP_STATS"  # fusefs/mount/operations.py: a mount's own request counts
TASK_STATS_ENV = "DRIVEFS_TASK_STATS"  # fusefs/mount/task_stats.py: its trio tasks' steps


def requests_of(op_stats: Path) -> str:
    """What one mount answered (written as it exits): counts, and µs per lookup."""
    counts = json.loads(op_stats.read_text())
    lookups, seconds = counts["lookup"]
    asked = ", ".join(
        f"{int(counts[op][0])} {op}s" for op in ("lookup", "getattr", "forget") if counts[op][0]
    )
    return f"{asked}; {seconds / max(lookups, 1) * 1e6:.1f} µs in each lookup handler"


def other_tasks(task_stats: Path, window: tuple[float, float]) -> str:
    """The mount's trio tasks other than pyfuse3's workers that ran steps of 0.2 ms or
    more while the stats were timed (written as it exits): what else held its thread."""
    steps = json.loads(task_stats.read_text())["slow"]
    inside: dict[str, float] = {}
    for start, seconds, name in steps:
        if window[0] <= start <= window[1]:
            inside[name] = inside.get(name, 0.0) + seconds
    listed = ", ".join(f"{name} {ms * 1e3:.1f} ms" for name, ms in inside.items())
    return f"other tasks meanwhile: {listed or 'none'}"


def shown(run: StatRun) -> str:
    return (
        f"{run.rate:,.0f} stat/s; CPU µs per stat: mount {run.mount_us:.1f}, bench "
        f"{run.bench_us:.1f}; waited for a CPU {run.waited_ms:.0f} ms; metad + blockd "
        f"CPU meanwhile {run.daemons_ms:.0f} ms"
    )


def floor(work: Path, files: int, runs: int) -> None:
    """The same stats answered by a pyfuse3 file system that does nothing else."""
    below = Floor(work / "floor")
    try:
        for run in range(runs):
            print(f"floor run {run}: {shown(below.stat_run(files))}")
    finally:
        below.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--untar-entries", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=STAT_RUNS)
    ap.add_argument("--floor", action="store_true", help="also time a trivial pyfuse3 fs")
    ap.add_argument("--tasks", action="store_true", help="list the mount's other trio tasks")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark drops the kernel page cache")
    work = Path(tempfile.mkdtemp(prefix="drivefs-remount-stat-", dir=args.dir))
    tarball = work / "tree.tar"
    last = make_tarball(tarball, args.untar_entries)
    names = small_names(args.files)
    drive = Drive(work, console, "local")
    runs = []
    try:
        mnt = drive.mount("a")
        sync = drive.syncer(mnt)
        size = args.size_mib * MiB
        write_file(mnt / "big", size, "drive write")
        read_file(mnt / "big", "drive read (warm)")
        small_files_synced(mnt / "small", args.files, "drive small files", sync)
        small_files(mnt / "small-fsync", args.files, "drive small files, fsync", fsync=True)
        untar(tarball, mnt, last, "drive untar", sync)
        for run in range(args.runs):
            # The mount started by this remount writes its request counts there as it exits.
            drive.env[OP_STATS_ENV] = str(work / f"op-stats-{run}.json")
            if args.tasks:
                drive.env[TASK_STATS_ENV] = str(work / f"task-stats-{run}.json")
            mnt, stats = stat_remounted(drive, mnt, names)
            runs.append(stats)
        drive.unmount(mnt)
        for run, stats in enumerate(runs):
            tasks = work / f"task-stats-{run}.json"
            print(
                f"run {run}: {shown(stats)}; {requests_of(work / f'op-stats-{run}.json')}"
                + (f"; {other_tasks(tasks, stats.window)}" if args.tasks else "")
            )
        rates = [run.rate for run in runs]
        print(f"median {statistics.median(rates):,.0f} stat/s (throughput.py's figure)")
        if args.floor:
            floor(work, args.files, args.runs)
    finally:
        drive.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
