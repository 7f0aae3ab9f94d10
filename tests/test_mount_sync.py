"""Two mounts of one drive: changes on one show up on the other, live."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.waiting import eventually


def _drive_sync(mountpoint) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "sync", str(mountpoint)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def two(mounts, metad, blockd):
    a = mounts.mount(metad, blockd, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    return a.path, b.path


@pytest.mark.both_backends
def test_create_change_rename_delete_seen_within_a_second(two) -> None:
    a, b = two
    # b looks first, so its kernel has cached "absent" / old states to invalidate.
    assert not (b / "note.txt").exists()
    assert os.listdir(b) == []
    (a / "note.txt").write_text("v1")
    eventually(lambda: (b / "note.txt").read_text() == "v1")
    assert os.listdir(b) == ["note.txt"]

    (a / "note.txt").write_text("version two")
    eventually(lambda: (b / "note.txt").read_text() == "version two")
    assert (b / "note.txt").stat().st_size == len("version two")

    os.rename(a / "note.txt", a / "renamed.txt")
    eventually(lambda: not (b / "note.txt").exists() and (b / "renamed.txt").exists())
    assert (b / "renamed.txt").read_text() == "version two"

    (a / "dir").mkdir()
    os.rename(a / "renamed.txt", a / "dir" / "moved.txt")
    eventually(lambda: (b / "dir" / "moved.txt").read_text() == "version two")

    os.unlink(a / "dir" / "moved.txt")
    eventually(lambda: not (b / "dir" / "moved.txt").exists())
    os.rmdir(a / "dir")
    eventually(lambda: os.listdir(b) == [])


def test_open_reader_sees_new_content_after_other_device_edits(two) -> None:
    a, b = two
    (a / "live.txt").write_text("old")
    eventually(lambda: (b / "live.txt").read_text() == "old")  # now in b's page cache
    (a / "live.txt").write_text("newer")
    eventually(lambda: (b / "live.txt").read_text() == "newer")


def test_a_reader_keeps_the_revision_it_opened(two) -> None:
    """Close-to-open: a file open for reading never mixes two revisions."""
    a, b = two
    first = bytes(range(256)) * 8192  # 2 MiB: several blocks
    second = b"\x07" * (5 * 1024 * 1024)
    (a / "big.bin").write_bytes(first)
    eventually(lambda: (b / "big.bin").read_bytes() == first, timeout=10)
    with open(b / "big.bin", "rb", buffering=0) as reader:
        head = reader.read(100_000)
        (a / "big.bin").write_bytes(second)
        eventually(lambda: (b / "big.bin").read_bytes() == second, timeout=10)
        rest = b""
        while piece := reader.read(1024 * 1024):
            rest += piece
    assert head + rest == first


@pytest.mark.both_backends
def test_concurrent_edits_keep_both_versions(two) -> None:
    a, b = two
    (a / "doc.txt").write_text("base")
    eventually(lambda: (b / "doc.txt").read_text() == "base")
    fa = open(a / "doc.txt", "r+")  # noqa: SIM115
    fb = open(b / "doc.txt", "r+")  # noqa: SIM115
    fa.write("from a")
    fb.write("from b")
    fa.close()
    _drive_sync(a)  # a commits first
    fb.close()  # b's base is stale now: its version becomes a conflicted copy
    names = eventually(lambda: len(os.listdir(a)) == 2)
    assert names is not None
    entries = sorted(os.listdir(a))
    copy = [n for n in entries if "conflicted copy" in n]
    assert len(copy) == 1 and "dev-b" in copy[0], entries
    assert (a / "doc.txt").read_text() == "from a"
    # The copy is made, then filled: its name may show a moment before its content.
    eventually(lambda: (a / copy[0]).read_text() == "from b")
    eventually(lambda: (b / "doc.txt").read_text() == "from a")
    eventually(lambda: (b / copy[0]).read_text() == "from b")


def test_a_name_found_missing_shows_as_soon_as_another_device_makes_it(two) -> None:
    """The kernel remembers a missing name (operations.ABSENT_TIMEOUT, 30 s): a name
    another device makes, moves there, links or brings back still shows at once."""
    a, b = two
    (a / "dir").mkdir()
    (a / "dir" / "old.txt").write_text("old")
    eventually(lambda: (b / "dir" / "old.txt").exists())
    names = ("new.txt", "moved.txt", "link.txt", "sub", "back.txt")
    for _ in range(2):  # the second look is the kernel's remembered answer
        assert not any((b / "dir" / name).exists() for name in names)
    (a / "dir" / "new.txt").write_text("new")
    os.rename(a / "dir" / "old.txt", a / "dir" / "moved.txt")
    os.link(a / "dir" / "moved.txt", a / "dir" / "link.txt")
    (a / "dir" / "sub").mkdir()
    for name in names[:4]:
        eventually(lambda name=name: (b / "dir" / name).exists(), timeout=10)
    assert (b / "dir" / "link.txt").read_text() == "old"
    assert not (b / "dir" / "old.txt").exists()
    # Removed, looked up (missing), made again.
    os.unlink(a / "dir" / "new.txt")
    eventually(lambda: not (b / "dir" / "new.txt").exists(), timeout=10)
    (a / "dir" / "new.txt").write_text("again")
    eventually(lambda: (b / "dir" / "new.txt").read_text() == "again", timeout=10)
    # Made on this mount itself: the kernel drops its own remembered absence.
    (b / "dir" / "back.txt").write_text("here")
    assert (b / "dir" / "back.txt").read_text() == "here"
