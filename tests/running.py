"""`drive up` as a person runs it: a child process serving a real mount."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

_ANNOUNCED = re.compile(r"metad on (\S+), blockd on (\S+?)(?: \(TLS[^)]*\))?;")


def drive_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The drive command as a person runs it (env: whose HOME, token and folders; stdin:
    what they type, else nothing), its status and output as text."""
    return subprocess.run(
        [sys.executable, "-m", "fusefs.cli", *args],
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
    )  # fmt: skip


def drive_up(
    mountpoint: Path, data: Path, log: Path, *extra: str, options: tuple[str, ...] = ()
) -> subprocess.Popen:
    """Starts `drive [options] up` (its output appended to log) and waits until it has
    mounted."""
    command = [sys.executable, "-m", "fusefs.cli", *options, "up", str(mountpoint)]
    command += ["--data", str(data)]
    with open(log, "ab") as f:
        p = subprocess.Popen([*command, *extra], stdin=subprocess.DEVNULL, stdout=f, stderr=f)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mountpoint):
        assert p.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return p


def announced_addresses(log: Path) -> list[tuple[str, str]]:
    """(metad, blockd) of every start `drive up` announced in log, oldest first."""
    return _ANNOUNCED.findall(log.read_text())
