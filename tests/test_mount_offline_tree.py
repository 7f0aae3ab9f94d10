"""Folders, links and attributes go through the write-back journal like file content.

Real daemons, real mounts, a TCP relay cut to take one device offline: a
tree made while away (folders, files, a symbolic link, chmod and utime) is
answered locally, survives kill -9, and reaches another device whole; a
folder whose name another device took meanwhile keeps both.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from fusefs.clients import MetadataClient
from tests import signin
from tests.filedata import exchange
from tests.offline import (
    OFFLINE_LOGS,
    back_online,
    killed_then_arrives,
    mount_behind,
    offline,
    online,
)
from tests.waiting import eventually

OLD = 1_600_000_000 * 10**9  # 2020-09-13: an mtime no clock gives by accident


def _tree_state(root: Path) -> dict[str, tuple]:
    """Every path below root with its type and mode bits, size, mtime and link target.

    Folders' mtimes too: an entry made offline reaches metad with the time it
    was made, so its folder shows the same times everywhere.
    """
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
            seen[str(path.relative_to(root))] = (st.st_mode, size, st.st_mtime_ns, target)
    return seen


def test_a_tree_made_offline_survives_kill_9_and_arrives_whole(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    os.listdir(a.path)
    a.sync()  # (ids for new nodes are reserved by now)
    offline(behind_relays)
    started = time.monotonic()
    lib = a.path / "project" / "src" / "lib"
    lib.mkdir(parents=True)
    (a.path / "project" / "docs").mkdir()
    (lib / "core.py").write_bytes(b"print('made offline')\n")
    (a.path / "project" / "README").write_bytes(b"read me")
    os.symlink("src/lib/core.py", a.path / "project" / "entry")
    os.chmod(a.path / "project" / "docs", 0o700)
    os.chmod(lib / "core.py", 0o755)
    os.utime(a.path / "project" / "README", ns=(OLD, OLD))
    os.utime(lib, ns=(OLD + 1, OLD + 1))
    assert time.monotonic() - started < 10, "changes made offline must not wait on the network"
    assert os.stat(a.path / "project").st_nlink == 4  # ., .., src, docs
    assert os.stat(a.path / "project" / "docs").st_mode & 0o7777 == 0o700
    assert os.stat(lib).st_mtime_ns == OLD + 1
    made = _tree_state(a.path / "project")

    def shows(root: Path) -> None:
        assert _tree_state(root / "project") == made

    _, b = killed_then_arrives(mounts, behind_relays, a, (metad, blockd), shows)
    assert os.stat(b.path / "project" / "src" / "lib").st_mtime_ns == OLD + 1
    assert (b.path / "project" / "entry").read_bytes() == b"print('made offline')\n"
    assert os.stat(b.path / "project").st_nlink == 4


def test_a_folder_whose_name_was_taken_meanwhile_keeps_both(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"made as"]
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    os.listdir(a.path)
    a.sync()
    offline(behind_relays)
    (a.path / "photos").mkdir()
    (a.path / "photos" / "from-a.jpg").write_bytes(b"a's photo")
    (b.path / "photos").mkdir()
    (b.path / "photos" / "from-b.jpg").write_bytes(b"b's photo")
    b.sync()
    online(behind_relays)
    back_online(a)
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c")
    folders = sorted(os.listdir(c.path))
    assert len(folders) == 2 and folders[0] == "photos", folders
    assert "conflicted copy" in folders[1]
    assert (c.path / "photos" / "from-b.jpg").read_bytes() == b"b's photo"
    assert (c.path / folders[1] / "from-a.jpg").read_bytes() == b"a's photo"
    # The device that made it sees where it went.
    assert sorted(os.listdir(a.path)) == folders


def _tarball(path: Path) -> None:
    """Folders and files with set modes and times (tar restores both after writing)."""
    with tarfile.open(path, "w") as tar:
        for i in range(6):
            folder = tarfile.TarInfo(f"pkg/mod{i}")
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o750, 1_500_000_000 + i
            tar.addfile(folder)
            for j in range(8):
                data = f"module {i} file {j}\n".encode() * (j * 50 + 1)
                info = tarfile.TarInfo(f"pkg/mod{i}/f{j}.py")
                info.size, info.mode, info.mtime = len(data), 0o640 + j % 2, 1_400_000_000 + j
                tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/latest")
        link.type, link.linkname = tarfile.SYMTYPE, "mod5"
        tar.addfile(link)


def test_untar_reaches_another_device_with_its_modes_and_times(mounts, metad, blockd, tmp_path):
    archive = tmp_path / "pkg.tar"
    _tarball(archive)
    local = tmp_path / "local"
    local.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(local)], check=True)
    expected = _tree_state(local / "pkg")

    a = mounts.mount(metad, blockd, "dev-a")
    subprocess.run(["tar", "-xf", str(archive), "-C", str(a.path)], check=True)
    assert _tree_state(a.path / "pkg") == expected
    a.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    assert _tree_state(b.path / "pkg") == expected


def test_moves_removals_and_saves_made_offline_survive_kill_9_and_arrive(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "docs").mkdir()
    (a.path / "docs" / "a.txt").write_bytes(b"letter a")
    (a.path / "docs" / "b.txt").write_bytes(b"letter b")
    (a.path / "old").mkdir()
    (a.path / "old" / "notes.txt").write_bytes(b"old notes")
    (a.path / "empty").mkdir()
    (a.path / "report.txt").write_bytes(b"report v1")
    a.sync()

    offline(behind_relays)
    started = time.monotonic()
    os.rename(a.path / "docs" / "a.txt", a.path / "docs" / "renamed.txt")
    os.unlink(a.path / "docs" / "b.txt")
    (a.path / "archive").mkdir()
    os.rename(a.path / "old", a.path / "archive" / "old")
    os.rmdir(a.path / "empty")
    (a.path / ".report.txt.swp").write_bytes(b"report v2, saved offline")
    os.rename(a.path / ".report.txt.swp", a.path / "report.txt")  # an editor's save
    assert time.monotonic() - started < 10, "changes made offline must not wait on the network"
    expected = {
        "archive": None,
        "archive/old": None,
        "archive/old/notes.txt": b"old notes",
        "docs": None,
        "docs/renamed.txt": b"letter a",
        "report.txt": b"report v2, saved offline",
    }
    assert _contents(a.path) == expected

    def shows(root: Path) -> None:
        assert _contents(root) == expected

    killed_then_arrives(mounts, behind_relays, a, (metad, blockd), shows)
    meta = MetadataClient(metad.address, "test", signin.token)
    try:
        report = meta.lookup(meta.root().id, "report.txt")
        assert len(meta.list_revisions(report.id)) == 2  # the save kept the history
    finally:
        meta.close()


def test_a_file_edited_moved_and_edited_again_offline_arrives_moved_with_the_last_edit(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "report.txt").write_bytes(b"report v1")
    a.sync()

    offline(behind_relays)
    (a.path / "report.txt").write_bytes(b"report v2")
    os.chmod(a.path / "report.txt", 0o600)
    os.rename(a.path / "report.txt", a.path / "moved.txt")
    (a.path / "moved.txt").write_bytes(b"report v3, the last")
    assert _contents(a.path) == {"moved.txt": b"report v3, the last"}
    online(behind_relays)
    back_online(a)
    a.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    assert _contents(b.path) == {"moved.txt": b"report v3, the last"}
    assert stat.S_IMODE(os.stat(b.path / "moved.txt").st_mode) == 0o600


def _contents(root: Path) -> dict[str, bytes | None]:
    """Every path below root: a file's bytes, None for a folder."""
    seen: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            seen[str((Path(folder) / name).relative_to(root))] = None
        for name in files:
            path = Path(folder) / name
            seen[str(path.relative_to(root))] = path.read_bytes()
    return seen


