"""Node ids metad reserved to this user, for nodes made here (offline too).

A node made here takes its id at once, so the mount can show it before metad
hears of it. The ranges live in the journal's database (table node_ids); an id
is marked used there in the same transaction as the row that uses it, so a
restart never hands it out again. Ids are marked SPEND_AHEAD at a time: one
write per that many nodes made, and a crash wastes at most that many ids.
"""

from __future__ import annotations

import sqlite3

SPEND_AHEAD = 64


class ReservedIds:
    """The reserve: taken in memory, marked used on disk by spend (not thread-safe:
    the journal's lock guards it)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        rows = db.execute("SELECT next_id, last_id FROM node_ids ORDER BY next_id").fetchall()
        self._ranges = [(first, last) for first, last in rows if first <= last]
        self._on_disk = {last: first for first, last in rows}  # last id -> next free on disk

    def take(self) -> int | None:
        """An id not handed out before, or None when the reserve is spent."""
        while self._ranges and self._ranges[0][0] > self._ranges[0][1]:
            self._ranges.pop(0)
        if not self._ranges:
            return None
        first, last = self._ranges[0]
        self._ranges[0] = (first + 1, last)
        return first

    def left(self) -> int:
        return sum(last - first + 1 for first, last in self._ranges if first <= last)

    def add(self, first: int, count: int) -> None:
        last = first + count - 1
        self._db.execute("INSERT INTO node_ids VALUES (?, ?)", (first, last))
        self._ranges.append((first, last))
        self._on_disk[last] = first

    def spend(self, spent: int) -> None:
        """spent is used: marked so on disk (with the next few) unless it is already.
        Call inside the transaction that records its use."""
        for last, free in self._on_disk.items():
            if free <= spent <= last:
                ahead = min(spent + SPEND_AHEAD, last + 1)
                if ahead > last:
                    self._db.execute("DELETE FROM node_ids WHERE last_id = ?", (last,))
                    del self._on_disk[last]
                else:
                    self._db.execute(
                        "UPDATE node_ids SET next_id = ? WHERE last_id = ?", (ahead, last)
                    )
                    self._on_disk[last] = ahead
                return

    def rolled_back(self) -> None:
        """The transaction of a spend was rolled back: what is on disk is read again."""
        rows = self._db.execute("SELECT next_id, last_id FROM node_ids").fetchall()
        self._on_disk = {last: first for first, last in rows}

    def clear(self) -> None:
        """Forgets every range (another user's journal starts afresh)."""
        self._db.execute("DELETE FROM node_ids")
        self._ranges.clear()
        self._on_disk.clear()
