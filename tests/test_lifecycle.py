"""The drive as a service: `drive up/serve --background`, `drive stop`, the systemd unit of
`drive install systemd` run as systemd runs it, and `mount -t fuse.drivefs` through the
helper of `drive install mount-helper`.

Real `drive` processes, real mounts, real daemons; systemd itself does not run here,
so the unit is checked by systemd-analyze (when installed) and its ExecStart run and
stopped the way systemd would (SIGTERM to the main process alone: KillMode=mixed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusefs.cli.paths import drivefs_mountpoints
from fusefs.cli.serving import holder
from tests.conftest import assert_log_clean

TIMEOUT = 90


def drive(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusefs.cli", *args],
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("drive: error: "), lines[0]
    return lines[0].removeprefix("drive: error: ")


def gone(pid: int) -> bool:
    """Exited (a zombie not reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def logs_clean(data: Path) -> None:
    for log in (data / "drive.log", data / "metad" / "metad.log", data / "blockd" / "blockd.log"):
        if log.exists():
            assert_log_clean(log, [])


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever a failed test left running under tmp_path: unmounted, then stopped."""
    yield
    for mountpoint in drivefs_mountpoints():
        if mountpoint.startswith(str(tmp_path)):
            subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)
    for lock in tmp_path.glob("**/drive.lock"):
        pid = holder(lock.parent)
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while not gone(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


def free_port_taken() -> socket.socket:
    """A listening socket: its port is taken for as long as it is open."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


# --- drive up --background, drive stop ----------------------------------------------------


def test_drive_up_in_the_background_returns_mounted_and_drive_stop_stops_it_cleanly(
    tmp_path: Path, leftovers: None
) -> None:
    mnt, other, data = tmp_path / "mnt", tmp_path / "other", tmp_path / "data"
    mnt.mkdir()
    other.mkdir()
    started = drive("up", str(mnt), "--data", str(data), "--background")
    assert started.returncode == 0, started.stderr
    assert os.path.ismount(mnt), "it returns only once mounted"
    pid = holder(data)
    assert pid and f"(pid {pid}), mounted at {mnt}" in started.stdout, started.stdout
    assert f"log: {data / 'drive.log'}" in started.stdout
    (mnt / "kept.txt").write_bytes(b"written before drive stop")

    # A second start on the same data is refused and leaves the running drive alone.
    log_before = (data / "drive.log").read_bytes()
    again = drive("up", str(other), "--data", str(data), "--background")
    assert one_error_line(again) == (
        f"the drive in {data} is running already (pid {pid}); stop it first, or give another --data"
    )
    assert not os.path.ismount(other)
    assert (data / "drive.log").read_bytes() == log_before
    assert holder(data) == pid and os.path.ismount(mnt)

    stopped = drive("stop", "--data", str(data))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip().splitlines()[-1] == f"drive stopped (pid {pid})"
    assert gone(pid) and holder(data) is None
    assert not os.path.ismount(mnt)
    assert "drive stopped" in (data / "drive.log").read_text(), "drive up ended its own way"

    # What was written is on the drive: started again, it is there.
    assert drive("up", str(mnt), "--data", str(data), "--background").returncode == 0
    assert (mnt / "kept.txt").read_bytes() == b"written before drive stop"
    assert drive("stop", "--data", str(data)).returncode == 0
    assert not os.path.ismount(mnt)
    assert (data / "drive.log").read_text().count("=== ") == 2, "a marker per start"

    assert one_error_line(drive("stop", "--data", str(data))) == (
        f"no drive is running under {data}"
    )
    logs_clean(data)


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_background_start_that_fails_says_why_and_exits_1(
    command: str, tmp_path: Path, leftovers: None
) -> None:
    mnt, data = tmp_path / "mnt", tmp_path / "data"
    mnt.mkdir()
    where = [str(mnt)] if command == "up" else []
    with free_port_taken() as taken:
        port = taken.getsockname()[1]
        result = drive(
            command, *where, "--data", str(data), "--background",
            "--metad", f"127.0.0.1:{port}", "--blockd", "127.0.0.1:0",
        )  # fmt: skip
    assert f"cannot listen on 127.0.0.1:{port}" in one_error_line(result)
    assert result.stdout == "", "never a 'started'"
    assert holder(data) is None, "nothing left running"
    assert not os.path.ismount(mnt)
    assert f"cannot listen on 127.0.0.1:{port}" in (data / "drive.log").read_text()


def test_drive_up_in_the_background_checks_the_mountpoint_before_starting(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope"
    result = drive("up", str(missing), "--data", str(tmp_path / "data"), "--background")
    assert "does not exist" in one_error_line(result)
    assert not (tmp_path / "data").exists()


# A stand-in for a drive slow to stop: it holds the data folder as drive up does
# (fusefs.cli.serving.data_folder) and takes LINGER seconds after SIGTERM, or never stops.
SLOW_DRIVE = """
import signal, sys, time
from pathlib import Path
from fusefs.cli.serving import data_folder
linger = float(sys.argv[2])
with data_folder(Path(sys.argv[1])):
    if linger < 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(linger), sys.exit(0)))
    print("holding", flush=True)
    while True:
        time.sleep(1)
"""


def _slow_drive(data: Path, linger: float) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", SLOW_DRIVE, str(data), str(linger)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline() == "holding\n"
    return p


def test_drive_stop_says_it_waits_and_gives_up_after_its_timeout(tmp_path: Path) -> None:
    data = tmp_path / "data"
    slow = _slow_drive(data, 2.5)
    try:
        stopped = drive("stop", "--data", str(data))
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.splitlines() == [
            f"waiting for the drive (pid {slow.pid}) to save open files and stop…",
            f"drive stopped (pid {slow.pid})",
        ]
        assert slow.wait(5) == 0
    finally:
        slow.kill()
        slow.wait()

    stuck = _slow_drive(data, -1)
    try:
        result = drive("stop", "--data", str(data), "--timeout", "2")
        assert f"(pid {stuck.pid}) has not stopped after 2 s" in one_error_line(result)
        assert stuck.poll() is None and holder(data) == stuck.pid
    finally:
        stuck.kill()
        stuck.wait()
