"""The engine under the store: connections, their threads, group commit.

Owns the database through connections that a driver opens (sqlite.py for a
file, postgres.py for a PostgreSQL URL), each owned by a thread of its own:
one writer and two readers beside it. Every store operation is one hop to one
of those threads, which runs all its SQL as a plain synchronous function: the
event loop never waits on the database, and an operation pays the thread
hand-off once, not once per statement.

Writes are serialized through a queue that the writer's thread drains: the
writes queued while one commit was in flight form the next write transaction
(the driver's `begin_write`: the database's single-writer lock), each in its
own SAVEPOINT, so they share one commit and its fsync (group commit). Each
caller gets its answer only after that COMMIT returned: a write whose RPC
returned is durable. After each commit the engine calls `on_commit(last
journal sequence, the users it concerns)` on the event loop so subscribers
wake; a driver whose database other processes write too (PostgreSQL) also
watches for their commits on a thread of its own and reports them the same
way. A long write_each is cut into transactions of about the driver's
changes_per_transaction (Store.write_each says how set-based runs stretch it),
each queued once the one before committed.

A read of several statements runs them in one read transaction on its
reader (`snapshot`), so it sees one committed state.

Must not: hold the queries of any feature (store.py and the modules it calls
do), name an SQL dialect, or know gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from metad.errors import DatabaseUnavailable, StartupError
from metad.sql import Sql
from metad.transaction import Transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

# Writes queued while a commit is in flight share the next transaction (and its
# fsync), up to this many; it bounds how long one transaction holds the writer.
MAX_GROUP_COMMIT = 256
# Reads run on this many reader connections (threads) beside the writer.
READERS = 2


# on_commit(last journal sequence, the users the commit concerns or None if unknown).
OnCommit = Callable[[int, frozenset[int] | None], None]


class Connection(Sql, Protocol):
    """What an engine's connection offers the engine beyond Sql: its transactions."""

    def begin_write(self) -> None:
        """Starts a write transaction as the database's only writer until it ends."""
        ...

    def commit_write(self, last_sequence: int, concerns: frozenset[int]) -> None:
        """Commits; last_sequence: the newest journal row it wrote (0: none); concerns:
        the users its journal rows concern (changes.CommitSignal)."""
        ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class Driver(Protocol):
    """One engine: how to open its connections, and which errors mean "cannot open"."""

    description: str  # what the database is, for logs and errors (never a password)
    shared: bool  # whether other processes may write the database too (replicas)
    # How many changes of one write_each share a transaction at most (0: all of
    # them). PostgreSQL keeps every version of a row a transaction wrote until it
    # ends and steps over them on each later read of the row, so N changes that
    # each write one hot row (a folder's times, a user's usage) cost N^2 there.
    changes_per_transaction: int
    errors: tuple[type[BaseException], ...]  # the driver's own error classes
    lost: tuple[type[BaseException], ...]  # those that mean "the database is out of reach"

    def connect(self, *, writer: bool) -> Connection:
        """On the connection's own thread. The writer's connects first and migrates."""
        ...

    def schema_version(self, conn: Sql) -> int:
        """The version of the schema the database is at."""
        ...

    def watch(self, on_head: OnCommit, stopping: threading.Event) -> None:
        """Until stopping is set (on a thread of its own): reports the journal's head,
        and whom the commit concerns if it knows (else None), when other processes
        commit to the database. Returns at once if none can."""
        ...

    def stop_watching(self, conn: Connection) -> None:
        """After stopping was set, on the writer's connection: wakes watch to see it."""
        ...


