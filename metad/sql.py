"""The one interface between metad's feature SQL and a database engine.

Owns `Sql`, the connection as every feature module sees it: execute and
executemany with `?` placeholders (and ahead and flush, for an engine that
sends statements ahead), rows readable by position and by column
name, and the two things the engines spell differently that features need
(the counter behind an id column). An engine (sqlite.py, postgres.py) wraps
its driver's connection in it; SQL written against it is the subset both
engines speak: `INSERT ... ON CONFLICT`, `RETURNING`, CAST(... AS BIGINT) for a
typed parameter or an aggregate that must stay an integer, CASE instead of
two-argument MAX/MIN, and an alias on every subquery in FROM.

Must not: begin, commit or roll back (the engine does), or name a driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Row(Protocol):
    """One result row: row[0] or row["column"]."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Cursor(Protocol):
    """The outcome of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Sql(Protocol):
    """A connection of one engine, on the thread that owns it."""

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (False once the engine abandoned one that failed)."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None: ...

    def ahead(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        """Executes a statement whose rows are read later in the same change.

        An engine that sends statements ahead (PostgreSQL's pipeline) sends it
        now and waits only when it is read, so reads that do not depend on each
        other cost one wait together; the others run it to its end at once.
        """
        ...

    def flush(self) -> None:
        """Waits until every statement executed so far has run; raises the error of the
        first that failed. An engine may send statements ahead without waiting for
        each (PostgreSQL's pipeline): their errors surface at a read or here."""
        ...

    def id_counter(self, table: str) -> int:
        """The highest id the table's id column handed out or was moved past (0: none yet)."""
        ...

    def move_id_counter(self, table: str, past: int) -> None:
        """Makes the table's next generated id greater than past (never lowers it)."""
        ...

    def begin_snapshot(self) -> None:
        """Starts a read-only transaction: the statements until end_snapshot see one state."""
        ...

    def end_snapshot(self) -> None: ...
