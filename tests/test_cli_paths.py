"""PATH arguments: drive paths, and local paths inside a mounted drivefs (no daemons)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusefs import errors
from fusefs.cli.paths import drive_path, drivefs_mountpoints

MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
36 25 0:43 / /home/me/My\\040Drive rw,relatime shared:90 - fuse.drivefs drivefs rw,user_id=0
37 25 0:44 / /home/me/other rw,relatime - fuse.sshfs me@host: rw
38 36 0:45 / /home/me/My\\040Drive/inner rw,relatime - fuse.drivefs drivefs rw
39 25 0:46 / /mnt/plain rw,relatime master:1 - fuse drivefs rw
"""


def test_mountpoints_come_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert drivefs_mountpoints(info) == [
        "/home/me/My Drive/inner",  # longest first: the innermost mount wins
        "/home/me/My Drive",
        "/mnt/plain",
    ]
    assert drivefs_mountpoints(tmp_path / "missing") == []


MOUNTS = ["/home/me/Drive"]


@pytest.mark.parametrize(
    ("text", "cwd", "expected"),
    [
        ("docs/plan.txt", "/tmp", "docs/plan.txt"),
        ("/docs/plan.txt", "/tmp", "docs/plan.txt"),  # not inside a mount: a drive path
        ("", "/tmp", ""),
        ("/", "/tmp", ""),
        ("docs//./plan.txt/", "/tmp", "docs/plan.txt"),
        ("Shared with me/plan.txt", "/tmp", "Shared with me/plan.txt"),
        ("/home/me/Drive/docs/plan.txt", "/tmp", "docs/plan.txt"),
        ("/home/me/Drive", "/tmp", ""),
        ("/home/me/Drive2/x", "/tmp", "home/me/Drive2/x"),  # a sibling, not the mount
        ("plan.txt", "/home/me/Drive/docs", "docs/plan.txt"),  # relative to a folder in it
        ("", "/home/me/Drive/docs", "docs"),
        ("../notes", "/home/me/Drive/docs", "notes"),
        ("/home/me/Drive/docs/x", "/home/me/Drive/docs", "docs/x"),
    ],
)
def test_drive_paths(text: str, cwd: str, expected: str) -> None:
    assert drive_path(text, MOUNTS, cwd) == expected


def test_paths_leaving_the_drive_are_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="outside the drive"):
        drive_path("../../etc", MOUNTS, "/home/me/Drive/docs")
    with pytest.raises(errors.InvalidArgument, match=r"\.\."):
        drive_path("docs/../../x", MOUNTS, "/tmp")
