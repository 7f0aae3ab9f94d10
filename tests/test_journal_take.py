"""What Journal.take hands the synchronizer is the row as it stands now, over a real
journal: rows changed after they were written (attributes joined into a commit, a commit
rebased on the revision the one before it made) go with the change."""

from __future__ import annotations

from pathlib import Path

from fusefs.models import AttributeChange, Ownership
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import AFTER_PREVIOUS

ROOT = 1


def _journal(tmp_path: Path) -> Journal:
    journal = Journal(tmp_path)
    journal.add_ids(1000, 10)
    return journal


def _made(journal: Journal, name: str) -> int:
    node_id = journal.take_id()
    assert node_id is not None
    journal.record_create(
        node_id=node_id, parent_id=ROOT, name=name, mode=0o644, owner=Ownership(0, 0),
        mtime_ns=1, later=True,
    )  # fmt: skip
    return node_id


def _seal(journal: Journal, node_id: int, data: bytes) -> None:
    journal.seal(
        node_id=node_id, parent_id=ROOT, name="f", mine=True, base_revision=3,
        size=len(data), mtime_ns=2, held=AttributeChange(), data=data,
    )  # fmt: skip


def test_attributes_set_after_a_close_go_with_its_commit(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    node_id = _made(journal, "a")
    _seal(journal, node_id, b"content")
    journal.record_attributes(node_id, AttributeChange(0o600), 5, into_commit=True)
    (commit,) = [row for row in journal.take(10, 10**9) if row.is_commit]
    assert (commit.held.mode, commit.mtime_ns) == (0o600, 5)
    journal.close()


def test_a_commit_behind_one_on_its_way_goes_on_the_revision_that_one_made(
    tmp_path: Path,
) -> None:
    journal = _journal(tmp_path)
    node_id = 500  # a file the drive has (at revision 3)
    _seal(journal, node_id, b"first")
    (first,) = journal.take(10, 10**9)
    _seal(journal, node_id, b"second")  # closed again while the first is on its way
    assert journal.take(10, 10**9) == []  # (it waits for the first)
    assert journal.latest(node_id).base_revision == AFTER_PREVIOUS
    journal.committed(first, 4)
    (second,) = journal.take(10, 10**9)
    assert (second.base_revision, journal.content(second)) == (4, b"second")
    journal.close()
