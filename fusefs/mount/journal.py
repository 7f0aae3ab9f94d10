"""The write-back journal: content that close() confirmed, waiting to be committed.

close(2) returns once a file's new content and its journal row are durable on
local disk (content fsynced, moved into the journal folder, the row committed
with SQLite's full sync); the synchronizer sends it to the servers later, in
order, in batches. A kill -9 of the mount, a reboot or a server outage loses
nothing close confirmed: the next mount finds the rows and sends them.

Owns the rows, the sealed content files and the base revision each commit is
made on. A file closed again before its previous content was sent replaces
that content (only the newest is committed); one closed while its previous
content is on its way is committed on top of the revision that one makes.
Also keeps the upload receipts blockd gave this device (they never expire), so
an upload interrupted by a crash resumes with the blocks already stored.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fusefs.models import AttributeChange, Ownership

log = logging.getLogger(__name__)

AFTER_PREVIOUS = -1  # base revision: the one the commit before it in the journal makes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
    kind TEXT NOT NULL DEFAULT 'commit'
);
CREATE INDEX IF NOT EXISTS commits_of_node ON commits (node_id, seq);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_ids (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mac BLOB NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """One row of the journal: a file's content as closed, to be committed as its next
    revision (kind COMMIT), or a new empty file made here (kind CREATE: held has its
    mode and owner, mtime_ns its birth)."""

    seq: int
    node_id: int
    parent_id: int  # where it was when closed (to place a recovered copy)
    name: str
    mine: bool  # in the user's own drive (not a share)
    base_revision: int  # AFTER_PREVIOUS: on top of the previous commit of the node
    size: int
    mtime_ns: int
    held: AttributeChange  # chmod/chown/utime made while it was being edited
    content: Path | None  # the sealed content (None for a create)
    request_id: str
    created_ns: int
    kind: str = "commit"

    @property
    def is_create(self) -> bool:
        return self.kind == CREATE


COMMIT, CREATE = "commit", "create"
NEW_FILE_REVISION = 1  # a new file is empty at revision 1: its first commit goes on top


def _row_to_commit(row: tuple, directory: Path) -> PendingCommit:
    (seq, node_id, parent_id, name, mine, base, size, mtime, mode, uid, gid, atime,
     content, request_id, created, kind) = row  # fmt: skip
    held = AttributeChange(mode, atime, Ownership(uid, gid))
    return PendingCommit(
        seq, node_id, parent_id, name, bool(mine), base, size, mtime, held,
        directory / content if content else None, request_id, created, kind,
    )  # fmt: skip


class Journal:
    """Rows and content files under one folder.

    Sealing runs in worker threads (it waits for the disk); every use of the
    database and of the indexes holds one lock.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._content = directory / "content"
        self._content.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self._db = sqlite3.connect(
            directory / "journal.sqlite3", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # Rows a program was promised are committed with FULL (on disk when it returns,
        # see _durably); the rest (a row sent, ids) may be redone after a crash: NORMAL.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._in_flight: dict[int, int] = {}  # seq -> node id, of rows being sent
        self._committed: dict[int, int] = {}  # node id -> revision our last commit made
        self._discarded: set[int] = set()  # nodes we deleted: their commits are moot
        self._latest: dict[int, PendingCommit] = {}
        self._creates: dict[int, PendingCommit] = {}
        self._ids = [
            (first, last)
            for first, last in self._db.execute(
                "SELECT next_id, last_id FROM node_ids ORDER BY next_id"
            )
        ]
        self._remove_orphans()
        self._index()

    def close(self) -> None:
        self._db.close()

    def claim(self, owner: str) -> None:
        """Binds the journal to one user of one drive (owner: any text naming them).

        Rows and reserved ids are that user's: a journal holding unsent rows of
        another refuses (ValueError), one with none starts afresh for this one.
        """
        with self._mutex:
            row = self._db.execute("SELECT value FROM facts WHERE key = 'owner'").fetchone()
            if row is not None and row[0] == owner:
                return
            files = self._db.execute("SELECT COUNT(*) FROM commits").fetchone()[0]
            if row is not None and files:
                raise ValueError(f"it holds {files} change(s) of another user, not sent yet")
            self._db.execute("DELETE FROM node_ids")
            self._db.execute("DELETE FROM receipts")
            self._ids.clear()
            self._db.execute("INSERT OR REPLACE INTO facts VALUES ('owner', ?)", (owner,))

    def _durably(self, statement: str) -> None:
        """BEGIN / COMMIT / ROLLBACK of a transaction a program is promised: its COMMIT
        waits for the disk (FULL), and NORMAL is back once it ends."""
        if statement.startswith("BEGIN"):
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(statement)
            return
        try:
            self._db.execute(statement)
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")

    def _remove_orphans(self) -> None:
        """Content moved in by a seal whose row never committed (a crash between the two)."""
        named = {row[0] for row in self._db.execute("SELECT content FROM commits")}
        for path in self._content.iterdir():
            if f"content/{path.name}" not in named:
                path.unlink(missing_ok=True)

    # --- what is pending ----------------------------------------------------

    def _select(
        self, where: str = "", args: tuple = (), limit: int | None = None
    ) -> list[PendingCommit]:
        query = f"SELECT * FROM commits {where} ORDER BY seq"
        if limit is not None:
            query, args = query + " LIMIT ?", (*args, limit)
        rows = self._db.execute(query, args).fetchall()
        return [_row_to_commit(r, self.directory) for r in rows]

    def pending(self) -> list[PendingCommit]:
        with self._mutex:
            return self._select()

    def latest(self, node_id: int) -> PendingCommit | None:
        """The newest content closed for a node and not committed yet (asked on every stat)."""
        return self._latest.get(node_id)

    def _index(self) -> None:
        with self._mutex:
            rows = self._select()
            self._latest = {c.node_id: c for c in rows if not c.is_create}
            self._creates = {c.node_id: c for c in rows if c.is_create}

    def _reindex(self, *node_ids: int) -> None:
        """The indexes of these nodes, from their rows (cheap: by node)."""
        for node_id in node_ids:
            rows = self._select("WHERE node_id = ?", (node_id,))
            commits = [r for r in rows if not r.is_create]
            creates = [r for r in rows if r.is_create]
            if commits:
                self._latest[node_id] = commits[-1]
            else:
                self._latest.pop(node_id, None)
            if creates:
                self._creates[node_id] = creates[-1]
            else:
                self._creates.pop(node_id, None)

    def creating(self, node_id: int) -> bool:
        """Whether the node was made here and metad has not got it yet."""
        return node_id in self._creates

    def creating_in(self, dir_id: int) -> list[int]:
        return [c.node_id for c in self._creates.values() if c.parent_id == dir_id]

    def pending_for(self, node_id: int) -> bool:
        """Whether any change of the node waits in the journal."""
        return node_id in self._latest or node_id in self._creates

    def totals(self) -> tuple[int, int]:
        """(files, bytes) waiting."""
        with self._mutex:
            query = "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM commits"
            row = self._db.execute(query).fetchone()
            return row[0], row[1]

    def take(self, max_files: int, max_bytes: int) -> list[PendingCommit]:
        """The oldest commits not on their way yet (one per node: a later one waits for it)."""
        with self._mutex:
            taken: list[PendingCommit] = []
            # The oldest rows suffice: a batch never reaches far past those in flight.
            rows = self._select(limit=len(self._in_flight) + 2 * max_files)
            nodes_busy = set(self._in_flight.values())
            created_here: set[int] = set()  # a commit may follow its file's create
            size = 0
            for commit in rows:
                if commit.seq in self._in_flight or (
                    commit.node_id in nodes_busy and commit.node_id not in created_here
                ):
                    continue
                if taken and (len(taken) >= max_files or size + commit.size > max_bytes):
                    break
                nodes_busy.add(commit.node_id)
                if commit.is_create:
                    created_here.add(commit.node_id)
                else:
                    created_here.discard(commit.node_id)
                taken.append(commit)
                size += commit.size
            self._in_flight.update((c.seq, c.node_id) for c in taken)
            return taken

    def put_back(self, commit: PendingCommit) -> None:
        """Not sent after all (the servers went away): taken again later."""
        with self._mutex:
            self._in_flight.pop(commit.seq, None)

    # --- recording --------------------------------------------------------

    def seal(
        self,
        *,
        node_id: int,
        parent_id: int,
        name: str,
        mine: bool,
        base_revision: int,
        size: int,
        mtime_ns: int,
        held: AttributeChange,
        staging: Path,
        staging_fd: int,
    ) -> PendingCommit:
        """Makes a closed file's content durable as the node's next commit; returns its row.

        The staging file is fsynced and moved into the journal (the caller's
        descriptor stays valid and now reads the sealed content).
        """
        os.fsync(staging_fd)
        name_on_disk = f"content/{uuid.uuid4().hex}"
        os.rename(staging, self.directory / name_on_disk)
        try:
            _fsync_directory(self._content)
            with self._mutex:
                return self._record(
                    node_id, parent_id, name, mine, base_revision, size, mtime_ns, held,
                    name_on_disk,
                )  # fmt: skip
        except sqlite3.OperationalError as exc:
            os.rename(self.directory / name_on_disk, staging)  # unsaved again, not lost
            if "full" in str(exc):
                raise OSError(errno.ENOSPC, "journal: local disk full") from exc
            raise OSError(errno.EIO, f"journal: {exc}") from exc
        except BaseException:
            os.rename(self.directory / name_on_disk, staging)
            raise

    def _record(
        self,
        node_id: int,
        parent_id: int,
        name: str,
        mine: bool,
        base_revision: int,
        size: int,
        mtime_ns: int,
        held: AttributeChange,
        name_on_disk: str,
    ) -> PendingCommit:
        self._discarded.discard(node_id)
        earlier = self._select("WHERE node_id = ?", (node_id,))
        base = self._committed.get(node_id, base_revision)
        replaced = None
        if earlier:
            last = earlier[-1]
            if last.is_create:
                base = NEW_FILE_REVISION
            elif last.seq in self._in_flight:
                base = AFTER_PREVIOUS
            else:
                base, replaced = last.base_revision, last
        self._durably("BEGIN IMMEDIATE")
        try:
            if replaced is not None:
                self._db.execute("DELETE FROM commits WHERE seq = ?", (replaced.seq,))
            row = (
                node_id, parent_id, name, int(mine), base, size, mtime_ns,
                held.mode, held.owner.uid, held.owner.gid, held.atime_ns,
                name_on_disk, uuid.uuid4().hex, time.time_ns(), COMMIT,
            )  # fmt: skip
            seq = self._insert(row)
            self._durably("COMMIT")
        except BaseException:
            self._durably("ROLLBACK")
            raise
        if replaced is not None:
            _remove(replaced.content)
        sealed = self._select("WHERE seq = ?", (seq,))[0]
        self._latest[node_id] = sealed
        return sealed

    def record_create(
        self,
        *,
        node_id: int,
        parent_id: int,
        name: str,
        mode: int,
        owner: Ownership,
        mtime_ns: int,
    ) -> PendingCommit:
        """A new empty file made here with a reserved id: durable when this returns."""
        with self._mutex:
            row = (
                node_id, parent_id, name, 1, 0, 0, mtime_ns, mode, owner.uid, owner.gid,
                None, "", uuid.uuid4().hex, time.time_ns(), CREATE,
            )  # fmt: skip
            self._durably("BEGIN IMMEDIATE")
            seq = self._insert(row)
            # The id is spent: a restart never hands it out again.
            self._db.execute(
                "UPDATE node_ids SET next_id = ? WHERE next_id <= ? AND ? <= last_id",
                (node_id + 1, node_id, node_id),
            )
            self._db.execute("DELETE FROM node_ids WHERE next_id > last_id")
            self._durably("COMMIT")
            made = self._select("WHERE seq = ?", (seq,))[0]
            self._creates[node_id] = made
            return made

    def _insert(self, row: tuple) -> int:
        """One row, in the columns' order (all but seq); its seq."""
        cursor = self._db.execute(
            "INSERT INTO commits (node_id, parent_id, name, mine, base_revision, size, "
            "mtime_ns, mode, uid, gid, atime_ns, content, request_id, created_ns, kind) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def created(self, create: PendingCommit) -> None:
        """metad made the file (a commit of it may follow)."""
        with self._mutex:
            self._in_flight.pop(create.seq, None)
            self._db.execute("DELETE FROM commits WHERE seq = ?", (create.seq,))
            self._creates.pop(create.node_id, None)

    def cancel(self, node_id: int) -> bool:
        """Forgets a file made here that metad never got, with its content (deleted before
        it was sent: a temporary file costs the servers nothing). False if on its way."""
        with self._mutex:
            create = self._creates.get(node_id)
            rows = self._select("WHERE node_id = ?", (node_id,))
            if create is None or any(r.seq in self._in_flight for r in rows):
                return False
            for row in rows:
                self._drop(row)
            return True

    # --- node ids reserved to this user -------------------------------------

    def take_id(self) -> int | None:
        """A node id for a file made here, or None when the reserve is spent.

        Taken in memory; record_create marks it used on disk with its row.
        """
        with self._mutex:
            while self._ids and self._ids[0][0] > self._ids[0][1]:
                self._ids.pop(0)
            if not self._ids:
                return None
            first, last = self._ids[0]
            self._ids[0] = (first + 1, last)
            return first

    def ids_left(self) -> int:
        with self._mutex:
            return sum(last - first + 1 for first, last in self._ids if first <= last)

    def add_ids(self, first: int, count: int) -> None:
        with self._mutex:
            self._db.execute("INSERT INTO node_ids VALUES (?, ?)", (first, first + count - 1))
            self._ids.append((first, first + count - 1))

    def committed(self, commit: PendingCommit, revision: int) -> None:
        """The commit landed as revision: the next one of the node goes on top of it."""
        with self._mutex:
            self._in_flight.pop(commit.seq, None)
            self._committed[commit.node_id] = revision
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM commits WHERE seq = ?", (commit.seq,))
            self._db.execute(
                "UPDATE commits SET base_revision = ? WHERE node_id = ? AND base_revision = ?",
                (revision, commit.node_id, AFTER_PREVIOUS),
            )
            self._db.execute("COMMIT")
            _remove(commit.content)
            self._reindex(commit.node_id)

    def moved(self, commit: PendingCommit, node_id: int, revision: int) -> None:
        """The commit landed elsewhere (a conflicted or recovered copy, node_id at revision):
        the node's later commits follow it there."""
        with self._mutex:
            self._in_flight.pop(commit.seq, None)
            self._committed[node_id] = revision
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM commits WHERE seq = ?", (commit.seq,))
            self._db.execute(
                "UPDATE commits SET node_id = ?, base_revision = ? WHERE node_id = ?",
                (node_id, revision, commit.node_id),
            )
            self._db.execute("COMMIT")
            _remove(commit.content)
            self._reindex(commit.node_id, node_id)

    def deleting(self, node_id: int) -> None:
        """We are deleting the node: a refusal of its content as "not found" is ours."""
        with self._mutex:
            self._discarded.add(node_id)

    def undelete(self, node_id: int) -> None:
        """The delete failed (or the node stays reachable): its content counts again."""
        with self._mutex:
            self._discarded.discard(node_id)

    def discard(self, node_id: int) -> None:
        """We deleted the node (its last name, nothing open): its commits are dropped."""
        with self._mutex:
            self._discarded.add(node_id)
            for commit in self._select("WHERE node_id = ?", (node_id,)):
                if commit.seq not in self._in_flight:
                    self._drop(commit)

    def discarded(self, node_id: int) -> bool:
        return node_id in self._discarded

    def drop(self, commit: PendingCommit) -> None:
        """Forgets a commit that has nothing left to do (its node was deleted here)."""
        with self._mutex:
            self._in_flight.pop(commit.seq, None)
            self._drop(commit)

    def _drop(self, commit: PendingCommit) -> None:
        self._db.execute("DELETE FROM commits WHERE seq = ?", (commit.seq,))
        _remove(commit.content)
        self._reindex(commit.node_id)

    # --- receipts ---------------------------------------------------------

    def receipts(self) -> list[tuple[bytes, int, bytes]]:
        with self._mutex:
            return self._db.execute("SELECT hash, size, mac FROM receipts").fetchall()

    def add_receipts(self, receipts: Iterable[tuple[bytes, int, bytes]]) -> None:
        with self._mutex:
            self._db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)", list(receipts))


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(content: Path | None) -> None:
    if content is not None:
        content.unlink(missing_ok=True)
