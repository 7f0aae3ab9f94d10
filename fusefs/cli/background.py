"""`drive up --background`, `drive serve --background` and `drive stop`: the drive as a
service that outlives the terminal it was started from.

--background starts the very same command again, detached (fusefs.cli.detached),
its output going to DATA/drive.log, and returns only once the drive is up (for
up: the mountpoint is mounted; for serve: both daemons have said where they
listen), or with the error the drive stopped on. The detached command is told it
is the detached one by DETACHED_ENV, so it runs in the foreground of its own
session, exactly as `drive up` in a terminal does: same checks, same lock, same
clean stop on SIGTERM.

`drive stop` finds the drive through the lock it holds on DATA (fusefs.cli.serving),
sends it SIGTERM (the mount saves open files and unmounts, then the daemons
stop) and waits until the lock is free and the process gone.

Must not: parse arguments, or run the drive itself (fusefs.cli.running).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fusefs.cli import detached
from fusefs.cli.serving import holder, running_already
from fusefs.daemons import DaemonError
from fusefs.errors import DriveError
from fusefs.mountpoints import check_mountpoint
from protos import tls

DETACHED_ENV = "DRIVEFS_DETACHED"
LOG_FILE = "drive.log"
DAEMONS = ("metad", "blockd")
START_TIMEOUT_SECONDS = 120.0
# drive stop says it is waiting once the drive has taken this long.
PATIENCE_SECONDS = 1.0
POLL_SECONDS = 0.1


def detaching(args: argparse.Namespace) -> bool:
    """Whether this run is to start the command detached: --background was given, and
    this is not the detached run itself (whose mark is taken here, so its children do
    not inherit it)."""
    if not getattr(args, "background", False):
        return False
    return os.environ.pop(DETACHED_ENV, None) is None


def up(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`drive up --background`: returns once the mountpoint is mounted."""
    check_mountpoint(args.mountpoint)  # said here and now, before anything starts
    child = _start(args.data, argv)
    mountpoint = args.mountpoint
    detached.wait_until_up(child, lambda: os.path.ismount(mountpoint), "drive up")
    metad, blockd = (_address(args.data, name) for name in DAEMONS)
    print(f"drive up in the background (pid {child.process.pid}), mounted at {mountpoint}")
    print(f"metad on {metad}, blockd on {blockd}")
    print(f"log: {child.log}; stop it with: drive stop --data {args.data}")
    return 0


def serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`drive serve --background`: returns once both daemons listen."""
    child = _start(args.data, argv)
    ready = [args.data / name / f"{name}.ready" for name in DAEMONS]
    detached.wait_until_up(
        child, lambda: all(_written_since(f, child.started_ns) for f in ready), "drive serve"
    )
    metad, blockd = (_address(args.data, name) for name in DAEMONS)
    print(f"drive serve in the background (pid {child.process.pid})")
    print(f"metad on {metad}, blockd on {blockd} (TLS)")
    print(
        f"TLS certificate authority {_fingerprint(args)}: "
        "compare it when you drive login from another machine"
    )
    print(f"log: {child.log}; stop it with: drive stop --data {args.data}")
    return 0


def _start(data: Path, argv: Sequence[str]) -> detached.Detached:
    """The same command, detached; refused first if a drive runs under DATA (whose log
    is then left alone)."""
    running = holder(data)
    if running is not None:
        raise DaemonError(running_already(data, running))
    command = [sys.executable, "-m", "fusefs.cli", *argv]
    return detached.start(command, data / LOG_FILE, env={**os.environ, DETACHED_ENV: "1"})


def _written_since(path: Path, since_ns: int) -> bool:
    """A daemon of this start wrote path: files left by an earlier start are older."""
    try:
        return path.stat().st_mtime_ns >= since_ns
    except FileNotFoundError:
        return False


def _address(data: Path, name: str) -> str:
    try:
        return (data / name / f"{name}.ready").read_text().strip()
    except FileNotFoundError:
        return "?"


def _fingerprint(args: argparse.Namespace) -> str:
    """Of the certificate authority drive serve serves under (read, never made, here)."""
    try:
        if args.tls_cert is not None:
            return tls.fingerprint(tls.load_chain(args.tls_cert)[-1])
        return tls.fingerprint((args.data / "tls" / tls.CA_CERT).read_bytes())
    except (OSError, tls.TlsError):
        return "?"


def stop(data: Path, timeout: float) -> int:
    """`drive stop`: SIGTERM to the drive holding DATA, then waits until it has gone."""
    pid = holder(data)
    if pid is None:
        raise DriveError(f"no drive is running under {data}")
    if not pid:
        raise DriveError(f"the drive under {data} has not said its pid yet: try again")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise DriveError(
            f"the drive under {data} runs as pid {pid}, which is not visible from here"
        ) from None
    except PermissionError:
        raise DriveError(
            f"the drive under {data} (pid {pid}) runs as another user: stop it as that user"
        ) from None
    started = time.monotonic()
    said = False
    while holder(data) is not None or _alive(pid):
        waited = time.monotonic() - started
        if waited > timeout:
            raise DriveError(
                f"the drive under {data} (pid {pid}) has not stopped after {timeout:.0f} s; "
                f"it may still be saving (see {data / LOG_FILE}): "
                "drive stop again waits longer (--timeout)"
            )
        if not said and waited > PATIENCE_SECONDS:
            print(f"waiting for the drive (pid {pid}) to save open files and stop…", flush=True)
            said = True
        time.sleep(POLL_SECONDS)
    print(f"drive stopped (pid {pid})")
    return 0


def _alive(pid: int) -> bool:
    """Running: a process that has exited but is not reaped yet (a zombie) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
