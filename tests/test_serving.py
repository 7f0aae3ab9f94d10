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
from tests.running import announced_addresses, drive_up


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
