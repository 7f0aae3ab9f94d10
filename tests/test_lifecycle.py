"""The drive as a service: `drive up/serve --background`, `drive stop`, the systemd unit of
`drive install systemd` run as systemd runs it, and `mount -t fuse.drivefs` through the
helper of `drive install mount-helper`.

Real `drive` processes, real mounts, real daemons; systemd itself does not run here,
so the unit is checked by systemd-analyze (when installed) and its ExecStart run and
stopped the way systemd would (SIGTERM to the main process alone: KillMode=mixed).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusefs.cli import install
from fusefs.cli.paths import drivefs_mountpoints
from fusefs.cli.serving import holder
from tests.conftest import assert_log_clean
from tests.running import drive_cli

TIMEOUT = 90
PASSWORD = "correct horse battery"


def drive(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return drive_cli(*args, env=env, stdin=stdin, timeout=TIMEOUT)


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


# --- systemd --------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, str]]:
    """A unit file's sections and keys (each key once in ours)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            assert key not in current, f"{key} twice"
            current[key] = value
    return sections


def _wait_mounted(mnt: Path, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not os.path.ismount(mnt):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_the_systemd_unit_starts_the_drive_and_stops_it_as_systemd_would(
    tmp_path: Path, leftovers: None
) -> None:
    mnt, data, unit_file = tmp_path / "mnt", tmp_path / "data", tmp_path / "drivefs.service"
    mnt.mkdir()
    written = drive("install", "systemd", str(mnt), "--data", str(data), "--output", str(unit_file))
    assert written.returncode == 0, written.stderr
    assert "systemctl daemon-reload && systemctl enable --now" in written.stdout
    printed = drive("install", "systemd", str(mnt), "--data", str(data), "--output", "-")
    assert printed.stdout == unit_file.read_text()
    if shutil.which("systemd-analyze"):
        verified = subprocess.run(
            ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True
        )
        assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr

    unit = parse_unit(unit_file.read_text())
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) >= 60
    assert unit["Unit"]["After"] == "network-online.target"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).is_absolute()
    assert command[1:] == ["-m", "fusefs.cli", "up", str(mnt), "--data", str(data)]
    env = dict(os.environ)
    env.update(dict([service["Environment"].split("=", 1)]))

    log = tmp_path / "journal.log"
    for start in range(2):
        with open(log, "ab") as out:
            main = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        try:
            _wait_mounted(mnt, main, log)
            if start == 0:
                (mnt / "survives.txt").write_bytes(b"through a systemd stop")
            else:
                assert (mnt / "survives.txt").read_bytes() == b"through a systemd stop"
        finally:
            main.send_signal(signal.SIGTERM)  # systemctl stop, KillMode=mixed
            assert main.wait(int(service["TimeoutStopSec"])) == 0, log.read_text()
        assert not os.path.ismount(mnt)
        assert holder(data) is None, "daemons stopped, data folder free"
    logs_clean(data)


def test_a_user_unit_goes_to_the_users_systemd(tmp_path: Path) -> None:
    mnt = tmp_path / "My Drive"
    mnt.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    result = drive("install", "systemd", str(mnt), "--user", env=env)
    assert result.returncode == 0, result.stderr
    name = install.unit_name(mnt)
    path = tmp_path / "home/.config/systemd/user" / name
    unit = parse_unit(path.read_text())
    assert unit["Install"]["WantedBy"] == "default.target"
    assert f"systemctl --user enable --now {shlex.quote(name)}" in result.stdout
    assert shlex.split(unit["Service"]["ExecStart"])[3:5] == ["up", str(mnt)]
    if shutil.which("systemd-escape"):
        escaped = subprocess.run(
            ["systemd-escape", "--path", str(mnt)], capture_output=True, text=True, check=True
        )
        assert name == f"drivefs-{escaped.stdout.strip()}.service"


def test_unit_names_escape_the_mountpoint_as_systemd_does() -> None:
    assert install.unit_name(Path("/home/me/My-Drive")) == r"drivefs-home-me-My\x2dDrive.service"
    assert install.unit_name(Path("/mnt/a b/.x")) == r"drivefs-mnt-a\x20b-.x.service"
    assert install.unit_name(Path("/.drive")) == r"drivefs-\x2edrive.service"


# --- mount -t fuse.drivefs --------------------------------------------------------------------


