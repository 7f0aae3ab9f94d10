"""The write-back journal: what close() confirmed survives kill -9, outages and conflicts.

Real daemons, real mounts, real kills: each test checks through a second
device (a mount with its own cache) that the bytes arrived, in full.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusefs import chunker
from fusefs.clients import BlockClient, MetadataClient
from fusefs.credentials import TOKEN_ENV
from fusefs.mount.files import INLINE_BYTES
from fusefs.mount.lifecycle import REPLICA_FLUSH_SECONDS
from fusefs.mount.uploads import UPLOAD_BYTES, UPLOAD_STREAMS
from tests import signin
from tests.filedata import sha256_of, write_random
from tests.offline import OFFLINE_LOGS, kill, mount_behind, offline, online
from tests.people import add_person
from tests.waiting import eventually

MiB = 1024 * 1024
# What a kill -9 may cost again: the pieces on their way (each UPLOAD_BYTES plus at
# most one block) on every stream, and one just sent whose receipts were not kept yet.
IN_FLIGHT = (UPLOAD_STREAMS + 1) * (UPLOAD_BYTES + chunker.MAX_SIZE)


def _drive_sync(mountpoint: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "sync", str(mountpoint)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_close_returns_before_the_upload_and_drive_sync_waits_for_it(mounts, metad, blockd):
    a = mounts.mount(metad, blockd, "dev-a")
    digest = write_random(a.path / "big.bin", 24 * MiB, seed=3)
    synced = _drive_sync(a.path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "everything is on the drive" in synced.stdout
    b = mounts.mount(metad, blockd, "dev-b")
    assert sha256_of(b.path / "big.bin") == digest


def test_edits_around_the_size_kept_in_memory_read_back_and_arrive_whole(mounts, metad, blockd):
    # Small edits stay in memory and are sealed inside their journal row; past
    # INLINE_BYTES they go on in a staging file. Writes, holes and truncations on
    # either side of that line, and across it, must read back as a local file does.
    a = mounts.mount(metad, blockd, "dev-a")
    rng = random.Random(5)
    expected: dict[str, bytearray] = {}
    for n in range(12):
        name = f"f{n}"
        content = bytearray()
        for _ in range(6):
            with open(a.path / name, "r+b" if content else "wb") as f:
                for _ in range(rng.randint(1, 4)):
                    if rng.random() < 0.2:
                        length = rng.randint(0, INLINE_BYTES + 4096)
                        f.truncate(length)
                        content[length:] = b""
                        content.extend(bytes(length - len(content)))
                        continue
                    offset = rng.randint(0, INLINE_BYTES + 8192)
                    data = rng.randbytes(rng.randint(1, 20_000))
                    f.seek(offset)
                    f.write(data)
                    content.extend(bytes(max(0, offset - len(content))))
                    content[offset : offset + len(data)] = data
            assert (a.path / name).read_bytes() == content, name  # sealed, not sent yet
        expected[name] = content
    a.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    for name, content in expected.items():
        assert (b.path / name).read_bytes() == content, name
        assert (a.path / name).read_bytes() == content, name


def test_fsync_returns_once_the_file_is_on_the_server(mounts, metad, blockd):
    a = mounts.mount(metad, blockd, "dev-a")
    meta = MetadataClient(metad.address, "test", signin.token)
    try:
        with open(a.path / "log.txt", "wb", buffering=0) as f:
            f.write(b"entry 1\n")
            os.fsync(f.fileno())
            # Committed before fsync returned, the file still open.
            on_server = meta.lookup(meta.root().id, "log.txt")
            assert on_server.size == len(b"entry 1\n")
            assert on_server.revision >= 1
    finally:
        meta.close()


def test_edits_closed_offline_survive_kill_9_and_reach_the_other_device(
    mounts, daemons, metad, blockd, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "notes").mkdir()
    for i in range(5):
        (a.path / "notes" / f"n{i}.txt").write_bytes(b"first")
    assert _drive_sync(a.path).returncode == 0

    metad.stop()
    blockd.stop()
    written = {}
    started = time.monotonic()
    for i in range(5):
        written[f"n{i}.txt"] = f"edited offline {i}".encode() * (i * 1000 + 1)
        (a.path / "notes" / f"n{i}.txt").write_bytes(written[f"n{i}.txt"])
    assert time.monotonic() - started < 10, "closes offline must not wait on the network"
    # Still there, as edited, for programs on this device.
    for name, data in written.items():
        assert (a.path / "notes" / name).read_bytes() == data
    away = _drive_sync(a.path)
    assert away.returncode == 1 and "not sent yet" in away.stdout
    kill(a)

    metad = daemons.restart(metad)
    blockd = daemons.restart(blockd)
    again = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
    assert _drive_sync(again.path).returncode == 0
    b = mounts.mount(metad, blockd, "dev-b")
    for name, data in written.items():
        assert (b.path / "notes" / name).read_bytes() == data


def test_servers_back_under_a_running_mount_get_what_was_closed_meanwhile(
    mounts, daemons, metad, blockd, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "doc.txt").write_bytes(b"v1")
    assert _drive_sync(a.path).returncode == 0
    metad.stop()
    blockd.stop()
    (a.path / "doc.txt").write_bytes(b"v2, written while the servers were away")
    metad = daemons.restart(metad)
    blockd = daemons.restart(blockd)
    synced = _drive_sync(a.path)
    assert synced.returncode == 0, synced.stdout
    b = mounts.mount(metad, blockd, "dev-b")
    assert (b.path / "doc.txt").read_bytes() == b"v2, written while the servers were away"


def test_an_edit_of_a_file_deleted_elsewhere_comes_back_as_a_copy(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"could not be saved"]
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "plan.txt").write_bytes(b"plan v1")
    assert _drive_sync(a.path).returncode == 0
    eventually(lambda: (b.path / "plan.txt").read_bytes() == b"plan v1", timeout=10)

    offline(behind_relays)
    (a.path / "plan.txt").write_bytes(b"plan v2, edited on a")
    os.unlink(b.path / "plan.txt")
    online(behind_relays)
    assert _drive_sync(a.path).returncode == 0
    eventually(lambda: any("conflicted copy" in n for n in os.listdir(b.path)), timeout=10)
    copies = [n for n in os.listdir(b.path) if "conflicted copy" in n]
    assert len(copies) == 1
    assert (b.path / copies[0]).read_bytes() == b"plan v2, edited on a"


def test_offline_edits_on_two_devices_keep_both(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "shared.txt").write_bytes(b"base")
    assert _drive_sync(a.path).returncode == 0
    eventually(lambda: (b.path / "shared.txt").read_bytes() == b"base", timeout=10)

    offline(behind_relays)
    (a.path / "shared.txt").write_bytes(b"from a")
    (b.path / "shared.txt").write_bytes(b"from b")
    assert _drive_sync(b.path).returncode == 0
    online(behind_relays)
    assert _drive_sync(a.path).returncode == 0
    c = mounts.mount(metad, blockd, "dev-c")
    contents = sorted((c.path / n).read_bytes() for n in os.listdir(c.path))
    assert contents == [b"from a", b"from b"]
    assert len([n for n in os.listdir(c.path) if "conflicted copy" in n]) == 1


@pytest.mark.parametrize("kill_after_mib", [8, 40])
def test_an_upload_cut_by_kill_9_resumes_without_sending_it_all_again(
    mounts, metad, blockd, kill_after_mib
):
    size = 64 * MiB
    stats = BlockClient(blockd.address, signin.token)
    try:
        a = mounts.mount(metad, blockd, "dev-a")
        digest = write_random(a.path / "video.bin", size, seed=11)
        deadline = time.monotonic() + 60
        while stats.stats().bytes_received < kill_after_mib * MiB:
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        kill(a)
        again = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
        assert _drive_sync(again.path).returncode == 0
        received = stats.stats().bytes_received
    finally:
        stats.close()
    # Blocks in flight when killed may be sent once more; nothing else.
    assert received <= size + IN_FLIGHT, received
    b = mounts.mount(metad, blockd, "dev-b")
    assert sha256_of(b.path / "video.bin") == digest


def test_a_2_gib_upload_cut_twice_at_random_points_resumes_each_time(mounts, metad, blockd):
    """Tens of GB are the goal; 2 GiB cut at two points drawn at random (seeded, and
    printed on failure) shows the same: each resume sends only what was in flight."""
    size = 2 * 1024 * MiB
    rng = random.Random(20261126)
    cuts = sorted(rng.sample(range(size // 20, size * 19 // 20, MiB), 2))
    stats = BlockClient(blockd.address, signin.token)
    try:
        a = mounts.mount(metad, blockd, "dev-a")
        digest = write_random(a.path / "archive.bin", size, seed=12)
        for cut in cuts:
            deadline = time.monotonic() + 300
            while stats.stats().bytes_received < cut:
                assert time.monotonic() < deadline, f"the upload stalled before {cut} (cuts {cuts})"
                time.sleep(0.01)
            kill(a)
            a = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
        eventually(lambda: _pace_shown(metad, blockd, a.path), timeout=30)
        a.sync(timeout=600)
        received = stats.stats().bytes_received
    finally:
        stats.close()
    assert received <= size + len(cuts) * IN_FLIGHT, (received, cuts)
    b = mounts.mount(metad, blockd, "dev-b")
    assert sha256_of(b.path / "archive.bin") == digest


def _pace_shown(metad, blockd, mountpoint: Path) -> bool:
    """`drive status` shows this device's upload with its rate and time left."""
    shown = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "status", "--metad", metad.address,
         "--blockd", blockd.address],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, TOKEN_ENV: signin.token()},
    ).stdout  # fmt: skip
    line = next(x for x in shown.splitlines() if str(mountpoint) in x)
    return "to send at" in line and " left (online)" in line


