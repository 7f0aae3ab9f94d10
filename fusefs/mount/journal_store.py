"""The write-back journal's durable storage: its SQLite database and content folder.

Owns the connection, the transactions and the rule of what waits for the disk,
the rows' SQL (insert, delete, select, the few updates), the sealed content
files (moved in durably, removed once their rows' deletion commits, orphans
swept at start), the node ids reserved to this user (their table), the upload
receipts, and the mapping of a failing database to an OSError (ENOSPC, EIO).

Durability: the database runs in WAL mode with synchronous=NORMAL. Content a
close(2) confirmed is committed durably (transaction(durable=True)): the WAL is
fdatasynced after its COMMIT, as synchronous=FULL would, so it is on disk when
the commit returns (one fdatasync, no PRAGMA switched back and forth per close).
Other rows (a name made, moved or removed, attributes) are committed with
NORMAL: safe from a kill -9 of the mount at once, and on disk with the next
durable commit (the WAL is written in order) or before they are sent (sync_wal,
called by Journal.take), as a local file system keeps a new name once its
folder is synced. So is what sending changes (rows done, ids).

One connection, in exclusive locking mode: nothing else opens the database
while the mount runs, so no transaction takes or drops file locks, and the WAL
index lives in memory instead of a shared-memory file.

Rows written later (defer): the row that makes a file is kept in memory until
the next row is written, which is most often that file's content at its close,
so both go in the one durable commit (a commit of its own wrote and committed
the same pages of the WAL twice per file). Seqs are given here, so a deferred
row keeps its place: every insert writes the deferred rows before it, and
reads by node see them. A kill -9 before then loses a file no program closed.

Beside the table it keeps the size, node and kind of every row (totals at every
close, node_of) and the rows this mount wrote as read back, until one is updated
(Journal.take reads them at every batch without a query).

Must not: decide what a change does to other rows (replacing, rebasing, which
rows to take: journal.py), keep the in-memory indexes, or lock: it is not
thread-safe, the journal's lock guards every use of the database (moving a
content file in or back out touches files only, and runs outside it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from fusefs.models import AttributeChange
from fusefs.mount.journal_rows import COLUMNS, SCHEMA, PendingChange, migrate, row_to_change
from fusefs.mount.node_ids import ReservedIds

# Host parameters per statement at most (SQLite's limit before 3.32 was 999).
_MAX_PARAMETERS = 500
# Rows written by this mount kept as read back (take reads them at every batch): at
# most this many (a journal grown offline is read from the table beyond that).
_RECENT_ROWS = 20_000


class JournalStore:
    """The database journal.sqlite3 and the folder content/ under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._content = directory / "content"
        self._content.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            directory / "journal.sqlite3", isolation_level=None, check_same_thread=False
        )
        # Exclusive before the first access: the WAL index is then never a shared file.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        # Durable transactions sync the WAL themselves (see the module docstring).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._wal = directory / "journal.sqlite3-wal"
        self._wal_fd: int | None = None
        self._db.executescript(SCHEMA)
        migrate(self._db)
        # seq -> (size, node id, kind) of every row written (totals, asked at every close,
        # and node_of without a query), and their sizes' sum
        self._rows: dict[int, tuple[int, int, str]] = {}
        self.total_bytes = 0
        # seq -> the row as written by this mount, while the table still has it so (an
        # update drops it here): Journal.take reads rows without a query or new objects.
        self._recent: dict[int, PendingChange] = {}
        # Rows deleted in the transaction under way, not yet in the table: deleted with
        # one statement before anything reads or changes it, or at its commit (a batch's
        # landings delete hundreds of rows: one statement each cost most of their time).
        self._deleting: list[int] = []
        self._read_sizes()
        self._unneeded: list[Path] = []  # content files to remove once their rows' deletion commits
        # seq -> (row, node id it spends, the row as read back): rows not written yet
        # (defer), in order; and those of them written by the transaction under way
        # (kept until it commits).
        self._deferred: dict[int, tuple[tuple, int, PendingChange]] = {}
        self._writing: set[int] = set()
        self._last_seq = self._db.execute("SELECT MAX(seq) FROM commits").fetchone()[0] or 0
        self.ids = ReservedIds(self._db)
        self._remove_orphans()

    def close(self) -> None:
        try:
            with contextlib.suppress(sqlite3.Error):  # (the disk full: files never closed)
                self.write_deferred()
        finally:
            self._db.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def _read_sizes(self) -> None:
        self._deleting.clear()
        self._recent.clear()
        rows = self._db.execute("SELECT seq, size, node_id, kind FROM commits").fetchall()
        self._rows = {seq: (size, node_id, kind) for seq, size, node_id, kind in rows}
        self.total_bytes = sum(size for size, _, _ in self._rows.values())

    @property
    def count(self) -> int:
        """How many rows are written (deferred ones not yet)."""
        return len(self._rows)

    def claim(self, owner: str) -> None:
        """See Journal.claim: refuses (ValueError) while another owner's rows wait, else
        a new owner starts with no reserved ids and no receipts."""
        row = self._db.execute("SELECT value FROM facts WHERE key = 'owner'").fetchone()
        if row is not None and row[0] == owner:
            return
        files = len(self._rows)
        if row is not None and files:
            raise ValueError(f"it holds {files} change(s) of another user, not sent yet")
        self.ids.clear()
        self._db.execute("DELETE FROM receipts")
        self._db.execute("INSERT OR REPLACE INTO facts VALUES ('owner', ?)", (owner,))

    # --- transactions -------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, durable: bool = False) -> Iterator[None]:
        """One transaction; inside another (see Journal.together) it is part of that one.

        durable: a program is promised what it holds, so it returns once the WAL
        that holds it is on disk (NotSynced if that fails: the rows are committed,
        but not known to be on disk). A failure before the commit rolls it back
        and the in-memory totals and ids are read again from what the disk kept.
        """
        if self._db.in_transaction:
            assert not durable, "a durable change cannot wait for another transaction"
            yield
            return
        self._unneeded, self._writing = [], set()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._write_deferred()
            yield
            self._delete_now()
            self._db.execute("COMMIT")
        except BaseException:
            self._unneeded.clear()  # their rows stay: so do they
            self._writing.clear()  # (deferred still)
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._read_sizes()
            self.ids.rolled_back()
            raise
        for seq in self._writing:
            del self._deferred[seq]
        self._writing.clear()
        if durable:
            try:
                os.fdatasync(self._wal_descriptor())
            except OSError as exc:
                # Committed all the same: the content it replaced stays until the
                # next start sweeps it (a crash may yet bring its row back).
                raise NotSynced(exc.errno, f"journal: {exc.strerror}") from exc
        for path in self._unneeded:
            path.unlink(missing_ok=True)

    def _wal_descriptor(self) -> int:
        """The WAL, open for syncing. It exists once a transaction committed, and stays
        (the same file, rewritten from its start after a checkpoint) until the
        connection closes: in exclusive mode no one else can remove it. The first
        time, its folder is synced too, so the name survives as well as the content."""
        if self._wal_fd is None:
            fd = os.open(self._wal, os.O_RDONLY)
            try:
                _fsync_directory(self.directory)
            except BaseException:
                os.close(fd)
                raise
            self._wal_fd = fd
        return self._wal_fd

    def sync_wal(self) -> None:
        """Puts every row committed so far on disk (those committed with NORMAL too)."""
        if self._wal_fd is None and not self._wal.exists():
            return  # nothing committed since the database was opened (and checkpointed)
        os.fdatasync(self._wal_descriptor())

    # --- rows -----------------------------------------------------------------

    def select(
        self, where: str = "", args: tuple = (), limit: int | None = None
    ) -> list[PendingChange]:
        self._delete_now()
        query = f"SELECT {COLUMNS} FROM commits {where} ORDER BY seq"
        if limit is not None:
            query, args = query + " LIMIT ?", (*args, limit)
        rows = self._db.execute(query, args).fetchall()
        return [row_to_change(r, self.directory) for r in rows]

    def rows(self, seqs: list[int]) -> list[PendingChange]:
        """The rows of these seqs, in order (those gone are left out): as written by this
        mount where it has them, else read (between the first and the last seq)."""
        recent = self._recent
        if all(seq in recent for seq in seqs):
            return [recent[seq] for seq in seqs]
        wanted = set(seqs)
        between = self.select("WHERE seq >= ? AND seq <= ?", (min(seqs), max(seqs)))
        return [row for row in between if row.seq in wanted]

    def head(self, limit: int) -> list[tuple[int, int, str]]:
        """(seq, node id, kind) of the oldest rows, in order."""
        self._delete_now()
        return self._db.execute(
            "SELECT seq, node_id, kind FROM commits ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()

    def of_node(self, node_id: int) -> list[PendingChange]:
        """The node's rows, deferred ones too."""
        return self.select("WHERE node_id = ?", (node_id,)) + self._deferred_of(node_id)

    def newest_of(self, node_id: int) -> PendingChange | None:
        deferred = self._deferred_of(node_id)
        if deferred:
            return deferred[-1]
        self._delete_now()
        newest = self._db.execute(
            f"SELECT {COLUMNS} FROM commits WHERE node_id = ? ORDER BY seq DESC LIMIT 1",
            (node_id,),
        ).fetchone()
        return None if newest is None else row_to_change(newest, self.directory)

    def nodes(self) -> set[int]:
        """Every node some row is of (deferred rows too)."""
        found = {node_id for _, node_id, _ in self._rows.values()}
        return found | {row[0] for row, _, _ in self._deferred.values()}

    def holds(self, node_id: int) -> bool:
        """Whether a row of another node is in node_id (made in it or moved into it)."""
        if any(row[0] != node_id and node_id in (row[1], row[17]) for row in self._unwritten()):
            return True
        self._delete_now()
        held = self._db.execute(
            "SELECT 1 FROM commits WHERE node_id != ? AND (parent_id = ? OR new_parent_id = ?)"
            " LIMIT 1",
            (node_id, node_id, node_id),
        ).fetchone()
        return held is not None

    def data(self, seq: int) -> bytes:
        """The bytes kept in a row (a small commit's content, an XATTR's value)."""
        self._delete_now()
        found = self._db.execute("SELECT data FROM commits WHERE seq = ?", (seq,)).fetchone()
        if found is None:
            raise KeyError(f"journal row {seq} is gone")
        return bytes(found[0])

    def data_of(self, seqs: list[int]) -> dict[int, bytes]:
        """data() of many rows in one query (those gone are left out)."""
        self._delete_now()
        found: dict[int, bytes] = {}
        for lo in range(0, len(seqs), _MAX_PARAMETERS):
            part = seqs[lo : lo + _MAX_PARAMETERS]
            marks = ", ".join("?" * len(part))
            query = f"SELECT seq, data FROM commits WHERE seq IN ({marks})"
            found.update((seq, bytes(data)) for seq, data in self._db.execute(query, part))
        return found

    def insert(self, row: tuple, data: bytes | None = None) -> PendingChange:
        """One row, in the columns' order (all but seq and data), after the deferred ones."""
        self.write_deferred()
        self._last_seq += 1
        written = row_to_change((self._last_seq, *row, data is not None), self.directory)
        self._insert(written, row, data)
        return written

    def _insert(self, written: PendingChange, row: tuple, data: bytes | None) -> None:
        seq = written.seq
        self._db.execute(
            "INSERT INTO commits (seq, node_id, parent_id, name, mine, base_revision, size, "
            "mtime_ns, mode, uid, gid, atime_ns, content, request_id, created_ns, kind, "
            "target, sets_mtime, new_parent_id, new_name, flags, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, *row, data),
        )
        self._rows[seq] = (row[5], row[0], row[14])
        self.total_bytes += row[5]
        if len(self._recent) < _RECENT_ROWS:
            self._recent[seq] = written

    def defer(self, row: tuple, spends: int) -> PendingChange:
        """A row (no data) written with the next one, or by write_deferred; spends: the
        reserved id it uses (marked used when it is written). See the module docstring."""
        self._last_seq += 1
        deferred = row_to_change((self._last_seq, *row, False), self.directory)
        self._deferred[self._last_seq] = (row, spends, deferred)
        return deferred

    def write_deferred(self) -> bool:
        """Writes the deferred rows now (in the transaction under way, or one of their
        own); whether there were any."""
        if not self._deferred or len(self._writing) == len(self._deferred):
            return False
        if not self._db.in_transaction:
            with self.transaction():
                return True  # (written as it begins)
        self._write_deferred()
        return True

    def _write_deferred(self) -> None:
        for seq, (row, spends, deferred) in self._deferred.items():
            if seq not in self._writing:
                self._insert(deferred, row, None)
                self.ids.spend(spends)
                self._writing.add(seq)

    def _unwritten(self) -> list[tuple]:
        return [row for seq, (row, _, _) in self._deferred.items() if seq not in self._writing]

    def _deferred_of(self, node_id: int) -> list[PendingChange]:
        return [
            deferred
            for seq, (row, _, deferred) in self._deferred.items()
            if row[0] == node_id and seq not in self._writing
        ]

    def node_of(self, seq: int) -> int | None:
        """The node a row is of now (a save may have moved it to the saved file)."""
        if seq in self._deferred and seq not in self._writing:
            return self._deferred[seq][0][0]
        found = self._rows.get(seq)
        return None if found is None else found[1]

    def delete(self, seq: int) -> None:
        """Deletes the row (inside a transaction: with the others deleted in it, before
        the table is next read or changed)."""
        if seq in self._deferred and seq not in self._writing:
            del self._deferred[seq]  # never written: nothing to remove
            return
        if self._db.in_transaction:
            self._deleting.append(seq)
        else:
            self._db.execute("DELETE FROM commits WHERE seq = ?", (seq,))
        self._recent.pop(seq, None)
        found = self._rows.pop(seq, None)
        if found is not None:
            self.total_bytes -= found[0]

    def _delete_now(self) -> None:
        """The rows delete() queued, deleted (a statement per _MAX_PARAMETERS rows)."""
        seqs, self._deleting = self._deleting, []
        for lo in range(0, len(seqs), _MAX_PARAMETERS):
            part = seqs[lo : lo + _MAX_PARAMETERS]
            marks = ", ".join("?" * len(part))
            self._db.execute(f"DELETE FROM commits WHERE seq IN ({marks})", part)

    def set_held(
        self,
        seq: int,
        held: AttributeChange,
        mtime_ns: int,
        created_ns: int,
        sets_mtime: bool | None = None,
    ) -> None:
        """The attributes (and mtime) a row sets; sets_mtime too unless None."""
        self._delete_now()
        self._recent.pop(seq, None)
        values = (held.mode, held.owner.uid, held.owner.gid, held.atime_ns, mtime_ns)
        if sets_mtime is None:
            self._db.execute(
                "UPDATE commits SET mode = ?, uid = ?, gid = ?, atime_ns = ?, "
                "mtime_ns = ?, created_ns = ? WHERE seq = ?",
                (*values, created_ns, seq),
            )
        else:
            self._db.execute(
                "UPDATE commits SET mode = ?, uid = ?, gid = ?, atime_ns = ?, "
                "mtime_ns = ?, sets_mtime = ?, created_ns = ? WHERE seq = ?",
                (*values, int(sets_mtime), created_ns, seq),
            )

    def rebase(self, seq: int, revision: int) -> None:
        """The row's commit goes on top of revision."""
        self._delete_now()
        self._recent.pop(seq, None)
        self._db.execute("UPDATE commits SET base_revision = ? WHERE seq = ?", (revision, seq))

    def move_rows(
        self, from_id: int, to_id: int, revision: int, kinds: tuple[str, ...] = ()
    ) -> None:
        """from_id's rows (of these kinds; all when none) become to_id's, on top of
        revision."""
        self.write_deferred()
        self._delete_now()
        query = "UPDATE commits SET node_id = ?, base_revision = ? WHERE node_id = ?"
        if kinds:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
        self._db.execute(query, (to_id, revision, from_id, *kinds))
        for seq, (size, node_id, kind) in list(self._rows.items()):
            if node_id == from_id and (not kinds or kind in kinds):
                self._rows[seq] = (size, to_id, kind)
                self._recent.pop(seq, None)

    # --- content files -----------------------------------------------------

    def move_in(self, staging: Path, staging_fd: int) -> str:
        """Moves a closed file's staging file into the folder, durably; its name there
        (relative to the directory, as rows keep it). The caller's descriptor stays
        valid and now reads the sealed content."""
        os.fsync(staging_fd)
        name_on_disk = f"content/{uuid.uuid4().hex}"
        os.rename(staging, self.directory / name_on_disk)
        try:
            _fsync_directory(self._content)
        except BaseException:
            self.move_out(name_on_disk, staging)
            raise
        return name_on_disk

    def scratch(self) -> Path:
        """A new path in the content folder for a file its caller makes and removes
        (one a crash leaves there is swept at the next start, as an orphan)."""
        return self._content / f"scratch-{uuid.uuid4().hex}"

    def move_out(self, name_on_disk: str, staging: Path) -> None:
        """Gives content whose row was not committed back to its staging file (unsaved
        again, not lost)."""
        os.rename(self.directory / name_on_disk, staging)

    def remove_content(self, content: Path | None) -> None:
        """Removes a content file whose row is deleted: once that deletion is committed
        (a crash in between keeps a row whose content is gone otherwise)."""
        if content is None:
            return
        if self._db.in_transaction:
            self._unneeded.append(content)
        else:
            content.unlink(missing_ok=True)

    def _remove_orphans(self) -> None:
        """Content moved in by a seal whose row never committed (a crash between the two)."""
        named = {row[0] for row in self._db.execute("SELECT content FROM commits")}
        for path in self._content.iterdir():
            if f"content/{path.name}" not in named:
                path.unlink(missing_ok=True)

    # --- receipts -----------------------------------------------------------

    def receipts(self) -> list[tuple[bytes, int, bytes]]:
        return self._db.execute("SELECT hash, size, mac FROM receipts").fetchall()

    def add_receipts(self, receipts: Iterable[tuple[bytes, int, bytes]]) -> None:
        """One transaction for them all (one each would write and commit the WAL per
        block: 9 us of the event loop each instead of 2)."""
        with self.transaction():
            self._db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?)", list(receipts))


class NotSynced(OSError):
    """A durable transaction committed, but the disk failed to keep it (fdatasync)."""


def disk_error(exc: sqlite3.OperationalError) -> OSError:
    """A failing database as the errno a program is told (close(2) fails with it)."""
    if "full" in str(exc):
        return OSError(errno.ENOSPC, "journal: local disk full")
    return OSError(errno.EIO, f"journal: {exc}")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
