"""The journal's WAL is copied back into its database by a thread of its own
(checkpoints.py), so close(2) never waits for a checkpoint. Over real journal files."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

from fusefs.models import AttributeChange, Ownership
from fusefs.mount.checkpoints import BOUND_PAGES, EVERY_COMMITS
from fusefs.mount.journal import Journal
from tests.waiting import eventually


def _rows_in_database_file(directory: Path, copy: Path) -> int:
    """Rows the database file holds by itself (its WAL left out): what was checkpointed."""
    shutil.copyfile(directory / "journal.sqlite3", copy)
    try:
        db = sqlite3.connect(copy)
        try:
            return db.execute("SELECT COUNT(*) FROM commits").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return -1  # copied in the middle of a checkpoint: look again
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def test_closed_files_reach_the_database_file_while_the_writer_never_checkpoints(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal")
    journal.add_ids(1000, 1000)
    made = EVERY_COMMITS  # (two commits each) some 2,000 WAL pages: far below the writer's own
    for i in range(made):
        node_id = journal.take_id()
        assert node_id is not None
        journal.record_create(
            node_id=node_id, parent_id=1, name=f"f{i}", mode=0o644,
            owner=Ownership(0, 0), mtime_ns=1,
        )  # fmt: skip
        journal.seal(
            node_id=node_id, parent_id=1, name=f"f{i}", mine=True, base_revision=0,
            size=4096, mtime_ns=1, held=AttributeChange(), data=bytes(4096),
        )  # fmt: skip
    wal_pages = (tmp_path / "journal" / "journal.sqlite3-wal").stat().st_size // 4096
    assert wal_pages < BOUND_PAGES
    copy = tmp_path / "copy.sqlite3"
    eventually(lambda: _rows_in_database_file(tmp_path / "journal", copy) >= made, 10)
    journal.close()
    assert not [t for t in threading.enumerate() if t.name == "checkpoints"]
    # Reopened (a restart): everything is there, and more can be closed.
    journal = Journal(tmp_path / "journal")
    assert len(journal.pending()) == 2 * made
    journal.close()
