"""The drive a benchmark measures: metad, blockd (local folder or S3) and mounts.

Started as child processes the way `drive up` starts them, on loopback. For
the S3 backend, moto's server (`s3`) or SeaweedFS (`seaweedfs`) stands in for
the store, started the way the tests start them.
The peak RSS (VmHWM) of every process is read before it stops, so the
benchmark can report what each one held at its height.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from fusefs.clients import BlockClient
from fusefs.credentials import TOKEN_ENV, auth_key_path, local_token
from fusefs.daemons import start_daemon

REPO = Path(__file__).resolve().parent.parent
MOUNT_TIMEOUT = 60.0  # seconds for a mount to appear, and for one to stop
SYNC_TIMEOUT = 600.0  # seconds for everything journaled to reach metad

# Waits until the file at the path (with this size) and all before it are committed.
Syncer = Callable[[Path, int], None]


class SyncFailed(Exception):
    """`drive sync` exited 1 or timed out: the figure is reported as failed."""


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process in KiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class Drive:
    def __init__(self, work: Path, console: Console, backend: str = "local") -> None:
        self.work = work
        self.console = console
        self.backend = backend
        self.s3 = None
        blockd_args = ["--auth-key", ""]
        if backend in ("s3", "seaweedfs"):
            blockd_args += self._start_s3(backend)
        self.metad = start_daemon("metad", work / "metad", "127.0.0.1:0")
        blockd_args[1] = str(auth_key_path(work))  # metad made it; blockd checks tokens with it
        self.blockd = start_daemon("blockd", work / "blockd", "127.0.0.1:0", extra_args=blockd_args)
        token = local_token(work)
        assert token is not None
        self.token = token[0]
        self.env = {**os.environ, TOKEN_ENV: self.token}
        self.mounts: list[tuple[subprocess.Popen, Path, str]] = []
        self.peak_rss: list[tuple[str, int | None]] = []  # (process, KiB), one per run

    def _start_s3(self, backend: str) -> list[str]:
        from tests.s3server import CREDENTIALS, start_s3_server, start_seaweed_server

        os.environ.update(CREDENTIALS)  # for blockd (a child) and our client alike
        if backend == "seaweedfs":
            (self.work / "seaweedfs").mkdir()
            self.s3 = start_seaweed_server(self.work / "seaweedfs")
        else:
            self.s3 = start_s3_server(self.work / "moto.log")
        self.s3.client.create_bucket(Bucket="bench")
        return ["--backend", "s3", "--s3-endpoint", self.s3.endpoint, "--s3-bucket", "bench"]

    def mount(self, name: str) -> Path:
        """Mount as device name, with the cache of that name (the same one again on a remount)."""
        path = self.work / f"mnt-{name}"
        path.mkdir(exist_ok=True)
        log = open(self.work / f"mount-{name}.log", "ab")  # noqa: SIM115
        p = subprocess.Popen(
            [
                sys.executable, "-m", "fusefs.cli", "mount", str(path),
                "--metad", self.metad.address, "--blockd", self.blockd.address,
                "--cache", str(self.work / f"cache-{name}"), "--device", name,
            ],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env, cwd=REPO,
        )  # fmt: skip
        deadline = time.monotonic() + MOUNT_TIMEOUT
        with self.console.status(f"mounting {name}"):
            while not os.path.ismount(path):
                if p.poll() is not None or time.monotonic() > deadline:
                    p.kill()
                    raise SystemExit(f"mount failed, see {self.work}/mount-{name}.log")
                time.sleep(0.02)
        self.mounts.append((p, path, name))
        return path

    def unmount(self, path: Path) -> None:
        """SIGTERM the mount of path (its peak RSS read first); SIGKILL and umount -l if stuck."""
        for p, mp, name in list(self.mounts):
            if mp != path:
                continue
            self._note_peak(f"mount {name}", p.pid)
            p.send_signal(signal.SIGTERM)
            with self.console.status(f"unmounting {name}"):
                try:
                    p.wait(MOUNT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.console.print(f"[red]mount {name} did not stop; killed")
                    p.kill()
                    p.wait()
                    subprocess.run(["umount", "-l", str(path)], check=False)
            self.mounts.remove((p, mp, name))

    def _note_peak(self, what: str, pid: int) -> None:
        runs = sum(1 for n, _ in self.peak_rss if n.startswith(f"{what} "))
        self.peak_rss.append((f"{what} #{runs + 1}", peak_rss_kib(pid)))

    def remount(self, path: Path) -> Path:
        """Unmount path and mount the same device with the same cache again."""
        name = next(n for _, mp, n in self.mounts if mp == path)
        self.unmount(path)
        return self.mount(name)

    def syncer(self, mountpoint: Path) -> Syncer:
        return lambda last, size: self.sync(mountpoint)

    def sync(self, mountpoint: Path) -> None:
        """`drive sync`: until everything mountpoint journaled is on metad; raises SyncFailed."""
        cmd = [sys.executable, "-m", "fusefs.cli", "sync", str(mountpoint)]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, env=self.env, cwd=REPO, timeout=SYNC_TIMEOUT
            )
        except subprocess.TimeoutExpired as e:
            raise SyncFailed(f"drive sync still running after {SYNC_TIMEOUT:.0f} s") from e
        if done.returncode != 0:
            raise SyncFailed(f"drive sync exited {done.returncode}: {done.stderr.strip()}")

    def bytes_received(self) -> int:
        client = BlockClient(self.blockd.address, lambda: self.token)
        try:
            return client.stats().bytes_received
        finally:
            client.close()

    def close(self) -> None:
        for _, path, _ in list(self.mounts):
            self.unmount(path)
        for daemon in (self.blockd, self.metad):
            self._note_peak(daemon.name, daemon.process.pid)
            daemon.stop()
        if self.s3 is not None:
            self.s3.stop()
