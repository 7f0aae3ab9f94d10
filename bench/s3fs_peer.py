"""s3fs-fuse as a peer on the very S3 server a benchmark runs blockd against.

Owns: mounting s3fs (Debian's `s3fs` package, s3fs-fuse) on a bucket of its
own on that server, in the foreground so its CPU and peak RSS can be read,
with its defaults except what loopback needs (endpoint, path-style
addressing, the test credentials); and its two figures that issue 11 sets
our targets by: sequential write until durable (fsync before close: s3fs
uploads then) and sequential read with an empty cache (a fresh mount, the
kernel page cache dropped; s3fs without `use_cache` keeps nothing on disk).

Must not: run when s3fs is not on PATH (`available()` says so, and the
benchmark prints "s3fs not installed"); touch blockd's bucket.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from drive_runner import peak_rss_kib

MOUNT_TIMEOUT = 30.0


def available() -> bool:
    return shutil.which("s3fs") is not None


class S3fs:
    """One s3fs mount of bucket at endpoint; mount() again after unmount() for a cold one."""

    def __init__(self, work: Path, endpoint: str, bucket: str, credentials: tuple[str, str]):
        self.work = work
        self.endpoint = endpoint
        self.bucket = bucket
        self.path = work / "mnt-s3fs"
        self.passwd = work / "s3fs.passwd"
        self.passwd.write_text(f"{credentials[0]}:{credentials[1]}\n")
        self.passwd.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib: int | None = None

    def mount(self) -> Path:
        self.path.mkdir(exist_ok=True)
        log = open(self.work / "s3fs.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "s3fs", self.bucket, str(self.path), "-f",
                "-o", f"url={self.endpoint}", "-o", "use_path_request_style",
                "-o", f"passwd_file={self.passwd}", "-o", "endpoint=us-east-1",
                "-o", "dbglevel=warn",
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"s3fs did not mount; see {self.work}/s3fs.log")
            time.sleep(0.02)
        return self.path

    def unmount(self) -> None:
        if self.process is None:
            return
        self.peak_rss_kib = max(self.peak_rss_kib or 0, peak_rss_kib(self.process.pid) or 0) or None
        subprocess.run(["fusermount3", "-u", str(self.path)], check=False)
        try:
            self.process.wait(MOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
        self.process = None


def measure(
    work: Path,
    endpoint: str,
    make_bucket: Callable[[str], None],
    credentials: tuple[str, str],
    size: int,
    write_file: Callable[[Path, int, str], float],
    read_file: Callable[[Path, str], float],
    drop_page_cache: Callable[[], None],
    cpu_seconds: Callable[[int], float],
) -> dict[str, float]:
    """s3fs's write-until-durable and cold-read MB/s, and its CPU s per GiB of each.

    The benchmark's own write_file (fsync before close) and read_file are
    used, so the figures are measured exactly as the drive's are.
    """
    work.mkdir(exist_ok=True)
    make_bucket("s3fs-bench")
    s3fs = S3fs(work, endpoint, "s3fs-bench", credentials)
    f: dict[str, float] = {}
    gib = size / 1024**3
    try:
        mnt = s3fs.mount()
        assert s3fs.process is not None
        cpu = cpu_seconds(s3fs.process.pid)
        f["write"] = size / write_file(mnt / "big", size, "s3fs write") / 2**20
        f["cpu write"] = (cpu_seconds(s3fs.process.pid) - cpu) / gib
        s3fs.unmount()
        mnt = s3fs.mount()
        drop_page_cache()
        assert s3fs.process is not None
        cpu = cpu_seconds(s3fs.process.pid)
        f["read cold, no cache"] = size / read_file(mnt / "big", "s3fs read (cold)") / 2**20
        f["cpu cold"] = (cpu_seconds(s3fs.process.pid) - cpu) / gib
    finally:
        s3fs.unmount()
    f["peak rss MiB"] = (s3fs.peak_rss_kib or 0) / 1024
    return f
