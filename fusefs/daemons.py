"""Starting and stopping metad and blockd as child processes.

Used by `drive up` / `drive serve` and by the tests, so both run the daemons
exactly as an operator would. A daemon reports the address it bound (it may
have been asked for port 0) through a ready file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from protos.runtime import PARENT_PID_ENV


class DaemonError(Exception):
    """A daemon could not be started; the message is meant for the user."""


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to everyone else."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_daemon(
    name: str,
    data_dir: Path,
    listen: str,
    *,
    extra_args: list[str] | None = None,
    timeout: float = 20.0,
) -> Daemon:
    """Starts `python -m {name}` and waits until it listens.

    Its log goes to data_dir/{name}.log. Raises DaemonError carrying the
    daemon's own last error line if it exits before it is ready.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / f"{name}.ready"
    with contextlib.suppress(FileNotFoundError):
        ready_file.unlink()
    log_path = data_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    cmd = [
        sys.executable,
        "-m",
        name,
        "--data",
        str(data_dir),
        "--listen",
        listen,
        "--ready-file",
        str(ready_file),
        *(extra_args or []),
    ]
    start_offset = log_file.tell()
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
        # Own process group: a Ctrl-C meant for `drive up` must not stop the
        # daemons before the mount has saved open files.
        start_new_session=True,
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            address = ready_file.read_text().strip()
            return Daemon(name, process, address, log_path)
        if process.poll() is not None:
            raise DaemonError(_last_error(log_path, start_offset) or f"{name} exited at start")
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise DaemonError(f"{name} did not start within {timeout:.0f}s (see {log_path})")


def _last_error(log_path: Path, offset: int) -> str:
    """The daemon's last meaningful line, e.g. 'metad: cannot listen on ...'."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
