"""Sharing through real mounts: alice shares a folder, bob uses it from his own mount.

Both mounts carry the same device name on purpose: a mount must tell its
own changes from another user's by who made them, not by the device name.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusefs.clients import AccountsClient, MetadataClient
from fusefs.credentials import TOKEN_ENV
from fusefs.models import Role
from fusefs.mount.synchronizer import RECOVERED_FOLDER
from fusefs.shared import SHARED_FOLDER
from tests import signin, waiting
from tests.waiting import refused

BOB_PASSWORD = "bob's long password"
# Revoking or granting access must reach a running mount well before the
# kernel's own cache lifetimes (2 s) would hide the difference.
PROPAGATION_S = 1.5
eventually = functools.partial(waiting.eventually, timeout=PROPAGATION_S)


def _drive_sync(mountpoint: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "sync", str(mountpoint)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def reads(path: Path, expected: bytes) -> bool:
    try:
        return path.read_bytes() == expected
    except OSError:
        return False


@pytest.fixture
def bob_token(drive) -> str:
    metad, _ = drive
    admin = AccountsClient(metad.address, signin.token)
    try:
        admin.create_user("bob", BOB_PASSWORD)
    finally:
        admin.close()
    anonymous = AccountsClient(metad.address)
    try:
        return anonymous.sign_in("bob", BOB_PASSWORD).token
    finally:
        anonymous.close()


@pytest.fixture
def alice_meta(drive) -> Iterator[MetadataClient]:
    metad, _ = drive
    meta = signin.metadata_client(metad.address)
    yield meta
    meta.close()


@pytest.fixture
def pair(drive, bob_token: str, mounts, tmp_path: Path) -> tuple[Path, Path]:
    """alice's and bob's mounts, both on a device called "laptop"."""
    metad, blockd = drive
    alice = mounts.mount(metad, blockd, "laptop", cache=tmp_path / "cache-alice")
    bob = mounts.mount(metad, blockd, "laptop", token=bob_token, cache=tmp_path / "cache-bob")
    return alice.path, bob.path


def watch_as_alice(metad: str, after: int) -> subprocess.Popen[str]:
    """`drive watch` signed in as alice (the first user), from after that journal sequence."""
    return subprocess.Popen(
        [sys.executable, "-m", "fusefs.cli", "watch", "--metad", metad, "--from", str(after)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, TOKEN_ENV: signin.token()},
    )


def watched_lines(watch: subprocess.Popen[str], until: str, timeout: float = 10) -> list[str]:
    """What watch printed up to the first line containing until; then it is stopped."""
    assert watch.stdout is not None
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(line.rstrip())
            if until in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found.wait(timeout)
    watch.kill()
    watch.wait()
    reader.join(5)
    return lines


def node_id(meta: MetadataClient, *path: str) -> int:
    node = meta.root()
    for name in path:
        node = meta.lookup(node.id, name)
    return node.id


def test_read_share_write_share_and_unshare_in_running_mounts(pair, alice_meta) -> None:
    a, b = pair
    data = os.urandom(2 * 1024 * 1024 + 17)  # more than one block
    (a / "docs").mkdir()
    (a / "docs" / "plan.txt").write_bytes(data)
    (a / "docs" / "notes.txt").write_text("alice's notes")
    _drive_sync(a)  # on the drive before it is shared
    # bob looks first, so his kernel holds states that must be invalidated.
    assert os.listdir(b) == []
    docs = node_id(alice_meta, "docs")

    alice_meta.share(docs, "bob", Role.READ)
    shared = b / SHARED_FOLDER / "docs"
    eventually(lambda: os.listdir(b) == [SHARED_FOLDER])
    assert os.listdir(b / SHARED_FOLDER) == ["docs"]
    assert sorted(os.listdir(shared)) == ["notes.txt", "plan.txt"]
    assert (shared / "plan.txt").read_bytes() == data
    assert stat.S_IMODE((shared / "plan.txt").stat().st_mode) & 0o222 == 0
    assert stat.S_IMODE(shared.stat().st_mode) & 0o222 == 0

    # Read-only: every change is refused, and alice's drive is untouched.
    plan = shared / "plan.txt"
    assert refused(lambda: open(plan, "r+b").close()) == errno.EACCES
    assert refused(lambda: open(plan, "wb").close()) == errno.EACCES
    assert refused(lambda: os.truncate(plan, 0)) == errno.EACCES
    assert refused(lambda: os.chmod(plan, 0o600)) == errno.EACCES
    assert refused(lambda: (shared / "new.txt").write_bytes(b"x")) == errno.EACCES
    assert refused(lambda: (shared / "sub").mkdir()) == errno.EACCES
    assert refused(lambda: os.symlink("plan.txt", shared / "link")) == errno.EACCES
    assert refused(lambda: os.unlink(shared / "notes.txt")) == errno.EACCES
    assert refused(lambda: os.rename(plan, shared / "renamed.txt")) == errno.EACCES
    # "Shared with me" itself only lists shares.
    assert refused(lambda: (b / SHARED_FOLDER / "mine").mkdir()) == errno.EACCES
    assert refused(lambda: (b / SHARED_FOLDER / "mine.txt").write_text("x")) == errno.EACCES
    assert refused(lambda: os.rmdir(shared)) == errno.EACCES
    assert refused(lambda: os.rename(shared, b / SHARED_FOLDER / "d2")) == errno.EACCES
    assert refused(lambda: (b / SHARED_FOLDER).mkdir()) == errno.EEXIST
    assert (a / "docs" / "plan.txt").read_bytes() == data
    assert sorted(os.listdir(a / "docs")) == ["notes.txt", "plan.txt"]
    assert os.listdir(a) == ["docs"]  # nothing shared with alice: no such folder
    # alice's own edits still reach bob (same device name, another user).
    (a / "docs" / "notes.txt").write_text("alice's notes, v2")
    eventually(lambda: reads(shared / "notes.txt", b"alice's notes, v2"))

    # WRITE: bob edits at once, alice's mount and `drive watch` show it.
    watch = watch_as_alice(alice_meta.address, alice_meta.journal_head())
    alice_meta.share(docs, "bob", Role.WRITE)
    eventually(lambda: stat.S_IMODE(plan.stat().st_mode) & 0o200 != 0)
    with open(plan, "r+b") as f:
        f.write(b"BOB!")
    edited = b"BOB!" + data[4:]
    eventually(lambda: reads(a / "docs" / "plan.txt", edited))
    assert "bob edited docs/plan.txt" in watched_lines(watch, until="edited docs/plan.txt")
    # bob reads alice's past revisions too (2: alice's, the file's first content; 3: his).
    history = b / ".drive-history" / SHARED_FOLDER / "docs" / "plan.txt"
    by_number = {int(re.search(r"\(r(\d+) ", n).group(1)): n for n in os.listdir(history)}
    assert sorted(by_number) == [2, 3]
    assert (history / by_number[2]).read_bytes() == data
    assert (history / by_number[3]).read_bytes() == edited
    (shared / "from-bob.txt").write_text("hello alice")
    eventually(lambda: reads(a / "docs" / "from-bob.txt", b"hello alice"))

    # Unshare: bob's next read fails, even through paths and descriptors he holds.
    assert plan.read_bytes() == edited
    held = os.open(plan, os.O_RDONLY)
    try:
        assert os.pread(held, 4, 0) == b"BOB!"
        alice_meta.unshare(docs, "bob")
        eventually(lambda: refused(plan.read_bytes) in (errno.ENOENT, errno.EACCES))
        assert refused(lambda: os.pread(held, 4, 0)) in (errno.ENOENT, errno.EACCES)
    finally:
        os.close(held)
    assert refused(lambda: (shared / "notes.txt").stat()) in (errno.ENOENT, errno.EACCES)
    eventually(lambda: os.listdir(b) == [])
    assert refused(lambda: os.listdir(b / SHARED_FOLDER)) == errno.ENOENT
    assert (a / "docs" / "plan.txt").read_bytes() == edited


def test_edits_refused_by_a_downgraded_share_land_in_ones_own_drive(
    pair, alice_meta, allowed_log_patterns
) -> None:
    allowed_log_patterns.append(r"could not be saved")
    a, b = pair
    (a / "docs").mkdir()
    (a / "docs" / "plan.txt").write_bytes(b"alice's plan")
    _drive_sync(a)  # on the drive before it is shared
    docs = node_id(alice_meta, "docs")
    alice_meta.share(docs, "bob", Role.WRITE)
    plan = b / SHARED_FOLDER / "docs" / "plan.txt"
    eventually(lambda: reads(plan, b"alice's plan"))

    with open(plan, "r+b") as f:
        f.write(b"bob's edit")
        alice_meta.share(docs, "bob", Role.READ)  # downgraded while bob edits
    # close() kept bob's bytes on his device; the drive refuses them for alice's
    # file, so they land in bob's own drive, and `drive sync` says where.
    synced = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "sync", str(b)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "kept in your drive as plan (conflicted copy" in synced.stdout
    recovered = b / RECOVERED_FOLDER
    eventually(lambda: len(os.listdir(recovered)) == 1, timeout=10)
    (copy,) = os.listdir(recovered)
    assert copy.startswith("plan (conflicted copy")
    assert (recovered / copy).read_bytes() == b"bob's editan"
    assert (a / "docs" / "plan.txt").read_bytes() == b"alice's plan"
    eventually(lambda: reads(plan, b"alice's plan"))
    assert os.listdir(plan.parent) == ["plan.txt"]  # the downgrade hid no name


def test_mv_out_of_a_shared_folder_copies_into_ones_own_drive(pair, alice_meta) -> None:
    a, b = pair
    for folder in ("rw", "ro"):
        (a / folder).mkdir()
        (a / folder / "report.txt").write_text(f"report in {folder}")
    _drive_sync(a)
    alice_meta.share(node_id(alice_meta, "rw"), "bob", Role.WRITE)
    alice_meta.share(node_id(alice_meta, "ro"), "bob", Role.READ)
    shared = b / SHARED_FOLDER
    eventually(lambda: sorted(os.listdir(shared)) == ["ro", "rw"])
    assert os.listdir(b) == [SHARED_FOLDER]

    # A rename between two drives is EXDEV: mv copies, then removes the source.
    moved = subprocess.run(
        ["mv", str(shared / "rw" / "report.txt"), str(b / "mine.txt")],
        capture_output=True,
        text=True,
    )
    assert moved.returncode == 0, moved.stderr
    assert (b / "mine.txt").read_text() == "report in rw"
    eventually(lambda: not (a / "rw" / "report.txt").exists())
    assert os.listdir(shared / "rw") == []

    # Read-only: the copy is made, removing the source is refused, alice keeps hers.
    kept = subprocess.run(
        ["mv", str(shared / "ro" / "report.txt"), str(b / "copy.txt")],
        capture_output=True,
        text=True,
    )
    assert kept.returncode != 0 and "Permission denied" in kept.stderr
    assert (b / "copy.txt").read_text() == "report in ro"
    assert (a / "ro" / "report.txt").read_text() == "report in ro"
    assert sorted(os.listdir(b)) == [SHARED_FOLDER, "copy.txt", "mine.txt"]


def test_your_own_folders_named_like_the_mounts_own_stay_reachable(pair, alice_meta) -> None:
    a, b = pair
    # bob made a folder "Shared with me" long before anyone shared anything with him.
    (b / SHARED_FOLDER).mkdir()
    (b / SHARED_FOLDER / "my notes.txt").write_text("bob's own")
    (a / "plan.txt").write_text("alice's plan")
    _drive_sync(a)
    _drive_sync(b)
    alice_meta.share(node_id(alice_meta, "plan.txt"), "bob", Role.READ)
    # His folder wins; the mount's own goes by another name.
    taken = f"{SHARED_FOLDER} (drive)"
    waiting.eventually(lambda: taken in os.listdir(b), timeout=5)
    assert sorted(os.listdir(b)) == [SHARED_FOLDER, taken]
    assert (b / SHARED_FOLDER / "my notes.txt").read_text() == "bob's own"
    assert (b / taken / "plan.txt").read_text() == "alice's plan"
    assert "my notes.txt" in os.listdir(b / ".drive-history" / SHARED_FOLDER)
    assert os.listdir(b / ".drive-history" / taken) == ["plan.txt"]
    # Through the mount the history folder's name is taken (EEXIST); one made through
    # the API (another client) wins the same way.
    assert refused(lambda: (a / ".drive-history").mkdir()) == errno.EEXIST
    alice_meta.make_directory(alice_meta.root().id, ".drive-history", 0o755)
    waiting.eventually(lambda: ".drive-history" in os.listdir(a), timeout=5)
    assert os.listdir(a / ".drive-history") == []
    assert "plan.txt" in os.listdir(a / ".drive-history (drive)")