def test_a_removal_made_offline_spares_what_another_device_put_there(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "list.txt").write_bytes(b"first list")
    a.sync()
    eventually(lambda: (b.path / "list.txt").exists(), timeout=10)

    offline(behind_relays)
    os.unlink(a.path / "list.txt")
    os.unlink(b.path / "list.txt")
    (b.path / "list.txt").write_bytes(b"a new list, made on b")
    b.sync()
    online(behind_relays)
    back_online(a)
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c")
    assert (c.path / "list.txt").read_bytes() == b"a new list, made on b"
    eventually(lambda: (a.path / "list.txt").read_bytes() == b"a new list, made on b", timeout=10)


def test_a_move_made_offline_onto_a_name_taken_meanwhile_keeps_both(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"moved as"]
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "draft.txt").write_bytes(b"a's draft")
    a.sync()

    offline(behind_relays)
    os.rename(a.path / "draft.txt", a.path / "final.txt")
    (b.path / "final.txt").write_bytes(b"b's final")
    b.sync()
    online(behind_relays)
    back_online(a)
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c")
    names = sorted(os.listdir(c.path))
    assert len(names) == 2 and names[1] == "final.txt", names
    assert names[0].startswith("final (conflicted copy")
    assert (c.path / "final.txt").read_bytes() == b"b's final"
    assert (c.path / names[0]).read_bytes() == b"a's draft"
    eventually(lambda: sorted(os.listdir(a.path)) == names, timeout=10)


