"""The rows of the write-back journal: what each kind holds, the table, its upgrades.

One row per change made here, in the order it was made (seq). See
PendingChange for the kinds and what each column means for each.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from fusefs.models import NO_CHANGE, AttributeChange, Kind, Ownership

AFTER_PREVIOUS = -1  # base revision: the one the commit before it in the journal makes

# Seqs are given by the journal (JournalStore: one more than the largest), not by
# AUTOINCREMENT, which wrote its sqlite_sequence page again at every commit: one page of
# the six a close wrote and synced. A seq of a row long deleted may come again after a
# restart; nothing outside a mount's memory names rows by seq.
_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    mine INTEGER NOT NULL,
    base_revision INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    mode INTEGER,
    uid INTEGER,
    gid INTEGER,
    atime_ns INTEGER,
    content TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'commit',
    target TEXT NOT NULL DEFAULT '',
    sets_mtime INTEGER NOT NULL DEFAULT 1,
    new_parent_id INTEGER NOT NULL DEFAULT 0,
    new_name TEXT NOT NULL DEFAULT '',
    flags INTEGER NOT NULL DEFAULT 0,
    data BLOB
);
"""

_INDEX = "CREATE INDEX IF NOT EXISTS commits_of_node ON commits (node_id, seq)"
SCHEMA = (
    _TABLE.format(name="commits")
    + _INDEX
    + """;
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_ids (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mac BLOB NOT NULL
) WITHOUT ROWID;
"""
)


@dataclass(frozen=True, slots=True)
class PendingChange:
    """One row of the journal, in the order it was made.

    COMMIT: a file's content as closed, to be committed as its next revision.
    CREATE / MKDIR / SYMLINK: a node made here (held has its mode and owner,
    mtime_ns its birth, target a link's). ATTRIBUTES: held and mtime_ns
    (when sets_mtime) to set on the node. DELETE: node_id's name in
    parent_id removed (flags: DIRECTORY for rmdir). RENAME: node_id moved
    from parent_id/name to new_parent_id/new_name (flags: NO_REPLACE when
    the new name was free here; EXCHANGE: RENAME_EXCHANGE, the two swapped).
    XATTR: the extended attribute new_name of node_id set to the value kept in
    the row (Journal.xattr_value), or removed (no value: inline false). LINK: a
    further name new_parent_id/new_name for node_id, shown with the entry id in
    base_revision until metad gives one.
    """

    seq: int
    node_id: int
    parent_id: int  # where it was when closed (to place a recovered copy)
    name: str
    mine: bool  # in the user's own drive (not a share)
    base_revision: int  # AFTER_PREVIOUS: on top of the previous commit of the node
    size: int
    mtime_ns: int
    held: AttributeChange  # chmod/chown/utime made while it was being edited
    content: Path | None  # the sealed content's file (None but for a commit kept in a file)
    request_id: str
    created_ns: int
    kind: str = "commit"
    target: str = ""
    sets_mtime: bool = True
    new_parent_id: int = 0
    new_name: str = ""
    flags: int = 0
    inline: bool = False  # a small commit's content is in its row (Journal.content)

    @property
    def is_create(self) -> bool:
        """Whether it makes a node (a file, folder or link)."""
        return self.kind in MADE_KINDS

    @property
    def is_commit(self) -> bool:
        return self.kind == COMMIT

    @property
    def node_kind(self) -> Kind:
        """What a row that makes a node makes."""
        return MADE_KINDS[self.kind]


COMMIT, CREATE, MKDIR, SYMLINK, ATTRIBUTES = "commit", "create", "mkdir", "symlink", "attrs"
DELETE, RENAME, XATTR, LINK = "delete", "rename", "xattr", "link"
ENTRY_KINDS = (DELETE, RENAME, LINK)  # changes of a folder's entries, made offline
DIRECTORY, NO_REPLACE, EXCHANGE = 1, 2, 4  # flags
MADE_KINDS = {CREATE: Kind.FILE, MKDIR: Kind.DIRECTORY, SYMLINK: Kind.SYMLINK}
MAKES = {kind: row_kind for row_kind, kind in MADE_KINDS.items()}
NEW_FILE_REVISION = 1  # a new file is empty at revision 1: its first commit goes on top


