"""The PostgreSQL engine: connections to one database that several metad share.

Owns what PostgreSQL spells its own way for the engine: the single-writer
lock, the placeholders, rows by name, identity sequences as id counters, the
wake-up of other replicas, and the migration lock.

Why one writer at a time (the journal's order across replicas): every write
transaction of every metad first takes one transaction-scoped advisory lock,
`pg_advisory_xact_lock(WRITE_LOCK)`, as SQLite's BEGIN IMMEDIATE does for one
file. It is held until COMMIT, and PostgreSQL makes a commit visible to new
snapshots before it releases the transaction's locks. So the transaction that
takes the lock next starts after every earlier one is visible, the journal
sequences it draws are greater than all committed ones, and it becomes visible
after them: journal rows become visible in sequence order, and a reader that
saw sequence N sees every row below N (numbers may skip where a transaction
rolled back, but no row appears below one already seen). A subscription's
"rows with sequence > cursor, up to the head of my snapshot" then never misses
one, whichever replica wrote it. The same lock makes each write's checks
(base revision, quota, free name) and its changes one step, as on SQLite:
writes run at READ COMMITTED, so each statement after the lock sees every
earlier commit. Group commit keeps the throughput: one lock, one COMMIT and
one WAL flush for the writes queued meanwhile.

Wake-up: a write transaction that journaled calls pg_notify(CHANNEL, "head
users"), which PostgreSQL delivers at COMMIT; every metad LISTENs on a
connection of its own (`watch`) and reports the head and the users the commit
concerns to its subscribers (changes.CommitSignal wakes only theirs), and
reads the journal's head every POLL_S as well, so a lost notification or a
dropped connection delays a subscriber at most that long (a head found that
way concerns everyone). Our own writer's notifications are skipped: the
engine announced those commits itself. The journal table is the only source
of events; a notification only says "look".

Cost: a write transaction runs in psycopg's pipeline mode (PostgresConnection),
and an ApplyBatch commits in transactions of CHANGES_PER_TRANSACTION changes
(engine.Driver says why).

Why psycopg 3: its synchronous API fits the engine's model of connections
owned by threads (no second event loop), its C implementation (the binary
package) keeps the per-statement cost low, and it speaks LISTEN/NOTIFY.

Must not: hold the queries of any feature, log a URL (it may carry a
password), or run a connection anywhere but its own thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from metad import schema_postgres
from metad.sql import Sql

log = logging.getLogger(__name__)

# The advisory lock every write transaction (and migration) holds until it ends.
WRITE_LOCK = 0x6472_6976_6566_7331  # "drivefs1"
CHANNEL = "drivefs_journal"
# A notification names the users a commit concerns up to this many characters
# (PostgreSQL takes 8,000); beyond, only the head: a commit that concerns everyone.
NOTICE_USERS_CHARS = 4000
# How often a metad reads the journal's head without being told (see above).
POLL_S = 0.5
CONNECT_TIMEOUT_S = 10
# A batch's changes per transaction (engine.Driver says why PostgreSQL wants a bound).
# A transaction whose changes are replayed one by one (Transaction.attempt_each)
# has a SAVEPOINT, a subtransaction, per change: past 64 a backend's cache of them
# overflows, and every other session's visibility checks (readers, subscribers,
# other replicas) look ours up in pg_subtrans. 50 and 100 cost the writer the
# same (measured in-process). A batch's set-based runs (one SAVEPOINT each) may
# stretch a transaction to store.BULK_CHUNKS times this, within as many SAVEPOINTs.
CHANGES_PER_TRANSACTION = 60


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """`?` placeholders to PostgreSQL's own `$1`, `$2`, ... (a `?` inside a quoted string
    or name stays as it is).

    Statements run through psycopg's RawCursor, which sends them as they are:
    psycopg's `%s` form is parsed again on every execution of a statement longer
    than 4,096 characters (a set-based run's multi-row INSERTs), which cost metad
    ~12% of its CPU under the write lock (py-spy).
    """
    out: list[str] = []
    quote = ""
    number = 0
    for char in sql:
        if quote:
            out.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


class Row:
    """A result row readable by position and by column name, as sqlite3.Row is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({tuple(self._values)!r})"


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """psycopg row factory: Row, the first column of a name winning (as sqlite3.Row)."""
    index: dict[str, int] = {}
    for position, column in enumerate(cursor.description or ()):
        index.setdefault(column.name, position)
    return lambda values: Row(values, index)


# A password in a URL: postgresql://user:PASSWORD@host/... or ...?password=PASSWORD.
_PASSWORD = re.compile(r"^\w+://[^/@:]*:([^@/]*)@|[?&]password=([^&]*)")


def describe(url: str) -> str:
    """The database for logs and errors: host, port, database and user, never the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def notice(last_sequence: int, concerns: frozenset[int]) -> str:
    """The payload of a commit's notification: "HEAD USER,USER,..." or "HEAD"."""
    users = ",".join(map(str, sorted(concerns)))
    if not users or len(users) > NOTICE_USERS_CHARS:
        return str(last_sequence)
    return f"{last_sequence} {users}"


def parse_notice(payload: str) -> tuple[int, frozenset[int] | None] | None:
    """(head, the users the commit concerns or None: everyone) from a payload; None if
    it is not one (our own stop channel's, or a stranger's)."""
    head, _, users = payload.partition(" ")
    if not head.isdigit() or not all(user.isdigit() for user in users.split(",") if users):
        return None
    return int(head), frozenset(int(user) for user in users.split(",")) if users else None


class _Sent:
    """A statement sent in pipeline mode: reading its outcome waits for it (and all before)."""

    __slots__ = ("_conn", "_cursor", "_number")

    def __init__(self, conn: PostgresConnection, cursor: psycopg.Cursor[Any], number: int) -> None:
        self._conn = conn
        self._cursor = cursor
        self._number = number  # the how-manieth statement sent in the transaction

    @property
    def rowcount(self) -> int:
        self._conn.flush()  # psycopg fills rowcount when the result arrives
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()  # psycopg waits for the result (and those before)
        self._conn.arrived(self._number)
        return row

    def fetchall(self) -> list[Any]:
        found = self._cursor.fetchall()
        self._conn.arrived(self._number)
        return found

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresConnection:
    """A psycopg connection in autocommit mode (transactions by statement) as an engine
    Connection.

    A write transaction runs in psycopg's pipeline mode: a statement is sent
    without waiting for the one before, and the connection waits only when a
    result is read, or at `flush` (Transaction.attempt: a change's errors are
    its own) and COMMIT. Most statements of a change return nothing anyone
    reads, so a change costs a few round trips instead of one per statement.

    A connection the server dropped (a restart, a network cut, an idle
    timeout) is opened again when the next statement would start afresh: a
    BEGIN or a lone statement, which nothing before it depends on. Inside a
    transaction the error stands, and with it the transaction.
    """

    def __init__(
        self, conn: psycopg.Connection[Any], reopen: Callable[[], psycopg.Connection[Any]]
    ) -> None:
        self._conn = conn
        self._reopen = reopen
        # While a write runs: the pipeline, and how to leave it.
        self._pipeline: psycopg.Pipeline | None = None
        self._leave = contextlib.ExitStack()
        self._sent = 0  # statements sent in the pipeline
        self._arrived = 0  # of which the results (the first N) arrived

    def _run(self, query: str, params: tuple[Any, ...] | None = None) -> psycopg.Cursor[Any]:
        """query ($n placeholders, see translate) on a cursor of its own, as is."""
        return psycopg.RawCursor(self._conn).execute(query, params)

    def _afresh(self, query: str, params: tuple[Any, ...] | None = None) -> psycopg.Cursor[Any]:
        """A statement outside any transaction, on a new connection if this one was lost."""
        try:
            return self._run(query, params)
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
        log.info("the connection to the database was lost: connecting again")
        self._conn.close()
        self._conn = self._reopen()
        return self._run(query, params)

    @property
    def in_transaction(self) -> bool:
        if self._pipeline is not None:
            self._settle()  # the status is ACTIVE while results are on their way
        status = self._conn.info.transaction_status
        return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        if self._pipeline is not None:
            self._sent += 1
            return _Sent(self, self._run(translate(sql), tuple(params)), self._sent)
        if self.in_transaction:
            return self._run(translate(sql), tuple(params))
        return self._afresh(translate(sql), tuple(params))

    def ahead(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self.execute(sql, params)  # in a write, sent; elsewhere, run

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None:
        # Not closed at once: in pipeline mode its result may be on its way.
        psycopg.RawCursor(self._conn).executemany(translate(sql), [tuple(p) for p in params])
        self._sent += 1

    def arrived(self, number: int) -> None:
        """The result of statement number arrived, so did those before (and their errors)."""
        self._arrived = max(self._arrived, number)

    def flush(self) -> None:
        """Waits for every statement sent: raises the error of the first that failed."""
        if self._pipeline is not None and self._arrived < self._sent:
            self._pipeline.sync()
            self._arrived = self._sent

    def _settle(self) -> None:
        """After an error was raised: the pipeline takes statements again (ROLLBACK TO)."""
        with contextlib.suppress(psycopg.Error):
            self.flush()

    def _sequence_value(self, table: str) -> int:
        """The last value the id column's identity sequence gave (0: none yet)."""
        row = self.execute(
            "SELECT COALESCE(last_value, 0) FROM pg_sequences"
            " WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence(?, 'id')",
            (table,),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def id_counter(self, table: str) -> int:
        # Ids given explicitly (the first user, reserved node ids) may pass the sequence.
        highest = self.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
        return max(self._sequence_value(table), int(highest))

    def move_id_counter(self, table: str, past: int) -> None:
        if past > self._sequence_value(table):
            self.execute("SELECT setval(pg_get_serial_sequence(?, 'id'), ?)", (table, past))

    def begin_snapshot(self) -> None:
        self._afresh("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def end_snapshot(self) -> None:
        if self.in_transaction:
            self._conn.execute("ROLLBACK")

    def begin_write(self) -> None:
        with contextlib.suppress(psycopg.Error):  # one a lost connection left behind
            self._end_pipeline()
        self._afresh("BEGIN")
        self._pipeline = self._leave.enter_context(self._conn.pipeline())
        self._sent = self._arrived = 0
        self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    def _end_pipeline(self) -> None:
        """Leaves pipeline mode: waits for every result, raising the first error."""
        self._pipeline = None
        self._leave.close()

    def commit_write(self, last_sequence: int, concerns: frozenset[int]) -> None:
        if last_sequence:
            self.execute("SELECT pg_notify(?, ?)", (CHANNEL, notice(last_sequence, concerns)))
        committed = self._conn.execute("COMMIT")  # sent too: leaving the pipeline waits
        self._end_pipeline()
        # COMMIT of a transaction that failed rolls back without an error: ask what it did.
        done = committed.statusmessage
        if done != "COMMIT":
            raise psycopg.errors.InFailedSqlTransaction(f"the transaction ended in {done}")

    def rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):  # the error was raised already
            self._end_pipeline()
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._pipeline = None
        self._leave.pop_all()
        self._conn.close()


class PostgresDriver:
    """Connections to one PostgreSQL database, given by a postgresql:// URL."""

    errors = (psycopg.Error,)
    lost = (psycopg.OperationalError,)
    shared = True
    changes_per_transaction = CHANGES_PER_TRANSACTION

    def __init__(self, url: str) -> None:
        self._url = url
        self.description = describe(url)
        # Our own watcher's channel: closing wakes it at once rather than at its next poll.
        self._stop_channel = f"drivefs_stop_{uuid.uuid4().hex}"
        # The server processes of our writer's connections: the engine announces their
        # commits itself, so their notifications are skipped.
        self._own_sessions: set[int] = set()

    def scrub(self, text: str) -> str:
        """text without the URL's password (libpq may quote the URL in an error)."""
        text = text.replace(self._url, self.description)
        for found in _PASSWORD.finditer(self._url):
            for secret in found.groups():
                if secret:
                    text = text.replace(secret, "***")
        return text

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._url,
                autocommit=True,
                row_factory=_rows,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="metad",
            )
        except psycopg.Error as exc:
            raise psycopg.OperationalError(self.scrub(str(exc))) from None

    def connect(self, *, writer: bool) -> PostgresConnection:
        if not writer:
            return PostgresConnection(self._connect_reader(), self._connect_reader)
        conn = self._connect_writer()
        try:
            schema_postgres.migrate_postgres(conn, WRITE_LOCK)
        except BaseException:
            conn.close()
            raise
        return PostgresConnection(conn, self._connect_writer)

    def _connect_writer(self) -> psycopg.Connection[Any]:
        """The writer's connection: its notifications are our own commits (see watch)."""
        conn = self._connect()
        self._own_sessions.add(conn.info.backend_pid)
        return conn

    def _connect_reader(self) -> psycopg.Connection[Any]:
        conn = self._connect()
        try:
            conn.execute("SET default_transaction_read_only = on")
        except BaseException:
            conn.close()
            raise
        return conn

    def schema_version(self, conn: Sql) -> int:
        return schema_postgres.postgres_version(conn)

    def watch(
        self, on_head: Callable[[int, frozenset[int] | None], None], stopping: threading.Event
    ) -> None:
        """LISTENs for other replicas' commits, and reads the head every POLL_S."""
        conn: psycopg.Connection[Any] | None = None
        reported = 0
        failing = False
        while not stopping.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {self._stop_channel}")
                for message in conn.notifies(timeout=POLL_S):
                    if message.channel == self._stop_channel:
                        break
                    parsed = parse_notice(message.payload)
                    if parsed is not None:
                        head, concerns = parsed
                        if message.pid in self._own_sessions:  # the engine told it already
                            reported = max(reported, head)
                        elif concerns is not None or head > reported:
                            reported = max(reported, head)
                            on_head(head, concerns)
                    if stopping.is_set():
                        break
                row = conn.execute("SELECT COALESCE(MAX(sequence), 0) FROM changes").fetchone()
                if row is not None and int(row[0]) > reported:
                    reported = int(row[0])
                    on_head(reported, None)  # not told: whom it concerns is unknown
                if failing:
                    log.info("watching %s for other replicas' commits again", self.description)
                    failing = False
            except psycopg.Error as exc:
                if not failing:
                    log.warning("lost the journal watch on %s: %s", self.description, exc)
                    failing = True
                if conn is not None:
                    conn.close()
                    conn = None
                stopping.wait(POLL_S)
            except BaseException:
                log.exception("the journal watch stopped")
                break
        if conn is not None:
            conn.close()

    def stop_watching(self, conn: PostgresConnection) -> None:
        conn.execute("SELECT pg_notify(?, '')", (self._stop_channel,))

    def __repr__(self) -> str:
        return f"PostgresDriver({self.description})"