def test_a_file_saved_over_then_removed_offline_is_removed_on_the_drive(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "notes.txt").write_bytes(b"v1")
    (a.path / "keep.txt").write_bytes(b"kept")
    a.sync()

    offline(behind_relays)
    (a.path / ".notes.txt.swp").write_bytes(b"v2")
    os.rename(a.path / ".notes.txt.swp", a.path / "notes.txt")
    os.unlink(a.path / "notes.txt")
    (a.path / "tmp").mkdir()
    os.rename(a.path / "keep.txt", a.path / "tmp" / "keep.txt")
    os.rename(a.path / "tmp" / "keep.txt", a.path / "keep.txt")
    os.rmdir(a.path / "tmp")
    assert sorted(os.listdir(a.path)) == ["keep.txt"]
    online(behind_relays)
    back_online(a)
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c")
    assert sorted(os.listdir(c.path)) == ["keep.txt"]
    assert (c.path / "keep.txt").read_bytes() == b"kept"
    eventually(lambda: sorted(os.listdir(a.path)) == ["keep.txt"], timeout=10)


def _xattrs(path: Path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name) for name in sorted(os.listxattr(path))}


def test_extended_attributes_changed_offline_survive_kill_9_and_arrive(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    doc = a.path / "doc.txt"
    doc.write_bytes(b"text")
    os.setxattr(doc, "user.kept", b"v1")
    os.setxattr(doc, "user.gone", b"to remove")
    a.sync()
    assert _xattrs(doc) == {"user.gone": b"to remove", "user.kept": b"v1"}  # (read: known)

    offline(behind_relays)
    started = time.monotonic()
    os.setxattr(doc, "user.kept", b"v2, set offline")
    os.setxattr(doc, "user.new", b"made offline")
    os.removexattr(doc, "user.gone")
    made = a.path / "made-offline.txt"
    made.write_bytes(b"new")
    os.setxattr(made, "user.tag", b"")
    with pytest.raises(OSError) as refused:
        os.setxattr(doc, "nonamespace", b"x")  # refused now, as metad would refuse it
    assert refused.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as absent:
        os.removexattr(doc, "user.never")
    assert absent.value.errno == errno.ENODATA
    assert time.monotonic() - started < 10, "changes made offline must not wait on the network"
    expected = {"user.kept": b"v2, set offline", "user.new": b"made offline"}
    assert _xattrs(doc) == expected
    assert _xattrs(made) == {"user.tag": b""}

    def shows(root: Path) -> None:
        assert _xattrs(root / "doc.txt") == expected
        assert _xattrs(root / "made-offline.txt") == {"user.tag": b""}

    killed_then_arrives(mounts, behind_relays, a, (metad, blockd), shows)


def test_a_hard_link_made_offline_survives_kill_9_and_arrives(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "docs").mkdir()
    (a.path / "other").mkdir()
    (a.path / "docs" / "orig.txt").write_bytes(b"one file, two names")
    (a.path / "other" / "taken.txt").write_bytes(b"here first")
    a.sync()
    os.listdir(a.path / "other")

    offline(behind_relays)
    started = time.monotonic()
    os.link(a.path / "docs" / "orig.txt", a.path / "other" / "link.txt")
    with pytest.raises(FileExistsError):
        os.link(a.path / "docs" / "orig.txt", a.path / "other" / "taken.txt")
    assert time.monotonic() - started < 10, "changes made offline must not wait on the network"

    def both_names(root: Path) -> None:
        orig, link = os.stat(root / "docs" / "orig.txt"), os.stat(root / "other" / "link.txt")
        assert orig.st_ino == link.st_ino
        assert (orig.st_nlink, link.st_nlink) == (2, 2)
        assert (root / "other" / "link.txt").read_bytes() == b"one file, two names"
        assert (root / "other" / "taken.txt").read_bytes() == b"here first"

    both_names(a.path)
    killed_then_arrives(mounts, behind_relays, a, (metad, blockd), both_names)


def test_a_swap_made_offline_survives_kill_9_and_arrives(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += OFFLINE_LOGS
    a = mount_behind(mounts, behind_relays, "dev-a")
    (a.path / "site").mkdir()
    (a.path / "site" / "index.html").write_bytes(b"old site")
    (a.path / "staging").mkdir()
    (a.path / "staging" / "next").mkdir()
    (a.path / "staging" / "next" / "index.html").write_bytes(b"new site")
    (a.path / "notes.txt").write_bytes(b"notes")
    a.sync()
    for folder in ("site", "staging", "staging/next"):
        os.listdir(a.path / folder)

    offline(behind_relays)
    started = time.monotonic()
    exchange(a.path / "site", a.path / "staging" / "next")
    exchange(a.path / "notes.txt", a.path / "staging" / "next" / "index.html")
    with pytest.raises(AssertionError, match="No such file"):
        exchange(a.path / "notes.txt", a.path / "missing")
    assert time.monotonic() - started < 10, "changes made offline must not wait on the network"

    def swapped(root: Path) -> None:
        assert (root / "site" / "index.html").read_bytes() == b"new site"
        assert (root / "staging" / "next" / "index.html").read_bytes() == b"notes"
        assert (root / "notes.txt").read_bytes() == b"old site"
        assert sorted(os.listdir(root / "staging" / "next")) == ["index.html"]
        assert os.stat(root / "staging").st_nlink == 3

    swapped(a.path)
    killed_then_arrives(mounts, behind_relays, a, (metad, blockd), swapped)


def test_a_swap_made_offline_after_another_device_moved_a_name_away_is_not_made(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"not applied on the drive"]
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "x.txt").write_bytes(b"x from a")
    (a.path / "y.txt").write_bytes(b"y from a")
    a.sync()
    os.listdir(a.path)

    offline(behind_relays)
    exchange(a.path / "x.txt", a.path / "y.txt")
    assert (a.path / "x.txt").read_bytes() == b"y from a"
    eventually(lambda: (b.path / "x.txt").exists())
    os.rename(b.path / "x.txt", b.path / "x-old.txt")  # x.txt is another file from now on
    (b.path / "x.txt").write_bytes(b"x from b")
    b.sync()

    online(behind_relays)
    back_online(a)
    a.sync()
    expected = {"x-old.txt": b"x from a", "x.txt": b"x from b", "y.txt": b"y from a"}
    c = mounts.mount(metad, blockd, "dev-c")
    assert _contents(c.path) == expected
    eventually(lambda: _contents(a.path) == expected)


def test_a_hard_link_made_offline_on_a_name_taken_meanwhile_keeps_both(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
):
    allowed_log_patterns += [*OFFLINE_LOGS, r"linked as"]
    a = mount_behind(mounts, behind_relays, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "orig.txt").write_bytes(b"a's file")
    (a.path / "shared").mkdir()
    a.sync()
    os.listdir(a.path / "shared")
    offline(behind_relays)
    os.link(a.path / "orig.txt", a.path / "shared" / "name.txt")
    (b.path / "shared" / "name.txt").write_bytes(b"b's file")
    b.sync()
    online(behind_relays)
    back_online(a)
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c")
    names = sorted(os.listdir(c.path / "shared"))
    copies = [n for n in names if "conflicted copy" in n]
    assert len(names) == 2 and "name.txt" in names and len(copies) == 1, names
    assert (c.path / "shared" / "name.txt").read_bytes() == b"b's file"
    assert (c.path / "shared" / copies[0]).read_bytes() == b"a's file"
    assert os.stat(c.path / "shared" / copies[0]).st_ino == os.stat(c.path / "orig.txt").st_ino
    # The device that made it sees where it went.
    assert eventually(lambda: sorted(os.listdir(a.path / "shared")) == names)