# What row_to_change reads: every column but the content kept in a row (data).
COLUMNS = (
    "seq, node_id, parent_id, name, mine, base_revision, size, mtime_ns, mode, uid, gid, "
    "atime_ns, content, request_id, created_ns, kind, target, sets_mtime, new_parent_id, "
    "new_name, flags, data IS NOT NULL"
)


class _RequestIds:
    """Request ids for new rows: a random half drawn once per process (and again in a
    forked child), then a count. Unique as a random id each would be, without a
    getrandom call per row (two per file closed, each letting go of the GIL)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


_request_ids = _RequestIds()


def new_row(
    kind: str,
    node_id: int,
    *,
    parent_id: int = 0,
    name: str = "",
    mine: bool = True,
    base_revision: int = 0,
    size: int = 0,
    mtime_ns: int = 0,
    held: AttributeChange = NO_CHANGE,
    content: str = "",
    created_ns: int = 0,
    target: str = "",
    sets_mtime: bool = False,
    new_parent_id: int = 0,
    new_name: str = "",
    flags: int = 0,
) -> tuple:
    """A new row's columns in order (all but seq and data), with its own request id (metad
    applies a change sent twice, a retry, once); created_ns: now unless given."""
    owner = held.owner
    return (
        node_id, parent_id, name, int(mine), base_revision, size, mtime_ns, held.mode,
        owner.uid, owner.gid, held.atime_ns, content, _request_ids.next(),
        created_ns or time.time_ns(), kind, target, int(sets_mtime), new_parent_id, new_name,
        flags,
    )  # fmt: skip


def row_to_change(row: tuple, directory: Path) -> PendingChange:
    (seq, node_id, parent_id, name, mine, base, size, mtime, mode, uid, gid, atime,
     content, request_id, created, kind, target, sets_mtime, new_parent_id, new_name,
     flags, inline) = row  # fmt: skip
    held = AttributeChange(mode, atime, Ownership(uid, gid))
    return PendingChange(
        seq, node_id, parent_id, name, bool(mine), base, size, mtime, held,
        directory / content if content else None, request_id, created, kind, target,
        bool(sets_mtime), new_parent_id, new_name, flags, bool(inline),
    )  # fmt: skip


def migrate(db: sqlite3.Connection) -> None:
    """Columns added since the first journals (a mount upgraded with rows pending)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(commits)")}
    if "target" not in columns:
        db.execute("ALTER TABLE commits ADD COLUMN target TEXT NOT NULL DEFAULT ''")
    if "sets_mtime" not in columns:
        db.execute("ALTER TABLE commits ADD COLUMN sets_mtime INTEGER NOT NULL DEFAULT 1")
    if "new_parent_id" not in columns:
        db.execute("ALTER TABLE commits ADD COLUMN new_parent_id INTEGER NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE commits ADD COLUMN new_name TEXT NOT NULL DEFAULT ''")
        db.execute("ALTER TABLE commits ADD COLUMN flags INTEGER NOT NULL DEFAULT 0")
    if "data" not in columns:
        db.execute("ALTER TABLE commits ADD COLUMN data BLOB")
    made = db.execute("SELECT sql FROM sqlite_master WHERE name = 'commits'").fetchone()[0]
    if "AUTOINCREMENT" in made:
        # The table again without it (see _TABLE), rows and all, in one transaction.
        names = ", ".join(row[1] for row in db.execute("PRAGMA table_info(commits)"))
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_TABLE.format(name="commits_rebuilt"))
            db.execute(f"INSERT INTO commits_rebuilt ({names}) SELECT {names} FROM commits")
            db.execute("DROP TABLE commits")
            db.execute("ALTER TABLE commits_rebuilt RENAME TO commits")
            db.execute(_INDEX)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