def test_files_made_offline_survive_kill_9_and_arrive_in_order(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "inbox").mkdir()
    os.listdir(a.path / "inbox")
    a.sync()  # (ids for new files are reserved by now)
    offline(behind_relays)
    made = {f"note{i}.txt": f"written offline {i}".encode() for i in range(20)}
    started = time.monotonic()
    for name, data in made.items():
        (a.path / "inbox" / name).write_bytes(data)
    (a.path / "inbox" / "scratch.tmp").write_bytes(b"gone before it was sent")
    os.unlink(a.path / "inbox" / "scratch.tmp")
    assert time.monotonic() - started < 10, "files made offline must not wait on the network"
    assert sorted(os.listdir(a.path / "inbox")) == sorted(made)
    kill(a)

    online(behind_relays)
    again = mount_behind(mounts, behind_relays, "dev-a")
    assert sorted(os.listdir(again.path / "inbox")) == sorted(made)
    again.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    assert sorted(os.listdir(b.path / "inbox")) == sorted(made)
    for name, data in made.items():
        assert (b.path / "inbox" / name).read_bytes() == data
    meta = MetadataClient(metad.address, "test", signin.token)
    try:
        assert meta.list_trash() == []  # the temporary never reached the drive
    finally:
        meta.close()


def test_a_cache_with_unsent_changes_is_refused_to_another_user(
    drive, daemons, mounts, tmp_path, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"belongs to another user"]
    metad, blockd = drive
    bob = add_person(metad.address, blockd.address, "bob")
    try:
        cache = tmp_path / "shared-cache"
        alice = mounts.mount(metad, blockd, "laptop", cache=cache)
        (alice.path / "diary.txt").write_bytes(b"v1")
        alice.sync()
        metad.stop()
        (alice.path / "diary.txt").write_bytes(b"v2, alice's, not sent")
        kill(alice)
        metad = daemons.restart(metad)
        with pytest.raises(RuntimeError, match="belongs to another user"):
            mounts.mount(metad, blockd, "laptop", cache=cache, token=bob.token)
        again = mounts.mount(metad, blockd, "laptop", cache=cache)
        again.sync()
        assert (again.path / "diary.txt").read_bytes() == b"v2, alice's, not sent"
    finally:
        bob.close()


def test_a_file_still_open_when_the_mount_is_killed_never_leaves_a_name_that_fails(
    mounts, metad, blockd
):
    """A file's row waits in memory for its close (one commit with its content), but the
    replica keeps the names it saw within a second: a kill -9 meanwhile must not leave a
    name the journal and the drive never heard of (listed, yet failing to open)."""
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "work").mkdir()
    a.sync()
    draft = open(a.path / "work" / "draft.txt", "wb", buffering=0)  # noqa: SIM115
    try:
        draft.write(b"never closed")
        time.sleep(REPLICA_FLUSH_SECONDS + 1)  # the replica has flushed what it saw
        kill(a)
    finally:
        with contextlib.suppress(OSError):
            draft.close()
    again = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
    shown = sorted(os.listdir(again.path / "work"))
    for name in shown:
        (again.path / "work" / name).read_bytes()  # every name shown opens
    again.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    assert sorted(os.listdir(b.path / "work")) == shown
