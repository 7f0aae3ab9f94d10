"""The environment the mount program is started with: glibc's huge-page heap asked for,
without losing a tunable the user set (protos.runtime.huge_page_heap)."""

from __future__ import annotations

from pathlib import Path

from protos.runtime import huge_page_heap


def test_asks_for_the_huge_page_heap_and_keeps_the_rest() -> None:
    env = huge_page_heap({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["PATH"] == "/bin"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert huge_page_heap({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_a_setting_of_the_user_wins() -> None:
    """Someone who turned it off (hugetlb=0), or on another way, is not overruled."""
    env = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert huge_page_heap(env) == env


def test_drive_mount_starts_the_mount_program_with_it(mount) -> None:
    environ = Path(f"/proc/{mount.process.pid}/environ").read_bytes().split(b"\0")
    tunables = [e for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
    assert tunables and b"glibc.malloc.hugetlb=" in tunables[0]
