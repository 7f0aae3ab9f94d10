"""A file's row written with its first close (record_create later), over a real journal:
its place among the rows, and nothing lost or sent twice by the wait."""

from __future__ import annotations

from pathlib import Path

from fusefs.models import AttributeChange, Ownership
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import COMMIT, CREATE, RENAME

ROOT = 1


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
        node_id=node_id, parent_id=ROOT, name="f", mine=True, base_revision=0,
        size=len(data), mtime_ns=2, held=AttributeChange(), data=data,
    )  # fmt: skip


def _kinds(journal: Journal) -> list[tuple[int, str]]:
    return [(row.node_id, row.kind) for row in journal.pending()]


def test_a_file_made_later_keeps_its_place_among_the_rows(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.add_ids(1000, 10)
    first = _made(journal, "a")
    second = _made(journal, "b")
    assert journal.creating(first) and journal.pending() == []  # in memory until written
    assert journal.take(100, 1 << 30) == []  # nothing to send before its close
    _seal(journal, second, b"b's content")  # b closes first: a's row still goes before
    assert _kinds(journal) == [(first, CREATE), (second, CREATE), (second, COMMIT)]
    third = _made(journal, "c")
    journal.record_rename(second, ROOT, "b", ROOT, "b2", no_replace=True)  # any row writes c's
    assert _kinds(journal)[-2:] == [(third, CREATE), (second, RENAME)]
    seqs = [row.seq for row in journal.pending()]
    assert seqs == sorted(seqs)
    journal.close()
    again = Journal(tmp_path)  # committed, in that order, for the next mount
    assert [row.seq for row in again.pending()] == seqs
    again.close()


def test_a_file_closed_empty_is_written_and_one_removed_unclosed_never_is(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.add_ids(1000, 10)
    temporary = _made(journal, "tmp")
    assert journal.cancel(temporary)  # unlinked before its close: nothing to send
    assert not journal.creating(temporary)
    touched = _made(journal, "touched")
    assert journal.write_made() and not journal.write_made()
    assert _kinds(journal) == [(touched, CREATE)]
    journal.close()
    again = Journal(tmp_path)
    assert _kinds(again) == [(touched, CREATE)] and again.creating(touched)
    assert again.take_id() not in (temporary, touched)  # spent on disk with its row
    again.close()
