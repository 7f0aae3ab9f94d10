"""The SQLite engine: a connection to the file and the settings each needs.

Owns the file's settings (WAL, synchronous=FULL, foreign keys) and what
SQLite spells its own way for the engine: BEGIN IMMEDIATE as the single-writer
lock, sqlite_sequence as the counter behind AUTOINCREMENT ids. Only one metad
uses a file (server.py holds its data directory's lock), so there are no
other processes' commits to watch.

Must not: hold the queries of any feature, or run anywhere but the
connection's own thread (engine.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from metad import schema
from metad.errors import StartupError
from metad.sql import Sql

BUSY_TIMEOUT_MS = 10_000
# Page cache per connection, in KiB (SQLite's default is 2 MiB).
CACHE_KIB = 16 * 1024
# Database pages are read through a memory map up to this size. In WAL mode a
# connection drops its page cache whenever another one committed, so readers
# re-read pages after every write: from the map that costs no system call.
MMAP_BYTES = 256 * 1024 * 1024


class _Read:
    """The rows of a statement read to its end, as a cursor."""

    def __init__(self, rows: list[sqlite3.Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> sqlite3.Row | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[sqlite3.Row]:
        found, self._rows = self._rows, []
        return found

    def __iter__(self) -> Iterator[sqlite3.Row]:
        return iter(self.fetchall())


class SqliteConnection:
    """A sqlite3 connection in autocommit mode as an engine Connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None:
        self._conn.executemany(sql, params)

    def ahead(self, sql: str, params: Sequence[Any] = (), /) -> _Read:
        # Read to its end now: no statement stays in progress past its savepoint.
        cursor = self._conn.execute(sql, params)
        return _Read(cursor.fetchall(), cursor.rowcount)

    def flush(self) -> None:
        """Every statement has run when execute returned."""

    def id_counter(self, table: str) -> int:
        # AUTOINCREMENT hands out max(seq, highest id) + 1.
        row = self._conn.execute(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),"
            f" (SELECT COALESCE(MAX(id), 0) FROM {table}))",
            (table,),
        ).fetchone()
        return int(row[0])

    def move_id_counter(self, table: str, past: int) -> None:
        updated = self._conn.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (past, table)
        ).rowcount
        if not updated:
            self._conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, past)
            )

    def begin_snapshot(self) -> None:
        self._conn.execute("BEGIN")

    def end_snapshot(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def begin_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def commit_write(self, last_sequence: int, concerns: frozenset[int]) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


class SqliteDriver:
    """Connections to one SQLite file."""

    errors = (sqlite3.Error,)
    lost = ()  # a local file: its errors are not outages
    shared = False  # server.py's lock on the data directory keeps other metad out
    changes_per_transaction = 0  # a row written again is written in place: no bound

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def connect(self, *, writer: bool) -> SqliteConnection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            _configure(conn, writer=writer)
        except BaseException:
            conn.close()
            raise
        return SqliteConnection(conn)

    def schema_version(self, conn: Sql) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def watch(
        self, on_head: Callable[[int, frozenset[int] | None], None], stopping: threading.Event
    ) -> None:
        """Nothing to watch: no other process writes the file."""

    def stop_watching(self, conn: SqliteConnection) -> None:
        """Nothing watches."""


def _configure(conn: sqlite3.Connection, *, writer: bool) -> None:
    """Per-connection settings: SQLite keeps none of these in the file but journal_mode."""
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if writer:
        row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if row is None or str(row[0]).lower() != "wal":
            raise StartupError(f"cannot put the database in WAL mode (got {row and row[0]!r})")
    # FULL: the WAL is fsynced at every commit, so a commit whose RPC returned
    # survives a crash or a power loss. Set on the readers too: whichever
    # connection closes last checkpoints the WAL into the database.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    if writer:
        schema.migrate_sqlite(conn)  # before foreign keys are enforced: it may rebuild tables
    conn.execute("PRAGMA foreign_keys = ON")
    if not writer:
        conn.execute("PRAGMA query_only = ON")
