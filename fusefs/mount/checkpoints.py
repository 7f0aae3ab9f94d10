"""Checkpoints of a SQLite database's WAL, run by a thread of their own.

SQLite copies its WAL back into the database (a checkpoint) inside whichever
commit takes the WAL past 1,000 pages. For the journal that was every ~80
small files closed, and close(2) waited for it: some 1,000 pages written and
two fsyncs, ~10 ms here, ~120 us per file on average. Here a thread of its own
runs them instead, on its own connection, once every EVERY_COMMITS commits
(about as often as SQLite would; PASSIVE: it never waits for, nor holds up, a
writer). The writer's connection keeps SQLite's own checkpoints only as a bound
(BOUND_PAGES), should this thread ever fall behind.

Must not: write rows, or be used from more than the one thread it starts (but
for wake and close).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# A checkpoint runs after this many commits (a small file closed is two, some 10 pages).
EVERY_COMMITS = 200
# The writer's own checkpoints start past this many WAL pages (32 MiB of 4 KiB pages).
BOUND_PAGES = 8192


class Checkpointer:
    """Copies the WAL of the database at path back into it, in the background."""

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        writer.execute(f"PRAGMA wal_autocheckpoint={BOUND_PAGES}")
        self._path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._commits = 0
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something was committed (called by the writer's one thread at a time)."""
        self._commits += 1
        if self._commits >= EVERY_COMMITS:
            self._commits = 0
            self._due.set()

    def close(self) -> None:
        """Stops the thread (after a checkpoint it is running)."""
        self._stopping.set()
        self._due.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping.is_set():
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                # (A full disk, say: the writer's own checkpoints remain.)
                log.info("checkpoint of %s not made: %s", self._path, exc)
