"""Starting a program detached from the terminal, and waiting until it is really up.

Owns: the detached child (a session of its own, stdin from /dev/null, stdout
and stderr appended to a log file), that log file (a marker line per start,
the old one set aside when it grew big), the wait until the caller's
readiness check holds, and turning an early exit into the child's own error
line, so a command that starts something in the background never says
"started" for a program that has already failed.

Must not: know what the program is or what "up" means for it (the callers:
fusefs.cli.background, fusefs.cli.mount_helper).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fusefs.errors import DriveError

# A log grown past this is renamed LOG.1 (replacing the one before) when the next start begins.
LOG_ROTATE_BYTES = 16 * 1024**2
ERROR_PREFIX = "drive: error: "
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Detached:
    """A program started by start(): its process and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    offset: int  # where this start's output begins in log
    started_ns: int  # wall clock just before it started (files it writes are newer)

    def output(self) -> str:
        """What it has written to its log since it started."""
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


def start(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Detached:
    """Starts command in a session of its own, its output appended to log after a marker."""
    log.parent.mkdir(parents=True, exist_ok=True)
    _rotate(log)
    with open(log, "ab") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"=== {stamp} started in the background: {shlex.join(command)}\n".encode())
        out.flush()
        offset = out.tell()
        started_ns = time.time_ns()
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            # No terminal, no process group of the caller: a Ctrl-C or a hang-up
            # there, or mount(8) exiting, must not reach it.
            start_new_session=True,
        )
    return Detached(process, log, offset, started_ns)


def wait_until_up(
    child: Detached, ready: Callable[[], bool], what: str, timeout: float = 120.0
) -> None:
    """Returns once ready() holds while child runs. DriveError with the child's own error
    line if it exits first, or if it is not up within timeout (it is left running)."""
    deadline = time.monotonic() + timeout
    while True:
        if child.process.poll() is not None:
            raise DriveError(_why_it_ended(child, what))
        if ready():
            return
        if time.monotonic() > deadline:
            raise DriveError(
                f"{what} (pid {child.process.pid}) is not up after {timeout:.0f} s; "
                f"it may still be starting: see {child.log}"
            )
        time.sleep(POLL_SECONDS)


def _why_it_ended(child: Detached, what: str) -> str:
    """The child's last `drive: error:` line; else its last line and where to read more."""
    lines = [line.strip() for line in child.output().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if errors:
        return errors[-1].removeprefix(ERROR_PREFIX)
    said = f": {lines[-1]}" if lines else ""
    status = child.process.returncode
    return f"{what} stopped before it was up (exit status {status}){said} (see {child.log})"


def _rotate(log: Path) -> None:
    try:
        size = log.stat().st_size
    except FileNotFoundError:
        return
    if size > LOG_ROTATE_BYTES:
        os.replace(log, log.with_name(log.name + ".1"))
