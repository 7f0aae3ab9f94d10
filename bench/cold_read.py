"""Cold sequential reads of one big file with an empty cache, several rounds, in one run.

The one figure of bench/throughput.py that needs the most rounds to trust: a
file is written through mount "a" and synced, then read through a fresh mount
"b" whose cache is emptied before each round (kernel page cache dropped too).
Prints, per round, MB/s and the CPU seconds per GiB of the mount and of blockd
(user + system, every thread: steadier than MB/s on a shared machine), then
their medians. With --profile DIR, py-spy (GIL holders, every thread, raw) or
perf (--profiler perf: native and kernel stacks) records both processes during
the first round.

Round 1 differs a little: blockd still holds the tail of the file in its hot
blocks from the upload; later rounds read everything from its store.

With --after-bench, mount "a" first goes through the rest of what
bench/throughput.py does before its cold read (small files, fsynced small
files, an untar of --untar-entries, remounts and a read from its cache) and
stays mounted during the rounds, as there. Measured 2026-11-28: the mount's
CPU s/GiB the same as without; blockd's first round takes ~3x the page faults
(47k instead of 13-15k per GiB: its hot blocks held the small files' blocks,
and megabyte ones need fresh pages) for ~5 % more CPU; MB/s within this shared
machine's noise.

    .venv/bin/python bench/cold_read.py [--size-mib 1024] [--rounds 3]
        [--backend local|s3] [--dir DIR] [--profile DIR] [--after-bench]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drive_runner import Drive
from figures_io import MiB, console, cpu_of, cpu_per_gib, drop_page_cache, read_file, write_file
from figures_tree import make_tarball, small_files, small_files_synced, untar


def bench_history(drive: Drive, a: Path, args: argparse.Namespace) -> Path:
    """What bench/throughput.py does on mount a after writing the big file and before
    its cold read (but the timings); returns mount a, remounted as there."""
    tarball = drive.work / "tree.tar"
    last = make_tarball(tarball, args.untar_entries)
    sync = drive.syncer(a)
    small_files_synced(a / "small", args.files, "small files", sync)
    small_files(a / "small-fsync", args.files, "small files, fsync", fsync=True)
    untar(tarball, a, last, "untar", sync)
    for _ in range(3):
        a = drive.remount(a)
    read_file(a / "big", "read (cold, cached)")
    return drive.remount(a)


def profile(pid: int, out: Path, seconds: int, tool: str) -> subprocess.Popen:
    """py-spy (Python stacks, GIL holders) or perf (native, kernel too) on pid."""
    if tool == "perf":
        cmd = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-p", str(pid)]
        cmd += ["-o", str(out.with_suffix(".perf")), "--", "sleep", str(seconds)]
    else:
        py_spy = Path(sys.executable).parent / "py-spy"
        cmd = [str(py_spy), "record", "-p", str(pid), "--threads", "--gil", "-r", "300"]
        cmd += ["-f", "raw", "-o", str(out), "-d", str(seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", choices=("local", "s3", "seaweedfs"), default="local")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--profile", type=Path, default=None, help="profiles' output directory")
    ap.add_argument("--profiler", choices=("py-spy", "perf"), default="py-spy")
    ap.add_argument("--profile-seconds", type=int, default=3)
    ap.add_argument("--after-bench", action="store_true", help="see the module docstring")
    ap.add_argument("--files", type=int, default=2000, help="with --after-bench")
    ap.add_argument("--untar-entries", type=int, default=10000, help="with --after-bench")
    args = ap.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="drivefs-coldread-", dir=args.dir))
    drive = None
    rows: list[tuple[float, float, float]] = []
    try:
        drive = Drive(work, console, args.backend)
        a = drive.mount("a")
        write_file(a / "big", size, "drive write")
        drive.sync(a)
        if args.after_bench:
            bench_history(drive, a, args)
        else:
            drive.unmount(a)
        for i in range(args.rounds):
            shutil.rmtree(work / "cache-b", ignore_errors=True)
            b = drive.mount("b")
            drop_page_cache()
            spies = []
            if args.profile is not None and i == 0:
                args.profile.mkdir(parents=True, exist_ok=True)
                mount_pid = next(p.pid for p, path, _ in drive.mounts if path == b)
                for name, pid in (("mount", mount_pid), ("blockd", drive.blockd.process.pid)):
                    out = args.profile / f"{name}.txt"
                    spies.append(profile(pid, out, args.profile_seconds, args.profiler))
            cpu = cpu_of(drive, b)
            seconds = read_file(b / "big", f"cold read #{i + 1}")
            mount_cpu, blockd_cpu = cpu_per_gib(cpu, cpu_of(drive, b), size)
            for spy in spies:
                spy.wait()
            rows.append((size / seconds / MiB, mount_cpu, blockd_cpu))
            console.print(
                f"round {i + 1}: {size / seconds / MiB:,.0f} MB/s, CPU s/GiB mount "
                f"{mount_cpu:.2f} + blockd {blockd_cpu:.2f} = {mount_cpu + blockd_cpu:.2f}"
            )
            drive.unmount(b)
    finally:
        if drive is not None:
            drive.close()
        shutil.rmtree(work, ignore_errors=True)
    mbs, m, b = (statistics.median(col) for col in zip(*rows, strict=True))
    console.print(
        f"median of {len(rows)} ({args.backend}, {args.size_mib} MiB): {mbs:,.0f} MB/s, "
        f"CPU s/GiB mount {m:.2f} + blockd {b:.2f} = {m + b:.2f} (target ≥ 600 MB/s)"
    )
    rss = ", ".join(f"{n} {k / 1024:.0f} MiB" if k else f"{n} ?" for n, k in drive.peak_rss)
    console.print(f"peak RSS (VmHWM): {rss}")


if __name__ == "__main__":
    main()
