"""Where a mount follows the journal from at start, and what its replica keeps then.

Kernel-free: the replica as lifecycle starts it (Replica.begin), reopened as a
restart after a kill -9 reopens it (only what a flush wrote survives).
"""

from __future__ import annotations

from pathlib import Path

from fusefs.models import Kind, Node
from fusefs.mount.replica import Replica

ROOT = Node(1, 0, "", Kind.DIRECTORY, 0o755, 0, 1, 1, 1, "", 0, owner_id=7)
MAX_BEHIND = 100


def _file(node_id: int) -> Node:
    return Node(node_id, 1, f"f{node_id}", Kind.FILE, 0o644, 3, 1, 1, 1, "", node_id, owner_id=7)


def _crashed(path: Path) -> Replica:
    """The replica as a restart finds it after a kill -9 (what was flushed)."""
    return Replica(path, drive="d")


def test_a_kill_before_the_first_change_was_applied_keeps_the_replica(tmp_path: Path) -> None:
    path = tmp_path / "replica.sqlite3"
    first = Replica(path, drive="d")
    assert first.begin(ROOT, head=0, max_behind=MAX_BEHIND) == 0  # a drive with no changes yet
    first.set_listing(1, [_file(2), _file(3)])
    first.flush()  # (the mount flushes every second; its changes' events are not here yet)

    again = _crashed(path)
    # The changes since 0 are replayed; what the replica held is kept, listing and all.
    assert again.begin(ROOT, head=5, max_behind=MAX_BEHIND) == 0
    found = again.lookup(1, "f2")
    assert found is not None and found[0].id == 2
    assert again.listed(1) and again.lookup(1, "f9") is None
    again.flush()
    assert _crashed(path).begin(ROOT, head=5, max_behind=MAX_BEHIND) == 0
    first.close()
    again.close()


def test_a_new_replica_follows_from_the_head_and_a_later_start_from_its_cursor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "replica.sqlite3"
    r = Replica(path, drive="d")
    assert r.begin(ROOT, head=40, max_behind=MAX_BEHIND) == 40
    r.put_entry(_file(2))
    r.cursor = 45  # changes applied
    r.close()
    r = Replica(path, drive="d")
    assert r.begin(ROOT, head=50, max_behind=MAX_BEHIND) == 45
    assert r.node(2) is not None and r.root().id == ROOT.id
    r.close()


def test_a_replica_too_far_behind_or_of_another_user_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "replica.sqlite3"
    r = Replica(path, drive="d")
    r.begin(ROOT, head=0, max_behind=MAX_BEHIND)
    r.put_entry(_file(2))
    r.close()
    r = Replica(path, drive="d")
    assert r.begin(ROOT, head=MAX_BEHIND + 1, max_behind=MAX_BEHIND) == MAX_BEHIND + 1
    assert r.node(2) is None and r.root().id == ROOT.id
    r.put_entry(_file(3))
    r.close()
    r = Replica(path, drive="d")
    someone = Node(1, 0, "", Kind.DIRECTORY, 0o755, 0, 1, 1, 1, "", 0, owner_id=8)
    assert r.begin(someone, head=MAX_BEHIND + 2, max_behind=MAX_BEHIND) == MAX_BEHIND + 2
    assert r.node(3) is None and r.root().owner_id == 8
    r.close()
