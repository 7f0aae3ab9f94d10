"""POSIX through a real mount: owners and modes checked for every user of the machine,
special files, directory link counts, times, and a file that is open but unlinked.

The mount runs as root with allow_other and default_permissions, as `drive up`
does for root: the kernel checks each access of each local user against the
owner and mode the drive keeps, and a second device sees the same numbers.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests import signin
from tests.filedata import exchange
from tests.waiting import eventually

NOBODY = 65534
# The venv may sit where other users cannot reach (under /root): the system Python can.
SYSTEM_PYTHON = "/usr/bin/python3"

# Reads' atimes go to metad once a second (fusefs/mount/atimes.py): a few rounds.
ATIME_SECONDS = 5.0


def as_user(uid: int, code: str, gid: int = NOBODY) -> subprocess.CompletedProcess[str]:
    """Runs python code as another user of the machine; its errno (0: it worked) on stdout."""
    program = (
        "import errno, os, sys\n"
        "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "    print(0)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", program],
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )


def errno_as(uid: int, code: str, gid: int = NOBODY) -> int:
    result = as_user(uid, code, gid)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_owners_and_modes_hold_for_every_user_and_travel_between_devices(
    mounts, metad, blockd, public: Path
) -> None:
    a = mounts.mount(metad, blockd, "dev-a", path=public / "a")
    shared = a.path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    private = a.path / "private.txt"
    private.write_text("root's")
    os.chmod(private, 0o600)
    # Another user of the machine reaches the folder (allow_other)...
    assert errno_as(NOBODY, f"open({str(shared / 'mine.txt')!r}, 'w').write('x')") == 0
    assert os.stat(shared / "mine.txt").st_uid == NOBODY
    assert os.stat(shared / "mine.txt").st_gid == NOBODY
    # ...and the kernel holds them to the owner and mode of each node.
    assert errno_as(NOBODY, f"open({str(private)!r})") == errno.EACCES
    assert errno_as(NOBODY, f"os.chmod({str(private)!r}, 0o666)") == errno.EPERM
    assert errno_as(NOBODY, f"os.chown({str(shared / 'mine.txt')!r}, 0, -1)") == errno.EPERM
    assert errno_as(NOBODY, f"os.chmod({str(shared / 'mine.txt')!r}, 0o640)") == 0

    os.chown(private, 1234, 5678)
    os.chmod(private, 0o4750)
    st = os.stat(private)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    # The numbers travel as they are to another device.
    b = mounts.mount(metad, blockd, "dev-b")
    other = os.stat(b.path / "private.txt")
    assert (other.st_uid, other.st_gid, stat.S_IMODE(other.st_mode)) == (1234, 5678, 0o4750)
    assert os.stat(b.path / "shared" / "mine.txt").st_uid == NOBODY
    # A change of owner clears setuid (the kernel asks for it with the chown).
    os.chown(private, 4321, -1)
    eventually(lambda: os.stat(b.path / "private.txt").st_uid == 4321, timeout=5)
    assert not os.stat(private).st_mode & stat.S_ISUID


def test_a_setgid_folder_hands_its_group_down(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    team = m.path / "team"
    team.mkdir()
    os.chown(team, -1, 4242)
    os.chmod(team, 0o2775)
    (team / "notes.txt").write_text("x")
    (team / "sub").mkdir()
    assert os.stat(team / "notes.txt").st_gid == 4242
    sub = os.stat(team / "sub")
    assert sub.st_gid == 4242 and sub.st_mode & stat.S_ISGID


def test_special_files_are_nodes_without_content(mounts, metad, blockd, tmp_path: Path) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    os.mkfifo(a.path / "pipe", 0o640)
    os.mknod(a.path / "tty", 0o600 | stat.S_IFCHR, os.makedev(4, 64))
    os.mknod(a.path / "disk", 0o600 | stat.S_IFBLK, os.makedev(8, 1))
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(a.path / "sock"))
    b = mounts.mount(metad, blockd, "dev-b")
    for path in (a.path, b.path):
        assert stat.S_ISFIFO(os.stat(path / "pipe").st_mode)
        assert stat.S_IMODE(os.stat(path / "pipe").st_mode) == 0o640
        tty = os.stat(path / "tty")
        assert stat.S_ISCHR(tty.st_mode) and tty.st_rdev == os.makedev(4, 64)
        disk = os.stat(path / "disk")
        assert stat.S_ISBLK(disk.st_mode) and disk.st_rdev == os.makedev(8, 1)
        assert stat.S_ISSOCK(os.stat(path / "sock").st_mode)
    # A FIFO works as one (the kernel runs it): a writer and a reader meet.
    writer = subprocess.Popen(["sh", "-c", f"echo through > {a.path / 'pipe'}"])
    assert (a.path / "pipe").read_text() == "through\n"
    assert writer.wait(10) == 0


def test_device_nodes_and_setuid_bits_confer_nothing(mount) -> None:
    """A collaborator can store a device node or a setuid file in a shared folder: on
    the mount they are data (nodev, nosuid), even when root runs it."""
    null = mount.path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    with pytest.raises(PermissionError):
        os.open(null, os.O_WRONLY)
    tool = mount.path / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    assert stat.S_IMODE(os.stat(tool).st_mode) == 0o4755  # kept, as data
    flags = os.statvfs(mount.path).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV


def test_directory_link_counts_follow_subdirectories(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    top = m.path / "top"
    top.mkdir()
    assert os.stat(top).st_nlink == 2
    (top / "a").mkdir()
    (top / "b").mkdir()
    (top / "file").write_text("not a folder")
    assert os.stat(top).st_nlink == 4
    (top / "a").rmdir()
    assert os.stat(top).st_nlink == 3
    assert os.stat(top / "file").st_nlink == 1


def test_times_are_kept_to_the_nanosecond(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    f = a.path / "f"
    f.write_text("x")
    os.utime(f, ns=(1_234_567_891_123_456_789, 1_111_111_111_222_333_444))
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (
        1_234_567_891_123_456_789,
        1_111_111_111_222_333_444,
    )
    before = st.st_ctime_ns
    os.chmod(f, 0o600)
    assert os.stat(f).st_ctime_ns > before  # every change moves ctime
    b = mounts.mount(metad, blockd, "dev-b")
    assert os.stat(b.path / "f").st_atime_ns == 1_234_567_891_123_456_789


def test_attributes_set_on_a_file_being_written_go_with_its_content(mounts, metad, blockd) -> None:
    """tar and cp -p write a file, then set its times, owner and mode before closing."""
    a = mounts.mount(metad, blockd, "dev-a")
    f = a.path / "unpacked.c"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"int main;")
        os.utime(fd, ns=(1_500_000_000_123_456_789, 1_400_000_000_987_654_321))
        os.fchown(fd, 123, 456)
        os.fchmod(fd, 0o4751)
        st = os.stat(f)  # seen at once, before the content is saved
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4751, 123, 456)
    finally:
        os.close(fd)
    b = mounts.mount(metad, blockd, "dev-b")
    there = os.stat(b.path / "unpacked.c")
    assert (stat.S_IMODE(there.st_mode), there.st_uid, there.st_gid) == (0o4751, 123, 456)
    assert (there.st_atime_ns, there.st_mtime_ns) == (
        1_500_000_000_123_456_789,
        1_400_000_000_987_654_321,
    )
    assert (b.path / "unpacked.c").read_bytes() == b"int main;"
    history = a.path / ".drive-history" / "unpacked.c"
    assert len(os.listdir(history)) == 1  # one save with everything in it


def test_reads_move_atime_the_relatime_way(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    f = a.path / "f"
    f.write_text("first")
    a.sync()  # its commit is a change too (ctime); reads are what is watched here
    folder = a.path / "folder"
    folder.mkdir()
    written = os.stat(f)
    assert f.read_text() == "first"
    # The first read after a change moves atime past mtime and ctime (ctime stays).
    eventually(lambda: os.stat(f).st_atime_ns > written.st_mtime_ns, timeout=ATIME_SECONDS)
    read = os.stat(f)
    assert read.st_ctime_ns == written.st_ctime_ns
    # Reads that follow do not write again: atime stays until the next change.
    assert f.read_text() == "first"
    os.listdir(folder)
    eventually(
        lambda: os.stat(folder).st_atime_ns > os.stat(folder).st_mtime_ns, timeout=ATIME_SECONDS
    )
    assert os.stat(f).st_atime_ns == read.st_atime_ns
    f.write_text("second")
    a.sync()
    assert f.read_text() == "second"
    eventually(
        lambda: os.stat(f).st_atime_ns > os.stat(f).st_mtime_ns > read.st_atime_ns,
        timeout=ATIME_SECONDS,
    )
    # Another device sees the atime metad keeps.
    b = mounts.mount(metad, blockd, "dev-b")
    assert os.stat(b.path / "f").st_atime_ns == os.stat(f).st_atime_ns


def test_an_open_file_outlives_its_name(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    path = m.path / "scratch"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"still here")
        os.unlink(path)
        assert not path.exists()
        st = os.fstat(fd)
        assert (st.st_nlink, st.st_size) == (0, 10)
        assert os.pread(fd, 100, 0) == b"still here"
        os.pwrite(fd, b"!", 10)
        assert os.pread(fd, 100, 0) == b"still here!"
        os.ftruncate(fd, 5)
        assert os.fstat(fd).st_size == 5
    finally:
        os.close(fd)
    assert sorted(p.name for p in m.path.iterdir()) == []


def test_sizes_past_the_drives_limit_are_efbig(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    f = m.path / "f"
    f.write_text("x")
    with pytest.raises(OSError) as info:
        os.truncate(f, 999_999_999_999_999)
    assert info.value.errno == errno.EFBIG
    assert f.read_text() == "x"


def test_hard_links_are_one_file_under_many_names(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    first = a.path / "report.txt"
    first.write_text("version 1")
    (a.path / "archive").mkdir()
    second = a.path / "archive" / "report-2026.txt"
    os.link(first, second)
    assert os.stat(first).st_ino == os.stat(second).st_ino
    assert os.stat(first).st_nlink == 2
    second.write_text("version 2")  # an edit through one name is the file's
    assert first.read_text() == "version 2"
    b = mounts.mount(metad, blockd, "dev-b")
    assert (b.path / "archive" / "report-2026.txt").read_text() == "version 2"
    assert os.stat(b.path / "report.txt").st_nlink == 2
    # Removing the first name keeps the file under the other, its history with it.
    first.unlink()
    assert not first.exists()
    assert second.read_text() == "version 2" and os.stat(second).st_nlink == 1
    eventually(lambda: not (b.path / "report.txt").exists(), timeout=5)
    assert (b.path / "archive" / "report-2026.txt").read_text() == "version 2"
    # A rename onto another name of the same file does nothing, as rename(2) says.
    os.link(second, a.path / "again.txt")
    os.rename(a.path / "again.txt", second)
    assert os.stat(second).st_nlink == 2 and (a.path / "again.txt").exists()
    # Folders keep one name.
    with pytest.raises(OSError) as info:
        os.link(a.path / "archive", a.path / "archive-too")
    assert info.value.errno == errno.EPERM
    assert sorted(p.name for p in a.path.iterdir()) == ["again.txt", "archive"]


def test_a_name_given_back_right_after_it_was_taken_stays(mounts, metad, blockd) -> None:
    # The journal's event for an unlink arrives while the name is linked again:
    # looking the place up for that event must not undo the newer link.
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "deep" / "er").mkdir(parents=True)
    name, other = a.path / "deep" / "er" / "file", a.path / "other"
    name.write_text("kept")
    os.link(name, other)
    for _ in range(40):
        name.unlink()
        os.link(other, name)
        assert os.stat(other).st_nlink == 2
    name.unlink()
    assert os.stat(other).st_nlink == 1 and other.read_text() == "kept"
    assert not name.exists()


def test_extended_attributes_are_kept_and_come_back_with_a_revision(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    f = a.path / "photo.jpg"
    f.write_bytes(b"first")
    assert os.listxattr(f) == []
    with pytest.raises(OSError) as info:
        os.getxattr(f, "user.missing")
    assert info.value.errno == errno.ENODATA
    _labels_not_supported(f)
    os.setxattr(f, "user.origin", b"camera 1")
    os.setxattr(f, "security.label", b"\x00binary\xff")
    with pytest.raises(OSError) as info:
        os.setxattr(f, "user.origin", b"again", os.XATTR_CREATE)
    assert info.value.errno == errno.EEXIST
    with pytest.raises(OSError) as info:
        os.setxattr(f, "user.nothing", b"x", os.XATTR_REPLACE)
    assert info.value.errno == errno.ENODATA
    with pytest.raises(OSError) as info:
        os.setxattr(f, "other.namespace", b"x")
    assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as info:  # shown by getfacl, never enforced: refused
        os.setxattr(f, "system.posix_acl_access", _OWNER_ONLY_ACL)
    assert info.value.errno == errno.EOPNOTSUPP
    assert sorted(os.listxattr(f)) == ["security.label", "user.origin"]
    assert os.getxattr(f, "security.label") == b"\x00binary\xff"
    _labels_not_supported(f)  # (the node has attributes now: read, not known to be none)
    # Another device sees them; they travel with the file.
    b = mounts.mount(metad, blockd, "dev-b")
    assert os.getxattr(b.path / "photo.jpg", "user.origin") == b"camera 1"
    # Each revision keeps the attributes it was made with.
    f.write_bytes(b"second")  # revision made with user.origin = camera 1
    os.setxattr(f, "user.origin", b"edited")
    os.removexattr(f, "security.label")
    assert sorted(os.listxattr(f)) == ["user.origin"]
    meta = signin.metadata_client(metad.address)
    try:
        node = meta.lookup(meta.root().id, "photo.jpg")
        second = meta.list_revisions(node.id)[0].number  # "second", made with both attributes
        meta.restore_revision(node.id, second)
    finally:
        meta.close()
    eventually(lambda: os.getxattr(b.path / "photo.jpg", "user.origin") == b"camera 1", timeout=5)
    assert os.getxattr(b.path / "photo.jpg", "security.label") == b"\x00binary\xff"
    # Large values are refused by the kernel's own limit; many fill a node's room.
    with pytest.raises(OSError):
        os.setxattr(f, "user.big", b"x" * (65 * 1024))


def test_listings_show_dot_and_dot_dot_first(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    (m.path / "sub").mkdir()
    (m.path / "sub" / "f").write_text("x")
    listed = subprocess.run(
        ["ls", "-a", "-f", str(m.path / "sub")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed[:2] == [".", ".."] and sorted(listed[2:]) == ["f"]
    assert os.listdir(m.path / "sub") == ["f"]


def test_rename_exchange_swaps_two_entries_atomically(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "current").write_text("new site")
    (a.path / "next").mkdir()
    (a.path / "next" / "inside").write_text("a folder")
    exchange(a.path / "current", a.path / "next")
    assert (a.path / "next").read_text() == "new site"
    assert (a.path / "current" / "inside").read_text() == "a folder"
    b = mounts.mount(metad, blockd, "dev-b")
    assert (b.path / "next").read_text() == "new site"
    assert (b.path / "current" / "inside").read_text() == "a folder"


# An access ACL (version 2): user::rw-, group::---, other::---.
_OWNER_ONLY_ACL = bytes([2, 0, 0, 0, 1, 0, 6, 0, *b"\xff" * 4, 4, 0, 0, 0, *b"\xff" * 4])
_OWNER_ONLY_ACL += bytes([0x20, 0, 0, 0, *b"\xff" * 4])


def _labels_not_supported(path: Path) -> None:
    """No SELinux label or ACL set: "not supported", as a file system without them says
    (ls -l, cp and tar then stop asking for every entry); another name missing: ENODATA."""
    for name in ("security.selinux", "system.posix_acl_access", "system.posix_acl_default"):
        with pytest.raises(OSError) as info:
            os.getxattr(path, name)
        assert info.value.errno == errno.EOPNOTSUPP, name
    with pytest.raises(OSError) as info:
        os.getxattr(path, "security.other")
    assert info.value.errno == errno.ENODATA
