"""The replica's in-memory copies stay within their bound and answer as the table does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fusefs.models import Kind, Node
from fusefs.mount import replica as replica_module
from fusefs.mount.replica import Replica


def _node(node_id: int, parent_id: int = 1) -> Node:
    return Node(node_id, parent_id, f"f{node_id}", Kind.FILE, 0o644, 0, 1, 1, 1, "", node_id)


def test_nodes_and_entries_kept_in_memory_stay_bounded_and_right(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(replica_module, "_NODES_KEPT", 10)
    r = Replica(tmp_path / "replica.sqlite3", drive="test")
    for node_id in range(2, 40):
        r.put_entry(_node(node_id))
        r.put_entry(_node(node_id))  # written again: still one entry
        assert len(r._nodes) <= 10
        assert r._entries_kept == sum(len(names) for names in r._entries.values()) <= 10
    for node_id in range(2, 40):  # what memory let go is read from the table
        found = r.lookup(1, f"f{node_id}")
        assert found is not None and found[0].id == node_id
        assert r.node(node_id).name == f"f{node_id}"
    r.remove_entry(1, "f39")
    assert r.lookup(1, "f39") is None
    assert r._entries_kept == sum(len(names) for names in r._entries.values())
    r.close()


def test_a_full_memory_lets_the_oldest_go_and_keeps_the_newest(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(replica_module, "_NODES_KEPT", 8)
    r = Replica(tmp_path / "replica.sqlite3", drive="test")
    for folder in range(100, 104):  # four folders of two files each: memory is full
        r.set_listing(folder, [_node(folder * 10 + i, parent_id=folder) for i in range(2)])
    assert r._entries_kept == len(r._nodes) == 8
    r.set_listing(200, [_node(2000, parent_id=200)])  # one more
    # The oldest folder and nodes went, not everything: the newest answer from memory.
    assert 100 not in r._entries and 1000 not in r._nodes
    assert {103, 200} <= set(r._entries) and {1030, 1031, 2000} <= set(r._nodes)
    assert 103 in r._complete and 200 in r._complete
    # What went is still answered, from the table.
    found = r.lookup(100, "f1000")
    assert found is not None and found[0].id == 1000
    r.close()


def test_a_listing_from_memory_is_the_tables_also_after_a_reopen(tmp_path: Path, monkeypatch):
    r = Replica(tmp_path / "replica.sqlite3", drive="test")
    r.set_listing(10, [_node(node_id, parent_id=10) for node_id in (13, 11, 12)])
    r.put_entry(_node(20, parent_id=10))
    r.put_entry(replace(_node(30, parent_id=50), parent_id=10, name="link", entry_id=5))
    r.put_entry(_node(30, parent_id=50))  # the node's own name is in another folder
    r.mark_stale(12)  # listed as last known
    r.remove_entry(10, "f11")
    r.touch(13, 99)
    r.flush()

    def both() -> tuple[list[Node], list[Node]]:
        assert r._kept_entries(10) is not None  # (answered from memory)
        kept = [r.entries(10, after, 2) for after in (0, 5, 12, 20)]
        monkeypatch.setattr(replica_module, "_LISTED_FROM_MEMORY", 0)  # the table's answer
        table = [r.entries(10, after, 2) for after in (0, 5, 12, 20)]
        monkeypatch.undo()
        return kept, table

    kept, table = both()
    assert kept == table
    assert [n.name for n in kept[0] + kept[2]] == ["link", "f12", "f13", "f20"]
    assert kept[0][0].entry_id == 5 and kept[0][0].parent_id == 10 and kept[3] == []
    r.close()
    r = Replica(tmp_path / "replica.sqlite3", drive="test")  # a remount: read back whole
    assert r._all_entries
    assert both() == (kept, table)
    r.close()


def test_a_node_put_is_answered_from_memory_as_its_row_answers_after_a_reopen(
    tmp_path: Path,
) -> None:
    # put keeps the node it was given (not one read back from its row): the two must agree.
    r = Replica(tmp_path / "replica.sqlite3", drive="test")
    given = replace(
        _node(7), uid=1001, gid=100, rdev=3, atime_ns=5, nlink=2, xattrs=4, owner_id=9, entry_id=7
    )
    r.put(replace(given, entry_id=0))  # an entry id left unset is the node's own
    r.put(_node(8))
    r.put(replace(_node(8), size=1, change_sequence=1))  # older than the row: not taken
    in_memory = {node_id: r.node(node_id) for node_id in (7, 8)}
    assert in_memory[7] == given and in_memory[8] == replace(_node(8), entry_id=8)
    r.flush()
    r.close()
    again = Replica(tmp_path / "replica.sqlite3", drive="test")
    again._nodes.clear()  # read from the table, not from what the reopen warmed
    assert {node_id: again.node(node_id) for node_id in (7, 8)} == in_memory
    again.close()
