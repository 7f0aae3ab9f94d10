"""Running the drive day to day: `drive up` keeps its address across restarts, another
device needs only metad's address, and a second `drive up` on the same data folder is
refused without harming the first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusefs.clients import AccountsClient
from fusefs.clients.accounts import DriveInfo, _reachable
from fusefs.credentials import TOKEN_ENV, local_token
from tests.running import announced_addresses, drive_cli, drive_up


def _stop(up: subprocess.Popen, log: Path) -> None:
    up.send_signal(signal.SIGTERM)
    assert up.wait(60) == 0, log.read_text()


def _drive_info(metad: str) -> DriveInfo:
    client = AccountsClient(metad)  # no token: GetDrive is open, as SignIn is
    try:
        return client.drive_info()
    finally:
        client.close()


def test_drive_up_keeps_its_address_and_id_across_restarts(tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    seen = []
    for start in range(3):
        up = drive_up(mnt, data, log)
        try:
            (mnt / f"start-{start}.txt").write_bytes(b"x")
            metad, blockd = announced_addresses(log)[-1]
            seen.append(_drive_info(metad))
            assert seen[-1].blockd_address == blockd  # metad tells where blockd is
        finally:
            _stop(up, log)
    starts = announced_addresses(log)
    assert len(starts) == 3
    assert starts[0] == starts[1] == starts[2], starts
    kept = json.loads((data / "addresses.json").read_text())
    assert (kept["metad"], kept["blockd"]) == starts[0]
    assert len({info.drive_id for info in seen}) == 1 and len(seen[0].drive_id) == 32


def test_another_device_mounts_knowing_only_metads_address(tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    other = tmp_path / "other"
    mnt.mkdir()
    other.mkdir()
    up = drive_up(mnt, data, log)
    mounted = None
    try:
        (mnt / "hello.txt").write_bytes(b"from the first device")
        subprocess.run([sys.executable, "-m", "fusefs.cli", "sync", str(mnt)], check=True)
        metad, _ = announced_addresses(log)[-1]
        token = local_token(data)
        assert token is not None
        with open(tmp_path / "other.log", "wb") as out:
            mounted = subprocess.Popen(
                [sys.executable, "-m", "fusefs.cli", "mount", str(other), "--metad", metad,
                 "--cache", str(tmp_path / "other-cache"), "--device", "other"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                env={**os.environ, TOKEN_ENV: token[0]},
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not os.path.ismount(other):
            assert mounted.poll() is None, (tmp_path / "other.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (other / "hello.txt").read_bytes() == b"from the first device"
    finally:
        if mounted is not None:
            mounted.send_signal(signal.SIGTERM)
            assert mounted.wait(60) == 0, (tmp_path / "other.log").read_text()
        _stop(up, log)


@pytest.mark.parametrize(
    ("advertised", "metad", "reached"),
    [
        ("10.0.0.5:7402", "drive.example:7401", "10.0.0.5:7402"),
        (":7402", "drive.example:7401", "drive.example:7402"),
        ("0.0.0.0:7402", "192.168.1.9:7401", "192.168.1.9:7402"),
        ("[::]:7402", "[fd00::1]:7401", "[fd00::1]:7402"),
        ("", "drive.example:7401", ""),
    ],
)
def test_blockd_is_reached_at_metads_host_when_it_listens_everywhere(
    advertised: str, metad: str, reached: str
) -> None:
    assert _reachable(advertised, metad) == reached


def test_a_second_drive_up_on_the_same_data_is_refused_and_the_first_carries_on(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "data", tmp_path / "up.log"
    first, second = tmp_path / "mnt", tmp_path / "mnt2"
    first.mkdir()
    second.mkdir()
    up = drive_up(first, data, log)
    try:
        (first / "before.txt").write_bytes(b"before")
        again = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "up", str(second), "--data", str(data)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"drive: error: the drive in {data} is running already (pid {up.pid}); "
            "stop it first, or give another --data"
        ]
        assert not second.is_mount()
        # The running drive is untouched: its ready files are there, so commands
        # acting under --data find it, and its mount works on.
        for name in ("metad", "blockd"):
            assert (data / name / f"{name}.ready").exists()
        listed = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "ls", "--json", "--data", str(data)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["before.txt"]
        (first / "after.txt").write_bytes(b"after")
        assert (first / "after.txt").read_bytes() == b"after"
    finally:
        _stop(up, log)


def _pids_of(daemon: str, data: Path) -> list[int]:
    pattern = f"-m {daemon} --data {data / daemon} "
    found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def _started_again(daemon: str, data: Path, killed: int) -> None:
    """Until another process of daemon runs and has said where it listens."""
    ready = data / daemon / f"{daemon}.ready"
    deadline = time.monotonic() + 60
    while not ([p for p in _pids_of(daemon, data) if p != killed] and ready.exists()):
        assert time.monotonic() < deadline, f"{daemon} was not started again"
        time.sleep(0.1)


def _sync(mnt: Path) -> None:
    """drive sync; a mount that saw the daemon go away may still call itself offline for
    a moment after it came back (it probes every second): then once more."""
    for attempt in range(3):
        synced = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "sync", str(mnt)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if synced.returncode == 0:
            return
        assert "cannot be reached" in synced.stdout and attempt < 2, synced


def test_a_daemon_killed_under_drive_up_is_started_again_and_the_mount_carries_on(
    tmp_path: Path,
) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    up = drive_up(mnt, data, log)
    try:
        data_1 = os.urandom(8 << 20)
        (mnt / "one.bin").write_bytes(data_1)
        for daemon in ("blockd", "metad"):
            (before,) = _pids_of(daemon, data)
            os.kill(before, signal.SIGKILL)
            # What is written meanwhile waits in the journal, and lands once it is back.
            written = os.urandom(4 << 20)
            (mnt / f"while-{daemon}-was-down.bin").write_bytes(written)
            _started_again(daemon, data, before)
            _sync(mnt)
            assert (mnt / f"while-{daemon}-was-down.bin").read_bytes() == written
        text = log.read_text()
        for daemon in ("blockd", "metad"):
            assert f"{daemon} stopped (killed by SIGKILL); starting it again" in text, text
            assert f"{daemon} running again on" in text, text
        assert (mnt / "one.bin").read_bytes() == data_1
    finally:
        _stop(up, log)


def test_drive_umount_sends_what_it_can_then_unmounts(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    (m.path / "kept.txt").write_bytes(b"kept")
    sleeper = subprocess.Popen(["sleep", "60"], cwd=m.path)  # a program inside the mount
    try:
        busy = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "umount", str(m.path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert busy.returncode == 1
        assert "not unmounted" in busy.stdout and "open in it" in busy.stdout, busy.stdout
        assert os.path.ismount(m.path)
    finally:
        sleeper.kill()
        sleeper.wait()
    done = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "umount", str(m.path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "everything is on the drive" in done.stdout and "unmounted" in done.stdout
    assert not os.path.ismount(m.path)
    assert m.process.wait(60) == 0
    again = mounts.mount(metad, blockd, "dev-b")
    assert (again.path / "kept.txt").read_bytes() == b"kept"


def test_a_mount_logs_to_the_file_it_is_given(mounts, metad, blockd, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "mount.log"
    log_file.parent.mkdir()
    m = mounts.mount(metad, blockd, "dev-a", extra_args=["--log-file", str(log_file)])
    (m.path / "a.txt").write_bytes(b"a")
    m.unmount()
    logged = log_file.read_text()
    assert f"mounted {m.path}" in logged and f"unmounted {m.path}" in logged, logged
    assert " INFO " not in m.log_path.read_text()  # not on stderr as well


def test_log_level_reaches_the_mount_and_the_daemons_drive_up_starts(tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    mount_log = tmp_path / "mount.log"
    for level, shown in (("ERROR", False), ("INFO", True)):
        up = drive_up(mnt, data, log, "--log-file", str(mount_log), options=("--log-level", level))
        try:
            (mnt / f"{level}.txt").write_bytes(b"x")
        finally:
            _stop(up, log)
        assert (f"mounted {mnt}" in mount_log.read_text()) is shown, level
        for daemon in ("metad", "blockd"):
            listening = (data / daemon / f"{daemon}.log").read_text().count(" listening on ")
            assert listening == (1 if shown else 0), (daemon, level)


def test_commands_under_data_act_as_the_first_user_whatever_login_is_saved(
    tmp_path: Path,
) -> None:
    """A saved login is used where its address is given; under --data the drive's own key."""
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop(TOKEN_ENV, None)

    def drive(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return drive_cli(*args, stdin=stdin, env=env)

    up = drive_up(mnt, data, log)
    try:
        metad, _ = announced_addresses(log)[-1]
        added = drive("user", "add", "bob", "--password-stdin", "--data", str(data),
                      stdin="bob's long password\n")  # fmt: skip
        assert added.returncode == 0, added.stderr
        login = drive("login", "bob", "--password-stdin", "--metad", metad,
                      stdin="bob's long password\n")  # fmt: skip
        assert login.returncode == 0, login.stderr
        assert drive("whoami", "--metad", metad).stdout.startswith("bob (user ")
        here = drive("whoami", "--data", str(data))
        assert here.returncode == 0, here.stderr
        assert "administrator" in here.stdout and not here.stdout.startswith("bob")
        quota = drive("user", "quota", "bob", "5G", "--data", str(data))
        assert quota.returncode == 0, quota.stderr
    finally:
        _stop(up, log)
