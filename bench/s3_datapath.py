"""The S3 data path alone: drivefs beside s3fs on one S3 server, in one run.

Issue 11's two S3 figures, without the rest of throughput.py (minutes of
small files, untar and listings): sequential write until durable (fsync
before close) and sequential read with an empty cache (a second mount with
a cache of its own, the kernel page cache dropped), of a `--size-mib` file,
through a drivefs mount with blockd on moto's server (`--backend s3`) or
SeaweedFS (`--backend seaweedfs`), then through s3fs on a bucket of its own
on the same server. Prints MB/s and CPU seconds per GiB of each process
(blockd's is the figure to compare across runs on a shared machine), each
drive figure against its target (cold read >= 1.2x s3fs, write >= 2x s3fs),
and the peak RSS of every process.

    .venv/bin/python bench/s3_datapath.py [--backend s3|seaweedfs] [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drive_runner import Drive
from figures_io import MiB, console, cpu_of, cpu_per_gib, drop_page_cache, read_file, write_file
from throughput import BLOCKD_PEAK_MIB, measure_s3fs


def measure_drive(drive: Drive, size: int) -> dict[str, float]:
    f: dict[str, float] = {}
    mnt = drive.mount("a")
    cpu = cpu_of(drive, mnt)
    f["write"] = size / write_file(mnt / "big", size, "drive write") / MiB
    f["cpu write mount"], f["cpu write blockd"] = cpu_per_gib(cpu, cpu_of(drive, mnt), size)
    other = drive.mount("b")
    drop_page_cache()
    cpu = cpu_of(drive, other)
    f["read cold, no cache"] = size / read_file(other / "big", "drive read (cold, no cache)") / MiB
    f["cpu cold mount"], f["cpu cold blockd"] = cpu_per_gib(cpu, cpu_of(drive, other), size)
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("s3", "seaweedfs"), default="s3")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--no-s3fs", action="store_true", help="measure the drive alone")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark drops the kernel page cache")
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="drivefs-s3path-", dir=args.dir))
    drive = None
    peer: dict[str, float] | None = None
    try:
        drive = Drive(work, console, args.backend)
        d = measure_drive(drive, size)
        if not args.no_s3fs:
            peer = measure_s3fs(drive, args)
    finally:
        if drive is not None:
            drive.close()
        shutil.rmtree(work, ignore_errors=True)
    server = "moto" if args.backend == "s3" else "SeaweedFS"
    console.print(f"drivefs vs s3fs on {server}, {args.size_mib} MiB file, same run")
    for name, key, factor in (
        ("write until durable", "write", 2.0),
        ("read cold, empty cache", "read cold, no cache", 1.2),
    ):
        line = f"  {name:<24} drive {d[key]:6.0f} MB/s"
        if peer is not None:
            ratio = d[key] / peer[key]
            line += (
                f"   s3fs {peer[key]:6.0f} MB/s   drive/s3fs {ratio:.2f} "
                f"(target >= {factor:.1f}: {'met' if ratio >= factor else 'NOT met'})"
            )
        console.print(line)
    console.print(
        f"  CPU s/GiB, mount + blockd: write {d['cpu write mount']:.2f} + "
        f"{d['cpu write blockd']:.2f}, cold read {d['cpu cold mount']:.2f} + "
        f"{d['cpu cold blockd']:.2f}"
    )
    if peer is not None:
        console.print(
            f"  CPU s/GiB, s3fs: write {peer['cpu write']:.2f}, cold read {peer['cpu cold']:.2f}"
        )
    elif not args.no_s3fs:
        console.print("  s3fs not installed (apt-get install s3fs): no peer figures")
    rss = ", ".join(f"{m} {k / 1024:.0f} MiB" if k else f"{m} ?" for m, k in drive.peak_rss)
    if peer is not None:
        rss += f", s3fs {peer['peak rss MiB']:.0f} MiB"
    console.print(f"  peak RSS (VmHWM): {rss} (blockd bound {BLOCKD_PEAK_MIB} MiB)")


if __name__ == "__main__":
    main()
