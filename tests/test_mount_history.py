"""Past revisions through a real mount: .drive-history, and restores seen live."""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import stat
from pathlib import Path

from fusefs.clients import MetadataClient
from tests import signin, waiting
from tests.waiting import refused

HISTORY = ".drive-history"
eventually = functools.partial(waiting.eventually, timeout=1.5)
REVISION_NAME = re.compile(r"^plan \(r(\d+) \d{4}-\d\d-\d\d \d{6}\)\.txt$")


def versions() -> list[bytes]:
    """Ten contents; the sixth spans several blocks."""
    made = [f"version {i}\n".encode() * i for i in range(1, 11)]
    made[5] = os.urandom(3 * 1024 * 1024 + 5)
    return made


def test_each_kept_revision_reads_back_under_drive_history(mount, tmp_path: Path) -> None:
    (mount.path / "docs").mkdir()
    plan = mount.path / "docs" / "plan.txt"
    written = versions()
    for content in written:
        plan.write_bytes(content)  # one revision per save once sent
        mount.sync()  # (a save replaces one still waiting to be sent)

    revisions = mount.path / HISTORY / "docs" / "plan.txt"
    names = os.listdir(revisions)
    numbers = {int(REVISION_NAME.match(n).group(1)): n for n in names if REVISION_NAME.match(n)}
    assert len(numbers) == len(names), names
    # Save k made revision k + 1; the empty revision 1 of the new file gave way to the
    # first save's content, so its history starts with content.
    assert sorted(numbers) == list(range(2, 12))
    third = revisions / numbers[4]
    assert third.read_bytes() == written[2]
    for k, content in enumerate(written, start=1):
        path = revisions / numbers[k + 1]
        assert path.stat().st_size == len(content)
        assert path.read_bytes() == content, f"revision {k + 1}"

    # Read-only, whatever the program tries.
    assert stat.S_IMODE(third.stat().st_mode) & 0o222 == 0
    read_only = (errno.EROFS, errno.EACCES)
    assert refused(lambda: open(third, "r+b").close()) in read_only
    assert refused(lambda: open(third, "wb").close()) in read_only
    assert refused(lambda: os.truncate(third, 0)) in read_only
    assert refused(lambda: os.unlink(third)) in read_only
    assert refused(lambda: os.rename(third, revisions / "x.txt")) in read_only
    assert refused(lambda: (revisions / "new.txt").write_text("x")) in read_only
    assert refused(lambda: (mount.path / HISTORY / "newdir").mkdir()) in read_only
    assert third.read_bytes() == written[2]
    assert plan.read_bytes() == written[-1]

    # Folders mirror the drive; history is found by name but never listed or copied.
    assert os.listdir(mount.path / HISTORY) == ["docs"]
    assert os.listdir(mount.path / HISTORY / "docs") == ["plan.txt"]
    assert stat.S_ISDIR((mount.path / HISTORY / "docs" / "plan.txt").stat().st_mode)
    assert os.listdir(mount.path) == ["docs"]
    shutil.copytree(mount.path, tmp_path / "copy")
    assert sorted(p.name for p in (tmp_path / "copy").rglob("*")) == ["docs", "plan.txt"]

    # A new save shows up as a new revision.
    plan.write_bytes(b"eleventh")
    eventually(lambda: len(os.listdir(revisions)) == 11)


def test_restores_show_up_in_running_mounts(mounts, metad, blockd) -> None:
    first = mounts.mount(metad, blockd, "dev-a")
    a = first.path
    b = mounts.mount(metad, blockd, "dev-b").path
    (a / "plan.txt").write_text("first")
    first.sync()  # a save replaces one still waiting to be sent
    (a / "plan.txt").write_text("second")
    (a / "old.txt").write_text("to be deleted")
    first.sync()
    eventually(lambda: (b / "plan.txt").read_text() == "second")
    assert (b / "old.txt").read_text() == "to be deleted"
    meta: MetadataClient = signin.metadata_client(metad.address)
    try:
        root = meta.root().id
        plan = meta.lookup(root, "plan.txt")
        # The first save is revision 2: bring its content back as a new revision.
        meta.restore_revision(plan.id, 2)
        eventually(lambda: (b / "plan.txt").read_text() == "first")
        eventually(lambda: (a / "plan.txt").read_text() == "first")

        old = meta.lookup(root, "old.txt")
        os.unlink(a / "old.txt")
        eventually(lambda: not (b / "old.txt").exists())
        meta.restore_from_trash(old.id)
        eventually(lambda: (b / "old.txt").read_text() == "to be deleted")
        eventually(lambda: (a / "old.txt").read_text() == "to be deleted")
    finally:
        meta.close()
