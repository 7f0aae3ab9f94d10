"""Files and directories through a real FUSE mount: bytes and errno as a program sees them."""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
from pathlib import Path

import pytest

from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024


@pytest.mark.both_backends
@pytest.mark.parametrize("size", [0, 1, MiB + 1, 100 * MiB])
def test_file_reads_back_identical(mount, size: int) -> None:
    path = mount.path / f"f{size}"
    expected = write_random(path, size, seed=size)
    assert path.stat().st_size == size
    assert sha256_of(path) == expected


def test_one_gib_file_reads_back_identical(mount) -> None:
    path = mount.path / "big"
    expected = write_random(path, 1024 * MiB, seed=7)
    assert sha256_of(path) == expected


def test_copied_tree_compares_equal(mount, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(40):
        d = src / f"dir{i:02d}" / "sub"
        d.mkdir(parents=True)
        for j in range(50):
            (d / f"file{j}.txt").write_bytes(os.urandom((i * 50 + j) % 3000))
    (src / "link").symlink_to("dir00/sub/file1.txt")
    shutil.copytree(src, mount.path / "tree", symlinks=True)
    cmp = filecmp.dircmp(src, mount.path / "tree")
    _assert_same_tree(cmp)
    assert os.readlink(mount.path / "tree" / "link") == "dir00/sub/file1.txt"
    assert (mount.path / "tree" / "link").read_bytes() == (src / "dir00/sub/file1.txt").read_bytes()


def _assert_same_tree(cmp: filecmp.dircmp) -> None:
    assert not cmp.left_only and not cmp.right_only, (cmp.left_only, cmp.right_only)
    _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    for sub in cmp.subdirs.values():
        _assert_same_tree(sub)


@pytest.mark.both_backends
def test_overwrite_append_truncate_and_random_writes(mount) -> None:
    path = mount.path / "edit.bin"
    path.write_bytes(b"a" * 3 * MiB)
    with open(path, "r+b") as f:
        f.seek(MiB)
        f.write(b"XYZ")
    with open(path, "ab") as f:
        f.write(b"tail")
    expected = b"a" * MiB + b"XYZ" + b"a" * (2 * MiB - 3) + b"tail"
    assert path.read_bytes() == expected
    os.truncate(path, 10)
    assert path.read_bytes() == b"a" * 10
    os.truncate(path, 20)
    assert path.read_bytes() == b"a" * 10 + b"\0" * 10
    path.write_bytes(b"new")
    assert path.read_bytes() == b"new"


def test_two_descriptors_see_each_others_writes(mount) -> None:
    path = mount.path / "shared.txt"
    with open(path, "w+b") as a, open(path, "r+b") as b:
        a.write(b"hello")
        a.flush()
        assert b.read() == b"hello"


def test_directories_rename_and_delete(mount) -> None:
    root = mount.path
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    os.rename(root / "a", root / "c")
    assert (root / "c" / "b" / "f").read_text() == "x"
    assert not (root / "a").exists()
    (root / "g").write_text("replaced")
    (root / "h").write_text("winner")
    os.rename(root / "h", root / "g")  # over an existing file: atomic replace
    assert (root / "g").read_text() == "winner"
    assert not (root / "h").exists()
    os.unlink(root / "c" / "b" / "f")
    os.rmdir(root / "c" / "b")
    assert sorted(os.listdir(root / "c")) == []
    os.chmod(root / "g", 0o600)
    assert (root / "g").stat().st_mode & 0o777 == 0o600
    os.utime(root / "g", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert (root / "g").stat().st_mtime_ns == 1_600_000_000_000_000_000


def test_large_directory_lists_every_entry(mount) -> None:
    d = mount.path / "many"
    d.mkdir()
    names = {f"n{i:05d}" for i in range(2500)}
    for name in names:
        (d / name).touch()
    assert set(os.listdir(d)) == names


def _errno_of(fn, *args) -> int:
    with pytest.raises(OSError) as info:
        fn(*args)
    return info.value.errno


def test_user_errors_are_the_right_errno(mount) -> None:
    root = mount.path
    (root / "dir").mkdir()
    (root / "dir" / "inner").write_text("x")
    (root / "file").write_text("x")
    assert _errno_of(open, root / "missing") == errno.ENOENT
    assert _errno_of(os.mkdir, root / "dir") == errno.EEXIST
    assert _errno_of(os.rmdir, root / "dir") == errno.ENOTEMPTY
    assert _errno_of(os.listdir, root / "file") == errno.ENOTDIR
    assert _errno_of(open, root / "file" / "x") == errno.ENOTDIR
    assert _errno_of(os.unlink, root / "dir") == errno.EISDIR
    assert _errno_of(os.rmdir, root / "file") == errno.ENOTDIR
    assert _errno_of(open, root / ("n" * 256), "w") == errno.ENAMETOOLONG
    assert _errno_of(os.mkdir, root / ("n" * 256)) == errno.ENAMETOOLONG
    assert _errno_of(os.rename, root / "dir", root / "dir" / "sub") == errno.EINVAL
    assert _errno_of(os.rename, root / "file", root / "dir") == errno.EISDIR
    (root / ("n" * 255)).write_text("ok")  # exactly the limit is fine
    assert (root / ("n" * 255)).read_text() == "ok"
    # The mount is still healthy after all of that.
    assert sorted(os.listdir(root)) == sorted(["dir", "file", "n" * 255])


def test_unlinked_open_file_stays_readable_and_writable(mount) -> None:
    path = mount.path / "tmpfile"
    path.write_bytes(b"payload" * 1000)
    with open(path, "r+b") as f:
        os.unlink(path)
        assert not path.exists()
        assert f.read() == b"payload" * 1000
        f.write(b"more")
    assert os.listdir(mount.path) == []
