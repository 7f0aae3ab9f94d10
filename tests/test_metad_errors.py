"""metad over real gRPC: every domain error mapped to its status code and reason.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file, or PostgreSQL with
DRIVEFS_TEST_METADATA=postgresql; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log. The Drive helper and its
`drive` fixture: tests/metad_drive.py.
"""

from __future__ import annotations

import pytest

from tests.metad_drive import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    Drive,
    drive_fixture,  # noqa: F401 - the fixture "drive"
    expect_error,
)

# -- error mapping -----------------------------------------------------------------------------


def test_not_found(drive: Drive) -> None:
    root = drive.root()
    d = drive.mkdir(root.id, "d")
    f = drive.create(root.id, "f")
    drive.delete(root.id, "f")
    for node in (999_999, f.id):  # unknown, deleted
        expect_error(NOT_FOUND, "not-found", drive.stat, node)
        expect_error(NOT_FOUND, "not-found", drive.ls, node)
        expect_error(NOT_FOUND, "not-found", drive.lookup, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.create, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.mkdir, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.symlink, node, "x", "t")
        expect_error(NOT_FOUND, "not-found", drive.revision, node)
        expect_error(NOT_FOUND, "not-found", drive.revisions, node)
        expect_error(NOT_FOUND, "not-found", drive.rename, node, "x", root.id, "y")
        expect_error(NOT_FOUND, "not-found", drive.rename, root.id, "d", node, "y")
        expect_error(NOT_FOUND, "not-found", drive.delete, node, "x")
    expect_error(NOT_FOUND, "not-found", drive.lookup, root.id, "f")
    expect_error(NOT_FOUND, "not-found", drive.lookup, d.id, "nothing")
    expect_error(NOT_FOUND, "not-found", drive.delete, root.id, "f")
    expect_error(NOT_FOUND, "not-found", drive.rename, root.id, "f", d.id, "g")


def test_already_exists(drive: Drive) -> None:
    root = drive.root()
    drive.mkdir(root.id, "dir")
    drive.create(root.id, "file")
    drive.symlink(root.id, "link", "file")
    for taken in ("dir", "file", "link"):
        expect_error(ALREADY_EXISTS, "already-exists", drive.mkdir, root.id, taken)
        expect_error(ALREADY_EXISTS, "already-exists", drive.create, root.id, taken)
        expect_error(ALREADY_EXISTS, "already-exists", drive.symlink, root.id, taken, "t")
    expect_error(
        ALREADY_EXISTS, "already-exists", drive.rename, root.id, "file", root.id, "link", True
    )
    assert drive.names(root.id) == ["dir", "file", "link"]


BAD_NAMES = [
    ("", "invalid-name"),
    (".", "invalid-name"),
    ("..", "invalid-name"),
    ("a/b", "invalid-name"),
    ("a\0b", "invalid-name"),
    ("x" * 256, "name-too-long"),
    ("é" * 128, "name-too-long"),  # 256 bytes of UTF-8
    ("\U0010feff" * 256, "name-too-long"),  # 256 raw bytes (protos.names)
    ("caf\U0010fec3\U0010fea9", "invalid-name"),  # "café" spelled as escapes
]


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
def test_bad_names_are_invalid_arguments(drive: Drive, name: str, reason: str) -> None:
    root = drive.root()
    drive.create(root.id, "ok")
    expect_error(INVALID_ARGUMENT, reason, drive.mkdir, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.create, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.symlink, root.id, name, "t")
    expect_error(INVALID_ARGUMENT, reason, drive.lookup, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.rename, root.id, "ok", root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.delete, root.id, name)
    assert drive.names(root.id) == ["ok"]


def test_longest_names_are_accepted(drive: Drive) -> None:
    root = drive.root()
    for name in ("x" * 255, "é" * 127 + "x", "...", "\U0010feff" * 255):
        assert drive.create(root.id, name).name == name


def test_bad_symlink_target(drive: Drive) -> None:
    root = drive.root()
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", "")
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", "a\0b")
    spelled = "\U0010fec3\U0010fea9"  # "é" as escapes: another spelling of the same bytes
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", spelled)


def test_not_a_directory(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "file")
    link = drive.symlink(root.id, "link", "file")
    drive.mkdir(root.id, "dir")
    for node in (file.id, link.id):
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.lookup, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.ls, node)
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.mkdir, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.create, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.symlink, node, "x", "t")
        expect_error(
            FAILED_PRECONDITION, "not-a-directory", drive.rename, root.id, "dir", node, "x"
        )
    for name in ("file", "link"):
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.delete, root.id, name, True)
        expect_error(
            FAILED_PRECONDITION, "not-a-directory", drive.rename, root.id, "dir", root.id, name
        )
    assert drive.names(root.id) == ["file", "link", "dir"]


def test_is_a_directory(drive: Drive) -> None:
    root = drive.root()
    drive.mkdir(root.id, "dir")
    drive.create(root.id, "file")
    drive.symlink(root.id, "link", "dir")
    expect_error(FAILED_PRECONDITION, "is-a-directory", drive.delete, root.id, "dir", False)
    for name in ("file", "link"):
        expect_error(
            FAILED_PRECONDITION, "is-a-directory", drive.rename, root.id, name, root.id, "dir"
        )
    assert drive.names(root.id) == ["dir", "file", "link"]


def test_directory_not_empty(drive: Drive) -> None:
    root = drive.root()
    full = drive.mkdir(root.id, "full")
    drive.create(full.id, "inside")
    drive.mkdir(root.id, "other")
    expect_error(FAILED_PRECONDITION, "directory-not-empty", drive.delete, root.id, "full", True)
    expect_error(
        FAILED_PRECONDITION, "directory-not-empty", drive.rename, root.id, "other", root.id, "full"
    )
    assert drive.names(full.id) == ["inside"]
    assert drive.lookup(root.id, "other").name == "other"


def test_a_directory_cannot_move_into_its_own_subtree(drive: Drive) -> None:
    root = drive.root()
    a = drive.mkdir(root.id, "a")
    b = drive.mkdir(a.id, "b")
    c = drive.mkdir(b.id, "c")
    for target in (a.id, b.id, c.id):
        expect_error(FAILED_PRECONDITION, "invalid-move", drive.rename, root.id, "a", target, "x")
    expect_error(FAILED_PRECONDITION, "invalid-move", drive.rename, a.id, "b", c.id, "b")
    # Moving up, or sideways next to itself, is fine; so is a file into a sibling directory.
    assert drive.rename(b.id, "c", root.id, "c").node.parent_id == root.id
    drive.create(a.id, "f")
    assert drive.rename(a.id, "f", b.id, "f").node.parent_id == b.id
