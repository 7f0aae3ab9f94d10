"""Outcomes that land in another order than the rows were taken, over a real journal."""

from __future__ import annotations

from pathlib import Path

from fusefs.models import AttributeChange, Ownership
from fusefs.mount.journal import Journal


def test_a_commit_moved_to_the_saved_file_while_on_its_way_leaves_no_stale_row(
    tmp_path: Path,
) -> None:
    """An editor's save made offline: write .swp, rename it over report.txt. All three rows
    go in one batch; if the save's outcome is recorded before the commit's, the commit's
    row was moved to report.txt meanwhile and must not stay as its pending content (an
    open(2) of report.txt would read a row that is gone: EIO)."""
    journal = Journal(tmp_path)
    journal.add_ids(1000, 10)
    report, root = 7, 1
    swp = journal.take_id()
    assert swp is not None
    journal.record_create(
        node_id=swp, parent_id=root, name=".report.swp", mode=0o644,
        owner=Ownership(0, 0), mtime_ns=1,
    )  # fmt: skip
    journal.seal(
        node_id=swp, parent_id=root, name=".report.swp", mine=True, base_revision=0,
        size=9, mtime_ns=2, held=AttributeChange(), data=b"report v2",
    )  # fmt: skip
    journal.record_rename(swp, root, ".report.swp", root, "report.txt", no_replace=False)
    create, commit, rename = journal.take(100, 1 << 30)
    with journal.together():
        journal.created(create)
        journal.saved_into(swp, report, revision=5)  # the save landed first
        journal.applied(rename)
        journal.committed(commit, revision=2)
    assert journal.latest(report) is None and journal.latest(swp) is None
    assert journal.pending() == []
    journal.close()
    again = Journal(tmp_path)  # and so it stays after a restart
    assert again.pending() == [] and again.latest(report) is None
    again.close()


def _three_files(journal: Journal) -> list:
    journal.add_ids(1000, 10)
    for n in range(3):
        node = journal.take_id()
        assert node is not None
        journal.record_create(
            node_id=node, parent_id=1, name=f"f{n}", mode=0o644, owner=Ownership(0, 0),
            mtime_ns=1, later=True,
        )  # fmt: skip
        journal.seal(
            node_id=node, parent_id=1, name=f"f{n}", mine=True, base_revision=0,
            size=1, mtime_ns=2, held=AttributeChange(), data=b"x",
        )  # fmt: skip
    rows = journal.take(100, 1 << 30)
    assert len(rows) == 6
    return rows


def _land(journal: Journal, rows: list) -> None:
    for row in rows:
        if row.is_create:
            journal.created(row)
        else:
            journal.committed(row, revision=1)


def test_rows_a_batch_of_landings_removed_are_gone_at_once_and_after_a_restart(
    tmp_path: Path,
) -> None:
    """A batch's landings remove their rows together: what is read meanwhile (the next
    rows to take, a node's rows) never shows a row already landed."""
    journal = Journal(tmp_path)
    rows = _three_files(journal)
    with journal.together():
        _land(journal, rows[:4])
        assert [r.seq for r in journal.pending()] == [r.seq for r in rows[4:]]
        assert journal.totals()[0] == 2
        _land(journal, rows[4:])
    assert journal.pending() == [] and journal.totals() == (0, 0)
    journal.close()
    again = Journal(tmp_path)
    assert again.pending() == [] and again.totals() == (0, 0)
    again.close()


def test_a_batch_of_landings_that_cannot_commit_keeps_every_row(tmp_path: Path) -> None:
    """Landings whose recording fails (the disk full) leave every row in place: they are
    sent again, nothing is lost."""
    journal = Journal(tmp_path)
    rows = _three_files(journal)
    try:
        with journal.together():
            _land(journal, rows)
            raise OSError(28, "no space")
    except OSError:
        pass
    assert [r.seq for r in journal.pending()] == [r.seq for r in rows]
    assert journal.totals() == (6, 3)
    assert all(journal.latest(r.node_id) is not None for r in rows if r.is_commit)
    journal.close()
    again = Journal(tmp_path)
    assert [r.seq for r in again.pending()] == [r.seq for r in rows]
    again.close()
