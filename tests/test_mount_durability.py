"""What was saved stays saved: across unmounts, `drive up` restarts and daemon crashes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import assert_log_clean
from tests.filedata import sha256_of, write_random
from tests.running import drive_up

MiB = 1024 * 1024


def _write_set(root: Path) -> dict[str, str]:
    (root / "docs").mkdir()
    written = {}
    for i, size in enumerate([0, 1, 4096, 3 * MiB + 5]):
        name = f"docs/f{i}"
        written[name] = write_random(root / name, size, seed=i)
    return written


def _check_set(root: Path, written: dict[str, str]) -> None:
    for name, digest in written.items():
        assert sha256_of(root / name) == digest, name


@pytest.mark.both_backends
@pytest.mark.seaweedfs_too
def test_files_survive_remount(mounts, metad, blockd, tmp_path: Path) -> None:
    first = mounts.mount(metad, blockd, "dev-a")
    written = _write_set(first.path)
    first.unmount()
    assert not os.path.ismount(first.path)
    # A second mount with an empty cache must fetch everything from blockd.
    second = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "fresh-cache")
    _check_set(second.path, written)


@pytest.mark.both_backends
def test_files_survive_sigkill_of_both_daemons(
    mounts, daemons, metad, blockd, tmp_path: Path, allowed_log_patterns
) -> None:
    # The mount may log that it lost the change stream while the daemons are down,
    # and that it waits for them with what it journaled.
    allowed_log_patterns += [r"change stream interrupted", r"unreachable", r"paused"]
    m = mounts.mount(metad, blockd, "dev-a")
    written = _write_set(m.path)  # closed: journaled, on its way (or not yet)
    metad.kill()
    blockd.kill()
    metad2 = daemons.restart(metad)
    blockd2 = daemons.restart(blockd)
    m.sync()  # whatever the crash cut short is sent again
    fresh = mounts.mount(metad2, blockd2, "dev-b", cache=tmp_path / "fresh-cache")
    _check_set(fresh.path, written)
    # The mount that was running across the crash still works.
    (m.path / "after-crash").write_bytes(b"still here")
    m.sync()
    deadline = time.monotonic() + 5
    while not (fresh.path / "after-crash").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (fresh.path / "after-crash").read_bytes() == b"still here"


def test_drive_up_again_keeps_everything(tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    up = drive_up(mnt, data, log)
    try:
        written = _write_set(mnt)
        # A file still open when the drive is stopped is saved too.
        pending = open(mnt / "open-at-stop.txt", "wb")  # noqa: SIM115
        pending.write(b"saved on the way out")
        pending.flush()
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, log.read_text()
        with contextlib.suppress(OSError):  # the file system is gone by now
            pending.close()
    finally:
        if up.poll() is None:
            up.kill()
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
    assert not os.path.ismount(mnt)
    up = drive_up(mnt, data, log)
    try:
        _check_set(mnt, written)
        assert (mnt / "open-at-stop.txt").read_bytes() == b"saved on the way out"
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()
    assert_log_clean(log, [])
    for name in ("metad", "blockd"):
        assert_log_clean(data / name / f"{name}.log", [])


def test_drive_up_on_s3_with_a_key_file_elsewhere(s3_server, s3_bucket, tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    key_file = tmp_path / "secrets" / "drive-keys.json"
    mnt.mkdir()
    created = subprocess.run(
        [sys.executable, "-m", "blockd", "rotate-key", "--new", "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    args = [
        "--s3-bucket", s3_bucket, "--s3-endpoint", s3_server.endpoint,
        "--s3-region", "us-east-1", "--s3-prefix", "mine/", "--key-file", str(key_file),
    ]  # fmt: skip
    written: dict[str, str] = {}
    for _ in range(2):  # the second start finds everything the first left
        up = drive_up(mnt, data, log, *args)
        try:
            written = written or _write_set(mnt)
            _check_set(mnt, written)
        finally:
            up.send_signal(signal.SIGTERM)
            assert up.wait(60) == 0, log.read_text()
    assert key_file.exists() and not (data / "blockd" / "keys.json").exists()
    assert not list((data / "blockd").glob("blocks/*")), "blocks went to the local directory"
    keys = s3_server.keys(s3_bucket)
    assert sum(1 for k in keys if k.startswith("mine/") and len(k) == len("mine/") + 64) >= 4
    assert_log_clean(log, [])


def test_unmount_sends_a_change_held_back_by_the_files_commit_on_its_way(
    mounts, metad, blockd
) -> None:
    # A file's next commit waits until the one on its way is recorded; at unmount nothing
    # else comes to wake the sender then (seen once: a 3-byte save kept for the next mount).
    for i in range(2):
        m = mounts.mount(metad, blockd, f"dev-{i}")
        if i:
            assert (m.path / "edit.bin").read_bytes() == b"new"  # the first mount sent it
        os.kill(blockd.process.pid, signal.SIGSTOP)  # the first batch waits on blockd
        try:
            write_random(m.path / "edit.bin", 3 * MiB, seed=i)
            time.sleep(1.0)  # taken (GATHER_SECONDS), its upload on its way
            (m.path / "edit.bin").write_bytes(b"new")
            m.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            while "before unmounting" not in m.log_path.read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            os.kill(blockd.process.pid, signal.SIGCONT)
        m.process.wait(60)  # (unmount() would signal it again)
        m.unmount()
        assert "not sent yet" not in m.log_path.read_text()
