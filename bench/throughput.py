"""Throughput of a drivefs mount next to a plain local directory, in one run.

Prints each drive figure beside the same figure of a local directory on the
same disk, their ratio and the target of the local-first mount (issue 10):

- sequential write/read MB/s of a large file (read warm, and cold after a
  remount with the kernel page cache dropped, with and without a cache);
- random 4 KiB reads/s of that file with O_DIRECT (the page cache bypassed:
  every read reaches the mount), from the mount's cache, and their p99;
- small files (4 KiB) created/s: "until close" (open/write/close), "until
  synced" (the same run, from its start until `drive sync MOUNTPOINT`
  returns), and "durable (fsync)" (an fsync before each close);
- untar of a generated source tree, entries/s until tar returns and until
  synced; targets are per second (10,000 entries in 10 s closed, 40 s synced);
  under the table, its seconds beside the floor: the same archive untarred into
  a trivial in-memory pyfuse3 file system right after, as is and with an
  fdatasync at each close (floor_fs.py);
- after a remount of the same cache: stat/s of the small files by their known
  names (no listing first; the median of STAT_RUNS fresh remounts, each with
  the CPU per stat of the mount and of the benchmark, and the time both
  waited for a CPU: on a shared machine that, not the mount, moves it), stat/s
  after a listdir, and a recursive listing with lstat of the untarred tree, in
  Python (os.scandir) and as `ls -lR`, each on a fresh remount; target 1 s per
  10,000 entries;
- bytes uploaded after a 1-byte insert, change latency between two mounts
  (p50, p99), and the peak RSS (VmHWM) of every mount process;
- the CPU seconds per GiB the mount and blockd spent writing until synced and
  reading cold with an empty cache: steadier than MB/s on a shared machine;
- on the S3 backends, s3fs (s3fs-fuse, when on PATH) on a bucket of its own on
  the same server: its write until durable and cold read beside the drive's,
  against issue 11's targets (write >= 2x, cold read >= 1.2x s3fs).

"Until synced" on the local directory means until os.sync() returns; on the
drive, until `drive sync MOUNTPOINT` returns. Under the table: the peak RSS
of every process (each mount run, metad, blockd) next to its bound.

Run as root (FUSE, drop_caches); it starts its own daemons and mounts, with
blockd on a local folder, or on an S3 server on loopback: moto's (--backend s3)
or SeaweedFS (--backend seaweedfs):

    .venv/bin/python bench/throughput.py [--size-mib 1024] [--files 2000]
        [--untar-entries 1000] [--backend local|s3|seaweedfs] [--dir DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import s3fs_peer
from drive_runner import Drive
from figures_io import (
    MiB,
    console,
    cpu_of,
    cpu_per_gib,
    cpu_seconds,
    drop_page_cache,
    local_sync,
    random_reads,
    read_file,
    write_file,
)
from figures_tree import (
    STAT_RUNS,
    Floor,
    change_latency,
    ls_lr,
    make_tarball,
    small_files,
    small_files_synced,
    small_names,
    stat_all,
    stat_known,
    stat_remounted,
    untar,
    untar_floors,
    walk_lstat,
)

# The peak RSS each process should stay under (tests/test_mount_big.py holds them to it).
MOUNT_PEAK_MIB = 640
METAD_PEAK_MIB = 256
BLOCKD_PEAK_MIB = 768


def insert_upload_mib(drive: Drive, mnt: Path) -> float:
    """MiB uploaded to blockd after one byte is inserted in the middle of a 64 MiB file."""
    with console.status("1-byte insert in 64 MiB"):
        data = random.Random(9).randbytes(64 * MiB)
        edited = data[: 32 * MiB] + b"!" + data[32 * MiB :]
        (mnt / "insert.bin").write_bytes(data)
        drive.sync(mnt)  # the first version is on the drive
        before = drive.bytes_received()
        (mnt / "insert.bin").write_bytes(edited)
        drive.sync(mnt)
        return (drive.bytes_received() - before) / MiB


def measure_local(
    local: Path, args: argparse.Namespace, tarball: Path, last: tuple[str, int]
) -> dict[str, float]:
    """The baseline figures, keyed as in measure_drive."""
    size, files = args.size_mib * MiB, args.files
    f: dict[str, float] = {}
    f["write"] = size / write_file(local / "big", size, "local write") / MiB
    f["read warm"] = size / read_file(local / "big", "local read (warm)") / MiB
    drop_page_cache()
    f["read cold"] = size / read_file(local / "big", "local read (cold)") / MiB
    f["read cold, no cache"] = f["read cold"]
    f["random iops"], f["random p99 ms"] = random_reads(local / "big", "local random 4 KiB")
    closed, synced = small_files_synced(local / "small", files, "local small files", local_sync)
    f["small closed"], f["small synced"] = files / closed, files / synced
    fsynced = small_files(local / "small-fsync", files, "local small files, fsync", fsync=True)
    f["small fsync"] = files / fsynced
    closed, synced = untar(tarball, local, last, "local untar", local_sync)
    f["untar closed"], f["untar synced"] = args.untar_entries / closed, args.untar_entries / synced
    runs = []
    for _ in range(STAT_RUNS):
        drop_page_cache()
        runs.append(stat_known(local / "small", small_names(files)))
    f["stat known"] = statistics.median(runs)
    f.update({f"stat known run {i}": rate for i, rate in enumerate(runs)})
    drop_page_cache()
    f["stat listed"] = stat_all(local / "small-fsync")
    drop_page_cache()
    f["walk"], f["walk entries"] = walk_lstat(local / "tree")
    drop_page_cache()
    f["ls -lR"] = ls_lr(local / "tree")
    return f


def measure_drive(
    drive: Drive, args: argparse.Namespace, tarball: Path, last: tuple[str, int]
) -> dict[str, float]:
    """The drive's figures; the remount ones each on a fresh mount of the same cache."""
    size, files = args.size_mib * MiB, args.files
    f: dict[str, float] = {}
    mnt = drive.mount("a")
    sync = drive.syncer(mnt)
    cpu = cpu_of(drive, mnt)
    f["write"] = size / write_file(mnt / "big", size, "drive write") / MiB
    f["cpu write mount"], f["cpu write blockd"] = cpu_per_gib(cpu, cpu_of(drive, mnt), size)
    f["read warm"] = size / read_file(mnt / "big", "drive read (warm)") / MiB
    closed, synced = small_files_synced(mnt / "small", files, "drive small files", sync)
    f["small closed"], f["small synced"] = files / closed, files / synced
    fsynced = small_files(mnt / "small-fsync", files, "drive small files, fsync", fsync=True)
    f["small fsync"] = files / fsynced
    closed, synced = untar(tarball, mnt, last, "drive untar", sync)
    f["untar closed"], f["untar synced"] = args.untar_entries / closed, args.untar_entries / synced
    f["untar floor s"], f["untar floor durable s"] = untar_floors(tarball, drive.work)

    runs = []
    floor = Floor(drive.work / "mnt-floor")
    try:
        for i in range(STAT_RUNS):
            mnt, run = stat_remounted(drive, mnt, small_names(files))
            runs.append(run.rate)
            below = floor.stat_run(files)
            f.update({
                f"stat known run {i}": run.rate, f"stat known cpu {i}": run.mount_us,
                f"stat known bench cpu {i}": run.bench_us,
                f"stat known waited {i}": run.waited_ms,
                f"stat known daemons {i}": run.daemons_ms,
                f"stat floor run {i}": below.rate, f"stat floor cpu {i}": below.mount_us,
            })  # fmt: skip
    finally:
        floor.close()
    f["stat known"] = statistics.median(runs)
    f["stat listed"] = stat_all(mnt / "small-fsync")
    f["read cold"] = size / read_file(mnt / "big", "drive read (cold, cached)") / MiB
    f["random iops"], f["random p99 ms"] = random_reads(mnt / "big", "drive random 4 KiB")
    mnt = drive.remount(mnt)
    drop_page_cache()
    f["walk"], f["walk entries"] = walk_lstat(mnt / "tree")
    mnt = drive.remount(mnt)
    drop_page_cache()
    f["ls -lR"] = ls_lr(mnt / "tree")

    other = drive.mount("b")
    drop_page_cache()
    cpu = cpu_of(drive, other)
    f["read cold, no cache"] = size / read_file(other / "big", "drive read (cold, no cache)") / MiB
    f["cpu cold mount"], f["cpu cold blockd"] = cpu_per_gib(cpu, cpu_of(drive, other), size)
    f["insert MiB"] = insert_upload_mib(drive, mnt)
    lat, timeouts = change_latency(mnt, other)
    lat.sort()
    f["p50 ms"] = statistics.median(lat) * 1000
    f["p99 ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    f["latency timeouts"] = timeouts
    return f


def measure_small_local(
    local: Path, args: argparse.Namespace, tarball: Path, last: tuple[str, int]
) -> dict[str, float]:
    """--small-only: the local baseline of small files and untar."""
    f: dict[str, float] = {}
    small = local / "small"
    closed, synced = small_files_synced(small, args.files, "local small files", local_sync)
    f["small closed"], f["small synced"] = args.files / closed, args.files / synced
    closed, synced = untar(tarball, local, last, "local untar", local_sync)
    f["untar closed"], f["untar synced"] = args.untar_entries / closed, args.untar_entries / synced
    return f


def measure_small_drive(
    drive: Drive, args: argparse.Namespace, tarball: Path, last: tuple[str, int]
) -> dict[str, float]:
    """--small-only: small files and untar on a fresh mount, with the CPU seconds the
    mount (and metad + blockd) spent per 1,000 entries until close and until synced
    (steadier than the wall clock on a shared machine)."""
    mnt = drive.mount("a")
    sync = drive.syncer(mnt)
    f: dict[str, float] = {}

    def cpu() -> tuple[float, float]:
        mount_pid = next(p.pid for p, path, _ in drive.mounts if path == mnt)
        daemons = sum(cpu_seconds(d.process.pid) for d in (drive.metad, drive.blockd))
        return cpu_seconds(mount_pid), daemons

    def small(hook: Callable[[], None]) -> tuple[float, float]:
        return small_files_synced(mnt / "small", args.files, "drive small files", sync, hook)

    def untarred(hook: Callable[[], None]) -> tuple[float, float]:
        return untar(tarball, mnt, last, "drive untar", sync, hook)

    for key, count, run in (("small", args.files, small), ("untar", args.untar_entries, untarred)):
        start = cpu()
        at_close: list[tuple[float, float]] = []
        closed, synced = run(lambda at_close=at_close: at_close.append(cpu()))
        end = cpu()
        f[f"{key} closed"], f[f"{key} synced"] = count / closed, count / synced
        f[f"{key} cpu closed"] = (at_close[0][0] - start[0]) * 1000 / count
        f[f"{key} cpu synced"] = (end[0] - start[0]) * 1000 / count
        f[f"{key} cpu daemons"] = (end[1] - start[1]) * 1000 / count
    f["untar floor s"], f["untar floor durable s"] = untar_floors(tarball, drive.work)
    return f


def report_small(d: dict[str, float], loc: dict[str, float], args: argparse.Namespace) -> None:
    n = args.untar_entries
    table = Table(title=f"drivefs vs local directory ({args.files} small files, {n} untar entries)")
    for col in ("figure", "drive", "local", "drive/local", "target"):
        table.add_column(col, justify="right" if col != "figure" else "left")
    for name, key, target in (
        ("small files/s, until close", "small closed", "≥ 1000"),
        ("small files/s, until synced", "small synced", "≥ 300"),
        ("untar entries/s, until close", "untar closed", f"≥ 1000 (≤ {n / 1000:.1f} s)"),
        ("untar entries/s, until synced", "untar synced", f"≥ 250 (≤ {n / 250:.1f} s)"),
    ):
        dv, lv = d[key], loc[key]
        ratio = "" if math.isnan(dv) or math.isnan(lv) or not lv else f"{dv / lv:.3g}"
        table.add_row(name, _shown(dv, ""), _shown(lv, ""), ratio, target)
    console.print(table)
    print_untar_floor(d, loc, n)
    for key, what in (("small", "small files"), ("untar", "untar entries")):
        console.print(
            f"CPU s per 1,000 {what}: mount {d[f'{key} cpu closed']:.3f} until close, "
            f"{d[f'{key} cpu synced']:.3f} until synced; metad + blockd "
            f"{d[f'{key} cpu daemons']:.3f}"
        )


def print_untar_floor(d: dict[str, float], loc: dict[str, float], entries: int) -> None:
    """The untar figure until close beside the same archive untarred into a trivial
    in-memory pyfuse3 file system right after the drive's (floor_fs.py)."""
    floor, durable = d["untar floor s"], d["untar floor durable s"]
    console.print(
        f"untar until close ({entries} entries): drive {entries / d['untar closed']:.1f} s, "
        f"local {entries / loc['untar closed']:.1f} s, floor {floor:.1f} s, floor with "
        f"durable closes {durable:.1f} s"
    )
    console.print(
        "  floor: the same archive untarred right after into a trivial in-memory pyfuse3 "
        "file system (what pyfuse3, trio and the kernel cost here now); durable closes: "
        "with a pwrite + fdatasync of each file to a scratch file on the drive's disk at "
        "each close (the floor of close = durable on local disk)"
    )


def _shown(value: float, kind: str) -> str:
    if math.isnan(value):
        return "failed"
    return f"{value:.3f}" if kind == "s" else f"{value:,.0f}"


def report(
    d: dict[str, float], loc: dict[str, float], drive: Drive, args: argparse.Namespace
) -> None:
    n = args.untar_entries
    walked = int(d["walk entries"])
    rows = [  # figure, key, target, format ("s": seconds, lower is better)
        ("sequential write MB/s", "write", "≥ 240", ""),
        ("read warm MB/s", "read warm", "", ""),
        ("read cold, local cache MB/s", "read cold", "", ""),
        ("read cold, empty cache MB/s", "read cold, no cache", "≥ 600", ""),
        ("random 4 KiB reads/s, O_DIRECT, cached", "random iops", "≥ 10000", ""),
        ("  their p99 latency, ms", "random p99 ms", "", "s"),
        ("small files/s, until close", "small closed", "≥ 1000", ""),
        ("small files/s, until synced", "small synced", "≥ 300", ""),
        ("small files/s, durable (fsync)", "small fsync", "", ""),
        ("untar entries/s, until close", "untar closed", f"≥ 1000 (≤ {n / 1000:.1f} s)", ""),
        ("untar entries/s, until synced", "untar synced", f"≥ 250 (≤ {n / 250:.1f} s)", ""),
        ("remount: stat/s, known names", "stat known", "≥ 20000", ""),
        ("remount: stat/s after listdir", "stat listed", "", ""),
        (f"remount: scandir+lstat -R s ({walked})", "walk", f"≤ {walked / 10000:.2f}", "s"),
        (f"remount: ls -lR s ({walked})", "ls -lR", f"≤ {walked / 10000:.2f}", "s"),
    ]
    table = Table(
        title=f"drivefs ({args.backend} blocks) vs local directory ({args.size_mib} MiB file, "
        f"{args.files} files, "
        f"{n} untar entries)"
    )
    for col in ("figure", "drive", "local", "drive/local", "target"):
        table.add_column(col, justify="right" if col != "figure" else "left")
    for name, key, target, kind in rows:
        dv, lv = d[key], loc[key]
        ratio = "" if math.isnan(dv) or math.isnan(lv) or not lv else f"{dv / lv:.3g}"
        table.add_row(name, _shown(dv, kind), _shown(lv, kind), ratio, target)
    console.print(table)
    print_untar_floor(d, loc, n)
    if walked != int(loc["walk entries"]):
        console.print(f"[red]drive tree has {walked} entries, local {int(loc['walk entries'])}")
    console.print(
        "CPU s per GiB, mount + blockd (compare these on a shared machine, not MB/s): "
        f"write until synced {d['cpu write mount']:.2f} + {d['cpu write blockd']:.2f}, "
        f"cold read with an empty cache {d['cpu cold mount']:.2f} + {d['cpu cold blockd']:.2f}"
    )
    rss = ", ".join(f"{m} {k / 1024:.0f} MiB" if k else f"{m} ?" for m, k in drive.peak_rss)
    console.print(
        f"peak RSS (VmHWM): {rss} (bounds: a mount {MOUNT_PEAK_MIB} MiB, metad "
        f"{METAD_PEAK_MIB} MiB, blockd {BLOCKD_PEAK_MIB} MiB, whatever the file size)"
    )
    console.print(
        f"uploaded after a 1-byte insert in 64 MiB: {d['insert MiB']:.2f} MiB (target ≤ 3)"
    )
    console.print(
        f"stat/s of known names after remount, {STAT_RUNS} runs (median above): drive "
        + ", ".join(f"{d[f'stat known run {i}']:,.0f}" for i in range(STAT_RUNS))
        + "; local "
        + ", ".join(f"{loc[f'stat known run {i}']:,.0f}" for i in range(STAT_RUNS))
    )
    console.print(
        "  each drive run's CPU µs per stat, mount + this process; ms both waited for a "
        "CPU; CPU ms of metad + blockd meanwhile: "
        + ", ".join(
            f"{d[f'stat known cpu {i}']:.0f} + {d[f'stat known bench cpu {i}']:.0f} µs, "
            f"{d[f'stat known waited {i}']:.0f} ms, {d[f'stat known daemons {i}']:.0f} ms"
            for i in range(STAT_RUNS)
        )
    )
    console.print(
        "  a trivial pyfuse3 file system (the floor) after each drive run: "
        + ", ".join(
            f"{d[f'stat floor run {i}']:,.0f} stat/s, {d[f'stat floor cpu {i}']:.0f} µs"
            for i in range(STAT_RUNS)
        )
    )
    late = f", {d['latency timeouts']:.0f} timed out at 5 s" if d["latency timeouts"] else ""
    console.print(
        f"change seen by another mount: p50 {d['p50 ms']:.0f} ms, p99 {d['p99 ms']:.0f} ms "
        f"(50 rounds{late}; target p50 ≤ 300)"
    )


def measure_s3fs(drive: Drive, args: argparse.Namespace) -> dict[str, float] | None:
    """s3fs's figures on the drive's S3 server (see s3fs_peer.py); None if not installed."""
    if drive.s3 is None or not s3fs_peer.available():
        return None
    server = drive.s3
    return s3fs_peer.measure(
        drive.work / "s3fs",
        server.endpoint,
        lambda bucket: server.client.create_bucket(Bucket=bucket),
        (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
        args.size_mib * MiB,
        write_file,
        read_file,
        drop_page_cache,
        cpu_seconds,
    )


def report_s3fs(d: dict[str, float], peer: dict[str, float] | None) -> None:
    """The drive's S3 figures beside s3fs's, from the same run, against issue 11's targets."""
    if peer is None:
        console.print("s3fs not installed (apt-get install s3fs): no peer figures on S3")
        return
    for name, key, factor in (
        ("write until durable", "write", 2.0),
        ("read cold, empty cache", "read cold, no cache", 1.2),
    ):
        ratio = d[key] / peer[key] if peer[key] else math.nan
        console.print(
            f"{name}: drive {d[key]:,.0f} MB/s, s3fs {peer[key]:,.0f} MB/s on the same server: "
            f"{ratio:.2f}x (target ≥ {factor:.1f}x: {'met' if ratio >= factor else 'not met'})"
        )
    console.print(
        f"s3fs CPU s per GiB: write {peer['cpu write']:.2f}, cold read {peer['cpu cold']:.2f}; "
        f"peak RSS {peer['peak rss MiB']:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--untar-entries", type=int, default=1000, help="in the archive (default 1000)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument(
        "--backend", choices=("local", "s3", "seaweedfs"), default="local", help="blockd's store"
    )
    ap.add_argument(
        "--small-only",
        action="store_true",
        help="only small files and untar (with the mount's CPU s per 1,000 entries)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark drops the kernel page cache")
    work = Path(tempfile.mkdtemp(prefix="drivefs-bench-", dir=args.dir))
    local = work / "local"
    local.mkdir()
    tarball = work / "tree.tar"
    last = make_tarball(tarball, args.untar_entries)
    drive = None
    try:
        if args.small_only:
            loc = measure_small_local(local, args, tarball, last)
            drive = Drive(work, console, args.backend)
            d = measure_small_drive(drive, args, tarball, last)
        else:
            loc = measure_local(local, args, tarball, last)
            drive = Drive(work, console, args.backend)
            d = measure_drive(drive, args, tarball, last)
            peer = measure_s3fs(drive, args) if args.backend != "local" else None
    finally:
        if drive is not None:
            drive.close()
        shutil.rmtree(work, ignore_errors=True)
    if args.small_only:
        report_small(d, loc, args)
        return
    report(d, loc, drive, args)
    if args.backend != "local":
        report_s3fs(d, peer)


if __name__ == "__main__":
    main()
