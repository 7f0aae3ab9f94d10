"""The mount's CPU per small file: throughput.py's small-files and untar parts alone,
with the CPU seconds the mount process used per 1,000 entries.

Runs, on a fresh drive: 2,000 x 4 KiB files made and synced, then a generated
tree untarred and synced (the same functions as bench/throughput.py), and
prints for each: entries/s until the last close returned and until `drive
sync` returned, and the mount's CPU seconds per 1,000 entries (user + system,
/proc/PID/stat fields 14 and 15) until close and until synced. Everything the
mount does for those entries is in the second figure (its FUSE handlers and
its synchronizer, which share one thread); the difference between the two is
mostly what the synchronizer still had to do after the last close. Then the
change latency to a second mount (p50/p99), as throughput.py measures it.

With --py-spy FILE, py-spy samples the mount during the untar until synced
and writes collapsed stacks to FILE (py-spy's `raw` format), only samples holding the
GIL: what competes with the FUSE handlers for the one Python thread that runs.

Run as root (FUSE):

    .venv/bin/python bench/sync_cpu.py [--files 2000] [--untar-entries 10000]
        [--rounds 50] [--py-spy FILE] [--dir DIR]
"""

from __future__ import annotations

import argparse
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


def mount_pid(drive: Drive, mnt: Path) -> int:
    return next(p.pid for p, path, _ in drive.mounts if path == mnt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--untar-entries", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=50, help="change latency rounds (0: none)")
    ap.add_argument("--py-spy", type=Path, default=None, help="collapsed stacks of the untar")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (FUSE)")
    work = Path(tempfile.mkdtemp(prefix="drivefs-synccpu-", dir=args.dir))
    tarball = work / "tree.tar"
    t.make_tarball(tarball, args.untar_entries)
    drive = Drive(work, t.console)
    rows: list[tuple[str, float, float, float, float]] = []
    try:
        mnt = drive.mount("a")
        pid = mount_pid(drive, mnt)

        def measured(label: str, entries: int, make) -> None:
            cpu0 = t.cpu_seconds(pid)
            start = time.perf_counter()
            make()
            closed = time.perf_counter() - start
            cpu_closed = t.cpu_seconds(pid) - cpu0
            drive.sync(mnt)
            synced = time.perf_counter() - start
            cpu_synced = t.cpu_seconds(pid) - cpu0
            per = 1000 / entries
            rows.append(
                (label, entries / closed, entries / synced, cpu_closed * per, cpu_synced * per)
            )

        measured(
            "small files",
            args.files,
            lambda: t.small_files(mnt / "small", args.files, "small files", fsync=False),
        )
        spy = None
        if args.py_spy is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                 "--format", "raw", "--nonblocking", "--gil", "--rate", "250",
                 "--output", str(args.py_spy)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        measured(
            "untar",
            args.untar_entries,
            lambda: subprocess.run(["tar", "-xf", str(tarball), "-C", str(mnt)], check=True),
        )
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        latency = None
        if args.rounds:
            other = drive.mount("b")
            lat, timeouts = t.change_latency(mnt, other, args.rounds)
            lat.sort()
            latency = (
                statistics.median(lat) * 1000,
                lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
                timeouts,
            )
    finally:
        drive.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'':14}{'closed/s':>10}{'synced/s':>10}{'CPU s/1000 closed':>19}{'synced':>8}")
    for label, closed, synced, cpu_c, cpu_s in rows:
        print(f"{label:14}{closed:10.0f}{synced:10.0f}{cpu_c:19.3f}{cpu_s:8.3f}")
    if latency is not None:
        print(f"change latency p50 {latency[0]:.0f} ms, p99 {latency[1]:.0f} ms, "
              f"timeouts {latency[2]}")  # fmt: skip


if __name__ == "__main__":
    main()
