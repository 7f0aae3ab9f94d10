"""Throughput of a drivefs mount next to a plain local directory, in one run.

Prints sequential write/read MB/s of a large file (read warm, and cold after a
remount with the kernel page cache dropped), durable small-file creates/s,
untar entries/s, stat/s after a remount, bytes uploaded after a 1-byte
insert, and change latency between two mounts; each drive figure beside the
local baseline and their ratio. Run as root (FUSE, drop_caches):

    .venv/bin/python bench/throughput.py [--size-mib 1024] [--files 2000]
        [--untar-entries 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fusefs.clients import BlockClient
from fusefs.credentials import TOKEN_ENV, auth_key_path, local_token
from fusefs.daemons import start_daemon

MiB = 1024 * 1024
PIECE = 1 * MiB
console = Console()


def drop_page_cache() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


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


def small_files(root: Path, count: int, label: str) -> float:
    """Seconds to create count 4 KiB files, each durable when close returns."""
    payload = os.urandom(4096)
    (root / "small").mkdir()
    with progress() as bar:
        task = bar.add_task(label, total=count)
        start = time.perf_counter()
        for i in range(count):
            with open(root / "small" / f"f{i:05d}", "wb") as f:
                f.write(payload)
                os.fsync(f.fileno())
            bar.update(task, advance=1)
        return time.perf_counter() - start


def make_tarball(path: Path, entries: int) -> None:
    """A source-tree-like archive: folders of 20 files of 0..16 KiB."""
    rng = random.Random(3)
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


def untar(tarball: Path, dest: Path, label: str) -> float:
    """Seconds to unpack tarball into dest and have it durable (sync)."""
    with console.status(label):
        start = time.perf_counter()
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest)], check=True)
        os.sync()
        return time.perf_counter() - start


def stat_all(root: Path) -> float:
    names = os.listdir(root / "small")
    start = time.perf_counter()
    for name in names:
        os.stat(root / "small" / name)
    return len(names) / (time.perf_counter() - start)


class Drive:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.metad = start_daemon("metad", work / "metad", "127.0.0.1:0")
        key = auth_key_path(work)  # metad made it; blockd checks tokens with it
        self.blockd = start_daemon(
            "blockd", work / "blockd", "127.0.0.1:0", extra_args=["--auth-key", str(key)]
        )
        token = local_token(work)
        assert token is not None
        self.token = token[0]
        self.mounts: list[tuple[subprocess.Popen, Path]] = []

    def mount(self, name: str, cache: str | None = None) -> Path:
        path = self.work / f"mnt-{name}"
        path.mkdir(exist_ok=True)
        log = open(self.work / f"mount-{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen(
            [
                sys.executable, "-m", "fusefs.cli", "mount", str(path),
                "--metad", self.metad.address, "--blockd", self.blockd.address,
                "--cache", str(self.work / f"cache-{cache or name}"), "--device", name,
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, TOKEN_ENV: self.token},
        )  # fmt: skip
        while not os.path.ismount(path):
            if p.poll() is not None:
                raise SystemExit(f"mount failed, see {self.work}/mount-{name}.log")
            time.sleep(0.02)
        self.mounts.append((p, path))
        return path

    def unmount(self, path: Path) -> None:
        for p, mp in list(self.mounts):
            if mp == path:
                p.send_signal(signal.SIGTERM)
                p.wait(120)
                self.mounts.remove((p, mp))

    def bytes_received(self) -> int:
        client = BlockClient(self.blockd.address, lambda: self.token)
        try:
            return client.stats().bytes_received
        finally:
            client.close()

    def close(self) -> None:
        for _, path in list(self.mounts):
            self.unmount(path)
        self.blockd.stop()
        self.metad.stop()


def change_latency(a: Path, b: Path, rounds: int = 30) -> list[float]:
    latencies = []
    for i in range(rounds):
        os.listdir(b)
        start = time.perf_counter()
        (a / f"latency-{i}").write_bytes(b"x")
        while not os.path.exists(b / f"latency-{i}"):
            if time.perf_counter() - start > 5:
                break
            time.sleep(0.002)
        latencies.append(time.perf_counter() - start)
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--untar-entries", type=int, default=1000, help="in the archive (default 1000)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark drops the kernel page cache")
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="drivefs-bench-", dir=args.dir))
    local = work / "local"
    local.mkdir()
    rows: list[tuple[str, float, float, str]] = []

    # Baseline: a plain directory on the same disk.
    lw = size / write_file(local / "big", size, "local write") / MiB
    lr_warm = size / read_file(local / "big", "local read (warm)") / MiB
    drop_page_cache()
    lr_cold = size / read_file(local / "big", "local read (cold)") / MiB
    lfiles = args.files / small_files(local, args.files, "local small files")
    drop_page_cache()
    lstat = stat_all(local)
    tarball = work / "tree.tar"
    make_tarball(tarball, args.untar_entries)
    ltar = args.untar_entries / untar(tarball, local, "local untar")

    drive = Drive(work)
    try:
        mnt = drive.mount("a")
        dw = size / write_file(mnt / "big", size, "drive write") / MiB
        dr_warm = size / read_file(mnt / "big", "drive read (warm)") / MiB
        dfiles = args.files / small_files(mnt, args.files, "drive small files")
        dtar = args.untar_entries / untar(tarball, mnt, "drive untar")
        drive.unmount(mnt)
        mnt = drive.mount("a")
        drop_page_cache()
        dr_cold_cached = size / read_file(mnt / "big", "drive read (cold, cached)") / MiB
        dstat = stat_all(mnt)
        other = drive.mount("b")
        drop_page_cache()
        dr_cold = size / read_file(other / "big", "drive read (cold, no cache)") / MiB

        data = random.Random(9).randbytes(64 * MiB)
        (mnt / "insert.bin").write_bytes(data)
        before = drive.bytes_received()
        (mnt / "insert.bin").write_bytes(data[: 32 * MiB] + b"!" + data[32 * MiB :])
        insert_mib = (drive.bytes_received() - before) / MiB
        lat = sorted(change_latency(mnt, other))
    finally:
        drive.close()
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("sequential write MB/s", dw, lw, "≥ 240"),
        ("read warm MB/s", dr_warm, lr_warm, ""),
        ("read cold, local cache MB/s", dr_cold_cached, lr_cold, ""),
        ("read cold, empty cache MB/s", dr_cold, lr_cold, "≥ 600"),
        ("small files/s (durable)", dfiles, lfiles, "≥ 1000"),
        ("stat/s after remount", dstat, lstat, "≥ 20000"),
        ("untar entries/s (durable)", dtar, ltar, "≥ 1000"),
    ]
    table = Table(
        title=f"drivefs vs local directory ({args.size_mib} MiB file, {args.files} files)"
    )
    for col in ("figure", "drive", "local", "drive/local", "target"):
        table.add_column(col, justify="right" if col != "figure" else "left")
    for name, d, loc, target in rows:
        table.add_row(name, f"{d:,.0f}", f"{loc:,.0f}", f"{d / loc:.2f}", target)
    console.print(table)
    console.print(f"uploaded after a 1-byte insert in 64 MiB: {insert_mib:.2f} MiB (target ≤ 3)")
    p50 = statistics.median(lat) * 1000
    p90 = lat[int(len(lat) * 0.9)] * 1000
    console.print(
        f"change seen by another mount: p50 {p50:.0f} ms, p90 {p90:.0f} ms (target p50 ≤ 300)"
    )


if __name__ == "__main__":
    main()
