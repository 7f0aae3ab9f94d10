"""`drive sync`, `drive umount` and the pending part of `drive status`: this machine's
mounts' unsent work.

A mount tells what it has not sent yet through an attribute of its root
folder (PENDING_XATTR, JSON), so the command needs no address and no token:
whoever may read the mount may ask it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from fusefs.cli.admin import console, human
from fusefs.cli.paths import drivefs_mountpoints
from fusefs.shared import PENDING_XATTR

POLL_SECONDS = 0.2
# drive sync gives up when nothing was sent for this long (e.g. a full quota).
STALL_SECONDS = 60.0
# A mount that is offline is given this long to find the drive again (it probes every
# second) before `drive sync` says what is left: run just after the network or the
# servers came back, it waits for them rather than failing.
OFFLINE_PATIENCE_SECONDS = 3.0


@dataclass(frozen=True)
class Pending:
    files: int
    bytes: int
    sent_bytes: int
    online: bool
    rate: float  # bytes/s lately
    problems: list[str]
    recovered: list[str]


class NotAMount(Exception):
    """The path is not a drivefs mount (or the mount does not answer)."""


def pending(mountpoint: Path) -> Pending:
    try:
        raw = os.getxattr(mountpoint, PENDING_XATTR)
    except OSError as exc:
        raise NotAMount(f"{mountpoint} is not a running drivefs mount ({exc.strerror})") from None
    data = json.loads(raw)
    return Pending(
        data["files"], data["bytes"], data["sent_bytes"], data["online"],
        data.get("rate", 0), data["problems"], data["recovered"],
    )  # fmt: skip


def mountpoints(given: Sequence[Path]) -> list[Path]:
    """The mounts to ask: given, or every drivefs mount on this machine."""
    return list(given) or [Path(m) for m in drivefs_mountpoints()]


def sync(given: Sequence[Path]) -> int:
    """Waits, with a progress bar, until each mount has sent everything; 1 if one could not."""
    targets = mountpoints(given)
    if not targets:
        print("no drivefs mount on this machine")
        return 1
    failed = False
    for mountpoint in targets:
        failed |= not _sync_one(mountpoint)
    return 1 if failed else 0


def unmount(mountpoint: Path) -> int:
    """`drive umount`: sends what it can first (as drive sync), says what is left (kept
    on this device, sent by the next mount), then unmounts; 1 if it could not."""
    try:
        pending(mountpoint)
    except NotAMount as exc:
        print(exc)
        return 1
    _sync_one(mountpoint)
    done = subprocess.run(
        ["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        why = done.stderr.strip().rpartition(": ")[2] or f"fusermount3 exited {done.returncode}"
        hint = " (a program has a file or folder open in it)" if "busy" in why.lower() else ""
        print(f"{mountpoint}: not unmounted: {why}{hint}")
        return 1
    print(f"{mountpoint}: unmounted")
    return 0


def _sync_one(mountpoint: Path) -> bool:
    try:
        state = pending(mountpoint)
    except NotAMount as exc:
        print(exc)
        return False
    total = state.bytes
    start_sent = state.sent_bytes
    progress = Progress(
        TextColumn(f"{mountpoint}: {{task.fields[files]}} change(s) to send"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    last_change, last = time.monotonic(), (state.files, state.sent_bytes)
    online_at = time.monotonic()
    with progress:
        task = progress.add_task("sync", total=max(total, 1), files=state.files)
        while state.files and time.monotonic() - online_at < OFFLINE_PATIENCE_SECONDS:
            if state.online:
                online_at = time.monotonic()
            time.sleep(POLL_SECONDS)
            state = pending(mountpoint)
            done = min(state.sent_bytes - start_sent, total)
            progress.update(task, completed=done, files=state.files)
            if (state.files, state.sent_bytes) != last:
                last_change, last = time.monotonic(), (state.files, state.sent_bytes)
            elif time.monotonic() - last_change > STALL_SECONDS:
                break
    for where in state.recovered:
        print(f"{mountpoint}: kept in your drive as {where}")
    if not state.files:
        print(f"{mountpoint}: everything is on the drive")
        return True
    why = "the drive cannot be reached" if not state.online else "; ".join(state.problems)
    print(
        f"{mountpoint}: {state.files} change(s), {human(state.bytes)} not sent yet"
        f" ({why or 'no progress'}); kept safely on this device"
    )
    return False


def _states() -> Iterator[tuple[Path, Pending]]:
    """Each drivefs mount of this machine that answers, with its pending work."""
    for mountpoint in mountpoints(()):
        try:
            yield mountpoint, pending(mountpoint)
        except NotAMount:
            continue


def report() -> list[dict]:
    """This device's pending work per mount, for `drive status --json`."""
    return [
        {
            "mountpoint": str(mountpoint),
            "changes": state.files,
            "bytes": state.bytes,
            "online": state.online,
            "waiting": state.problems,
            "recovered": state.recovered,
        }
        for mountpoint, state in _states()
    ]


def report_lines() -> list[str]:
    """This device's pending work per mount, for `drive status`."""
    lines = []
    for mountpoint, state in _states():
        where = "online" if state.online else "offline"
        pace = ""
        if state.files and state.online and state.rate > 0:
            pace = (
                f" at {human(int(state.rate))}/s, about {_duration(state.bytes / state.rate)} left"
            )
        lines.append(
            f"{mountpoint}: {state.files} change(s), {human(state.bytes)} to send{pace} ({where})"
        )
        lines += [f"  waiting: {p}" for p in state.problems]
        lines += [f"  kept in your drive as {r}" for r in state.recovered]
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(int(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
