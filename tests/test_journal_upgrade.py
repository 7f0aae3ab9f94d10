"""A journal written by an earlier mount (its table made with AUTOINCREMENT, rows still
waiting) opened by this one: the rows are kept, in order, and later rows follow them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fusefs.models import AttributeChange
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import ATTRIBUTES, COMMIT, new_row

# The table as mounts before made it (the other tables have not changed).
_EARLIER_TABLE = """
CREATE TABLE commits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id INTEGER NOT NULL, parent_id INTEGER NOT NULL, name TEXT NOT NULL,
    mine INTEGER NOT NULL, base_revision INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, mode INTEGER, uid INTEGER, gid INTEGER, atime_ns INTEGER,
    content TEXT NOT NULL, request_id TEXT NOT NULL, created_ns INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'commit', target TEXT NOT NULL DEFAULT '',
    sets_mtime INTEGER NOT NULL DEFAULT 1, new_parent_id INTEGER NOT NULL DEFAULT 0,
    new_name TEXT NOT NULL DEFAULT '', flags INTEGER NOT NULL DEFAULT 0, data BLOB
);
CREATE INDEX commits_of_node ON commits (node_id, seq);
"""


def _earlier_journal(directory: Path) -> list[str]:
    """A journal of an earlier mount holding two rows (seq 7 and 9; rows up to 12 were
    written and sent); their request ids."""
    directory.mkdir()
    db = sqlite3.connect(directory / "journal.sqlite3", isolation_level=None)
    db.executescript(_EARLIER_TABLE)
    rows = [
        (7, new_row(COMMIT, 5, parent_id=1, name="a", size=3, mtime_ns=2), b"abc"),
        (9, new_row(ATTRIBUTES, 6, mtime_ns=4, held=AttributeChange(0o600)), None),
        (12, new_row(ATTRIBUTES, 6), None),
    ]
    for seq, row, data in rows:
        db.execute(f"INSERT INTO commits VALUES ({', '.join('?' * 22)})", (seq, *row, data))
    db.execute("DELETE FROM commits WHERE seq = 12")
    db.close()
    return [row[12] for _, row, _ in rows[:2]]


def test_rows_of_an_earlier_journal_are_kept_in_order(tmp_path: Path) -> None:
    request_ids = _earlier_journal(tmp_path / "journal")
    journal = Journal(tmp_path / "journal")
    pending = journal.pending()
    assert [(r.seq, r.kind, r.request_id) for r in pending] == [
        (7, COMMIT, request_ids[0]),
        (9, ATTRIBUTES, request_ids[1]),
    ]
    assert journal.content(pending[0]) == b"abc"
    assert pending[1].held.mode == 0o600
    journal.record_attributes(8, AttributeChange(0o644), None, into_commit=False)
    later = journal.pending()[-1]
    assert later.node_id == 8 and later.seq > 9  # after the rows it found
    journal.close()

    journal = Journal(tmp_path / "journal")  # and again: nothing more to upgrade
    assert [r.seq for r in journal.pending()] == [7, 9, later.seq]
    journal.close()
    db = sqlite3.connect(tmp_path / "journal" / "journal.sqlite3")
    made = db.execute("SELECT sql FROM sqlite_master WHERE name = 'commits'").fetchone()[0]
    db.close()
    assert "AUTOINCREMENT" not in made