@pytest.fixture
def mount_helper() -> Iterator[Path]:
    """`drive install mount-helper` done; the file put back as it was afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mount(8) helpers need root")
    before = install.MOUNT_HELPER.read_bytes() if install.MOUNT_HELPER.exists() else None
    try:
        done = drive("install", "mount-helper")
        assert done.returncode == 0, done.stderr
        assert os.access(install.MOUNT_HELPER, os.X_OK)
        yield install.MOUNT_HELPER
    finally:
        if before is None:
            install.MOUNT_HELPER.unlink(missing_ok=True)
        else:
            install.MOUNT_HELPER.write_bytes(before)


@pytest.fixture
def served(tmp_path: Path, leftovers: None) -> Iterator[tuple[Path, str, str]]:
    """`drive serve --background` under tmp_path/data: (data, metad address, CA fingerprint)."""
    data = tmp_path / "data"
    started = drive(
        "serve", "--data", str(data), "--background",
        "--metad", "127.0.0.1:0", "--blockd", "127.0.0.1:0",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    metad = re.search(r"metad on (\S+),", started.stdout)
    fingerprint = re.search(r"authority (SHA256:\S+):", started.stdout)
    assert metad and fingerprint, started.stdout
    assert (data / "metad" / "metad.ready").read_text().strip() == metad[1]
    yield data, metad[1], fingerprint[1]
    stopped = drive("stop", "--data", str(data))
    assert stopped.returncode == 0, stopped.stderr
    logs_clean(data)


def mount(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-t", "fuse.drivefs", *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip


def _unmount(mnt: Path) -> None:
    done = drive("umount", str(mnt))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not os.path.ismount(mnt)


def test_mount_t_fuse_drivefs_mounts_the_drive_served_here(
    tmp_path: Path, mount_helper: Path, served: tuple[Path, str, str]
) -> None:
    data = served[0]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # As an fstab line gives them: mount(8) takes noauto and x-systemd.* itself.
    mounted = mount(
        "drivefs", str(mnt), "-o", f"data={data},noauto,nofail,_netdev,x-systemd.automount"
    )
    assert mounted.returncode == 0, mounted.stderr
    assert os.path.ismount(mnt), "mount(8) returns once it is mounted"
    (mnt / "from-fstab.txt").write_bytes(b"through mount -t")
    assert (mnt / "from-fstab.txt").read_bytes() == b"through mount -t"
    _unmount(mnt)

    # Mounted again: the file was saved to the drive.
    assert mount("drivefs", str(mnt), "-o", f"data={data}").returncode == 0
    assert (mnt / "from-fstab.txt").read_bytes() == b"through mount -t"
    _unmount(mnt)
    assert "drive mounted at" in (data / "cache" / "mount.log").read_text()

    # The usual mistakes: one line each, the status mount(8) knows.
    nowhere = mount("drivefs", str(mnt), "-o", f"data={tmp_path / 'nowhere'}")
    assert nowhere.returncode == 32
    assert nowhere.stderr.strip() == (
        f"drive: error: no drive is running under {tmp_path / 'nowhere'}: "
        f"start it first (drive serve --data {tmp_path / 'nowhere'})"
    )
    unknown = mount("drivefs", str(mnt), "-o", f"data={data},colour=blue")
    assert unknown.returncode == 1
    assert "unknown option 'colour=blue'" in unknown.stderr
    assert not os.path.ismount(mnt)


def test_mount_t_fuse_drivefs_mounts_a_drive_signed_in_to(
    tmp_path: Path, mount_helper: Path, served: tuple[Path, str, str]
) -> None:
    data, metad, fingerprint = served
    added = drive(
        "user", "add", "carol", "--data", str(data), "--password-stdin",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    # Another device: its own sign-in (mount(8) passes XDG_CONFIG_HOME on, not HOME).
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    signed_in = drive(
        "login", "carol", "--metad", metad, "--fingerprint", fingerprint, "--password-stdin",
        env=env, stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    assert signed_in.returncode == 0, signed_in.stderr
    mnt = tmp_path / "laptop"
    mnt.mkdir()
    options = f"cache={tmp_path / 'laptop-cache'},device=laptop,_netdev"
    mounted = mount(metad, str(mnt), "-o", options, env=env)
    assert mounted.returncode == 0, mounted.stderr
    (mnt / "carols.txt").write_bytes(b"carol's")
    _unmount(mnt)
    listed = drive("ls", "--metad", metad, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "carols.txt" in listed.stdout

    # No sign-in saved for that drive: the mount's own line, and nothing mounted.
    elsewhere = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "nobody")}
    refused = mount(metad, str(mnt), "-o", options, env=elsewhere)
    assert refused.returncode == 32
    assert refused.stderr.startswith("drive: error: "), refused.stderr
    assert not os.path.ismount(mnt)