def driver_for(database: str | Path) -> Driver:
    """The driver for a database: a postgresql:// URL, or else the path of a SQLite file."""
    if isinstance(database, str) and database.startswith(("postgresql://", "postgres://")):
        from metad.postgres import PostgresDriver

        return PostgresDriver(database)
    from metad.sqlite import SqliteDriver

    return SqliteDriver(Path(database))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller went away (cancelled)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Connection:
    """One connection of the driver's and the one thread that uses it.

    `run(fn)` hands fn(connection) to the thread and awaits its outcome: one
    hop, however many statements fn executes. Jobs run one at a time in the
    order they were submitted; outcomes come back in that order too.
    """

    def __init__(
        self, name: str, driver: Driver, *, writer: bool, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._driver = driver
        self._for_writing = writer
        self._loop = loop
        self._jobs: queue.SimpleQueue[Callable[[Connection], None] | None] = queue.SimpleQueue()
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.load = 0  # run() calls not answered yet: reads go to the least loaded reader

    @classmethod
    async def open(cls, name: str, driver: Driver, *, writer: bool) -> _Connection:
        """Starts the thread, which connects and configures (and, for the writer, migrates).

        Only that thread ever touches the connection.
        """
        connection = cls(name, driver, writer=writer, loop=asyncio.get_running_loop())
        connection._thread.start()
        await connection._opened
        return connection

    def _post(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self.call_soon(_settle, future, result, error)

    def _serve(self) -> None:
        try:
            conn = self._driver.connect(writer=self._for_writing)
        except BaseException as exc:
            self._post(self._opened, None, exc)
            self._post(self._closed, None, None)
            return
        self._post(self._opened, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                job(conn)
        finally:
            conn.close()
            self._post(self._closed, None, None)

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queues fn(connection) for the thread; the future gets its result or exception."""
        future: asyncio.Future[T] = self._loop.create_future()

        def job(conn: Connection) -> None:
            try:
                result = fn(conn)
            except BaseException as exc:
                self._post(future, None, exc)
            else:
                self._post(future, result, None)

        self._jobs.put(job)
        return future

    async def run(self, fn: Callable[[Connection], T]) -> T:
        self.load += 1
        try:
            return await self.submit(fn)
        finally:
            self.load -= 1

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """From the thread: has the event loop run callback(*args), after what was posted before."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)

    async def close(self) -> None:
        """Runs the jobs already queued, then closes the connection and ends the thread."""
        self._jobs.put(None)
        await self._closed


# A write's outcome inside a batch: its result, or the error it alone failed with.
_Outcome = tuple[Any, BaseException | None]
# A committed transaction: its writes' outcomes, its last journal sequence, whom it concerns.
_Committed = tuple[list[_Outcome], int, frozenset[int]]


def _run_batch(
    conn: Connection,
    bodies: Sequence[Callable[[Transaction], Any]],
    clock: Callable[[], int],
) -> _Committed:
    """One transaction for the batch, one SAVEPOINT per write, one fsync for all.

    Runs on the writer's thread. A write that raises rolls back to its
    savepoint and fails alone. If the transaction as a whole fails (COMMIT, or
    an error that makes the database abandon it), this raises and every write of the
    batch fails with that error. Returns the outcomes in batch order and the
    last journal sequence the transaction wrote (0 if none).
    """
    outcomes: list[_Outcome] = []
    last_sequence = 0
    concerns: set[int] = set()
    # A lone write needs no savepoint: if it fails, the whole transaction goes.
    savepoints = len(bodies) > 1
    try:
        conn.begin_write()
        for body in bodies:
            tx = Transaction(conn, clock())
            # Without a savepoint an error fails the transaction (raised from here).
            outcome: _Outcome = tx.attempt(body) if savepoints else (body(tx), None)
            if outcome[1] is None:
                last_sequence = max(last_sequence, tx.last_sequence)
                concerns |= tx.concerns
            outcomes.append(outcome)
        conn.commit_write(last_sequence, frozenset(concerns))
    except BaseException:
        if conn.in_transaction:
            try:
                conn.rollback()
            except Exception:
                log.exception("rolling back a failed transaction failed")
        raise
    return outcomes, last_sequence, frozenset(concerns)


def snapshot(read: Callable[[Sql], T]) -> Callable[[Sql], T]:
    """For a read of several statements: runs them in one read transaction.

    So they all see the same committed state (a single statement does anyway).
    """

    @functools.wraps(read)
    def in_one_transaction(conn: Sql) -> T:
        conn.begin_snapshot()
        try:
            return read(conn)
        finally:
            conn.end_snapshot()  # nothing to keep: ends the read transaction

    return in_one_transaction


@dataclass(frozen=True)
class _Write:
    """A queued write: what to run in the transaction, and where its outcome goes."""

    body: Callable[[Transaction], Any]
    future: asyncio.Future[Any]
    changes: int  # how many changes it makes (write_each's chunks: several)


# A committed (or failed) batch: its writes, their outcomes, its last journal sequence,
# whom it concerns.
_Batch = tuple[list[_Write], list[_Outcome], int, frozenset[int]]


class Engine:
    """The database through its connections; open with `Engine.open`."""

    def __init__(
        self,
        driver: Driver,
        writer: _Connection,
        readers: Sequence[_Connection],
        *,
        on_commit: OnCommit,
        clock: Callable[[], int],
    ) -> None:
        self.description = driver.description
        self.shared = driver.shared
        self.changes_per_transaction = driver.changes_per_transaction
        self._driver = driver
        self._writer = writer
        self._readers = tuple(readers)
        self._on_commit = on_commit
        self._clock = clock
        # Filled on the event loop, drained on the writer's thread.
        self._writes: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        # The writer's job that drains _writes, while one is queued or running.
        self._committing: asyncio.Future[_Batch | None] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._announced = 0  # the highest sequence on_commit was told concerns everyone

    @classmethod
    async def open(
        cls,
        database: str | Path,
        *,
        on_commit: OnCommit,
        clock: Callable[[], int],
    ) -> Engine:
        """Opens (creating and migrating if needed) the database: a path or a URL.

        Raises StartupError (SchemaTooNew among them) for problems an operator
        can fix: unreadable file, not a database, unreachable server, database
        from a newer metad. clock is read on the writer's thread, once per write.
        """
        driver = driver_for(database)
        opened: list[_Connection] = []
        try:
            # The writer first: it creates the database and migrates.
            opened.append(await _Connection.open("metad-writer", driver, writer=True))
            for index in range(READERS):
                opened.append(await _Connection.open(f"metad-reader-{index}", driver, writer=False))
        except BaseException as exc:
            for connection in reversed(opened):
                await connection.close()
            if isinstance(exc, driver.errors):
                raise StartupError(f"cannot open database {driver.description}: {exc}") from exc
            raise
        engine = cls(driver, opened[0], opened[1:], on_commit=on_commit, clock=clock)
        engine._start_watching()
        return engine

    def _start_watching(self) -> None:
        """Other processes' commits (a shared database) wake our subscribers too."""
        loop = asyncio.get_running_loop()

        def on_head(sequence: int, concerns: frozenset[int] | None) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(self._announce, sequence, concerns)

        self._watcher = threading.Thread(
            target=self._driver.watch,
            args=(on_head, self._stopping),
            name="metad-watcher",
            daemon=True,
        )
        self._watcher.start()

    async def close(self) -> None:
        """Lets queued writes commit, then closes every connection (the writer last)."""
        while self._committing is not None:
            await asyncio.wait([self._committing])
        self._stopping.set()
        try:
            await self._writer.run(self._driver.stop_watching)
        except self._driver.errors as exc:  # it stops at its next poll anyway
            log.info("could not wake the journal watch to stop it: %s", exc)
        for reader in self._readers:
            await reader.close()
        await self._writer.close()
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join)

    async def schema_version(self) -> int:
        return await self.read(self._driver.schema_version)

    async def read(self, read: Callable[[Sql], T]) -> T:
        """Runs read on the least busy reader's thread: one hop for all its statements.

        Raises DatabaseUnavailable when the database is out of reach.
        """
        reader = min(self._readers, key=lambda connection: connection.load)
        try:
            return await reader.run(read)
        except self._driver.lost as exc:
            raise DatabaseUnavailable(f"the database is out of reach: {exc}") from exc

    async def write(self, body: Callable[[Transaction], T], changes: int = 1) -> T:
        """Runs body as one atomic write and returns its result once it is durable.

        body runs on the writer's thread, inside the transaction of its batch.
        The caller is shielded: a client that gives up (deadline, cancel) does
        not interrupt a transaction halfway, and no commit notification is lost.
        Raises DatabaseUnavailable when the database is out of reach (if that
        happened at COMMIT, the write may have been made). changes: how many
        changes body makes, which bounds what shares its transaction (see
        Driver.changes_per_transaction).
        """
        return await self.written(self.queue(body, changes))

    def queue(self, body: Callable[[Transaction], T], changes: int = 1) -> asyncio.Future[T]:
        """Queues body as a write at once (writes commit in the order queued); see write."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # A caller that went away never reads its outcome; retrieving it here
        # keeps asyncio from logging "exception was never retrieved".
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._writes.put(_Write(body, future, changes))
        if self._committing is None:
            self._start_committing()
        return future

    async def written(self, future: asyncio.Future[T]) -> T:
        """The outcome of a queued write, once it is durable (see write)."""
        try:
            return await asyncio.shield(future)
        except self._driver.lost as exc:
            raise DatabaseUnavailable(
                f"the database is out of reach (the change may or may not have been made): {exc}"
            ) from exc

    def _start_committing(self) -> None:
        self._committing = self._writer.submit(self._commit_queued)
        self._committing.add_done_callback(self._committing_ended)

    def _committing_ended(self, job: asyncio.Future[_Batch | None]) -> None:
        """Runs on the event loop, like every put: sees any write the thread did not."""
        self._committing = None
        if job.exception() is not None:  # its writes were answered from the thread
            log.error("the writer stopped committing", exc_info=job.exception())
        elif (last := job.result()) is not None:
            self._deliver(*last)
        if not self._writes.empty():  # queued after the thread's last look
            self._start_committing()

    def _commit_queued(self, conn: Connection) -> _Batch | None:
        """On the writer's thread: commits the queued writes batch by batch until none is left.

        The writes queued while one batch commits form the next batch, up to
        MAX_GROUP_COMMIT writes and about the driver's changes_per_transaction:
        concurrent writes share a transaction and its fsync.
        Outcomes go back to the event loop in commit order; those of the last
        batch as the job's own result, so a lone write costs a single wake-up.
        """
        done: _Batch | None = None
        most = self._driver.changes_per_transaction or None
        while True:
            batch: list[_Write] = []
            changes = 0
            with contextlib.suppress(queue.Empty):
                while len(batch) < MAX_GROUP_COMMIT and (most is None or changes < most):
                    batch.append(self._writes.get_nowait())
                    changes += batch[-1].changes
            if not batch:
                return done
            if done is not None:
                self._writer.call_soon(self._deliver, *done)
            try:
                done = (batch, *_run_batch(conn, [write.body for write in batch], self._clock))
            except BaseException as exc:
                done = (batch, [(None, exc)] * len(batch), 0, frozenset())
                if not isinstance(exc, Exception):
                    self._writer.call_soon(self._deliver, *done)
                    raise

    def _deliver(
        self,
        batch: list[_Write],
        outcomes: Sequence[_Outcome],
        last_sequence: int,
        concerns: frozenset[int],
    ) -> None:
        """On the event loop: announces the commit, then answers its writes."""
        self._announce(last_sequence, concerns)
        for write, (result, error) in zip(batch, outcomes, strict=True):
            _settle(write.future, result, error)

    def _announce(self, sequence: int, concerns: frozenset[int] | None) -> None:
        """On the event loop: on_commit for each commit whose users are known (replicas'
        may come after a later one: their users still count), and for each new head
        whose users are not."""
        if concerns is None:
            if sequence > self._announced:
                self._announced = sequence
                self._on_commit(sequence, None)
        elif sequence and concerns:
            self._on_commit(sequence, concerns)
