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
