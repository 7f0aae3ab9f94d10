"""The metadata store: every SQL statement of metad and its transactions.

Owns the SQLite file (WAL, synchronous=FULL, foreign keys) through two
connections: one writer and one read-only reader, which WAL lets run beside
the writer. Every change writes its change-journal row in the same
transaction as the change itself and stamps the node's change_sequence; after
each commit the store calls `on_commit(last sequence)` so subscribers wake.

Writes are serialized through a queue drained by a single committer task (the
only user of the writer connection): the writes queued while one commit was
in flight run in the next BEGIN IMMEDIATE ... COMMIT, each in its own
SAVEPOINT, so they share one fsync (group commit). Each caller gets its answer
only after that COMMIT returned: a write whose RPC returned is on disk.

Raises the domain errors of errors.py; knows nothing of gRPC. Reads on the
reader are single statements (or read immutable rows), so each sees one
committed state without holding a read transaction open on the shared reader.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from metad import rules, schema
from metad.errors import (
    AlreadyExists,
    DirectoryNotEmpty,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotAFile,
    NotFound,
    StaleRevision,
    StartupError,
)
from metad.models import (
    Actor,
    BlockRef,
    ChangeEvent,
    ChangeKind,
    DirectoryPage,
    Node,
    NodeKind,
    Revision,
    Usage,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_USER_ID = 1
FIRST_USER_NAME = "owner"
ROOT_MODE = 0o755
BUSY_TIMEOUT_MS = 10_000
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
# Writes queued while a commit is in flight share the next transaction (and its
# fsync), up to this many; it bounds how long one transaction holds the writer.
MAX_GROUP_COMMIT = 256

_NODE_COLUMNS = (
    "id, owner_id, parent_id, name, kind, mode, size, mtime_ns, ctime_ns, revision, "
    "symlink_target, change_sequence, deleted_ns"
)
_CHANGE_COLUMNS = (
    "sequence, kind, node_id, node_kind, parent_id, name, old_parent_id, old_name, revision, "
    "actor_id, device, time_ns, replaced_node_id"
)
_REVISION_COLUMNS = "node_id, number, size, mtime_ns, mode, author_id, device, created_ns"


def _node(row: sqlite3.Row) -> Node:
    return Node(
        id=row["id"],
        owner_id=row["owner_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        kind=NodeKind(row["kind"]),
        mode=row["mode"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        ctime_ns=row["ctime_ns"],
        revision=row["revision"],
        symlink_target=row["symlink_target"],
        change_sequence=row["change_sequence"],
        deleted_ns=row["deleted_ns"],
    )


def _change(row: sqlite3.Row) -> ChangeEvent:
    return ChangeEvent(
        sequence=row["sequence"],
        kind=ChangeKind(row["kind"]),
        node_id=row["node_id"],
        node_kind=NodeKind(row["node_kind"]),
        parent_id=row["parent_id"],
        name=row["name"],
        old_parent_id=row["old_parent_id"],
        old_name=row["old_name"],
        revision=row["revision"],
        actor_id=row["actor_id"],
        device=row["device"],
        time_ns=row["time_ns"],
        replaced_node_id=row["replaced_node_id"],
    )


def _revision(row: sqlite3.Row, blocks: tuple[BlockRef, ...] = ()) -> Revision:
    return Revision(
        node_id=row["node_id"],
        number=row["number"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        mode=row["mode"],
        author_id=row["author_id"],
        device=row["device"],
        created_ns=row["created_ns"],
        blocks=blocks,
    )


# Every statement is one hop to the connection's thread; execute_fetchall keeps
# it to one (a cursor would take three: execute, fetch, close).
async def _fetch_one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> Any:
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


async def _fetch_all(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


async def _live_node(conn: aiosqlite.Connection, node_id: int, user_id: int) -> Node:
    """A live node the user may see; NotFound otherwise (no existence leak)."""
    row = await _fetch_one(
        conn,
        f"SELECT {_NODE_COLUMNS} FROM nodes WHERE id = ? AND deleted_ns IS NULL",
        (node_id,),
    )
    if row is None:
        raise NotFound(f"no node {node_id}")
    node = _node(row)
    if rules.role_of(node, user_id) is None:
        raise NotFound(f"no node {node_id}")
    return node


async def _directory(conn: aiosqlite.Connection, node_id: int, user_id: int) -> Node:
    node = await _live_node(conn, node_id, user_id)
    if node.kind is not NodeKind.DIRECTORY:
        raise NotADirectory(f"node {node_id} is not a directory")
    return node


async def _child(conn: aiosqlite.Connection, parent_id: int, name: str) -> Node | None:
    row = await _fetch_one(
        conn,
        f"SELECT {_NODE_COLUMNS} FROM nodes"
        " WHERE parent_id = ? AND name = ? AND deleted_ns IS NULL",
        (parent_id, name),
    )
    return None if row is None else _node(row)


async def _file(conn: aiosqlite.Connection, node_id: int, user_id: int) -> Node:
    node = await _live_node(conn, node_id, user_id)
    if node.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"node {node_id} is a directory, not a file")
    if node.kind is not NodeKind.FILE:
        raise NotAFile(f"node {node_id} is a {node.kind.name.lower()}, not a file")
    return node


@dataclass
class _Transaction:
    """One write transaction: the writer connection, its clock reading and its journal."""

    conn: aiosqlite.Connection
    now_ns: int
    last_sequence: int = 0

    async def insert_node(
        self,
        *,
        owner_id: int,
        parent_id: int,
        name: str,
        kind: NodeKind,
        mode: int,
        mtime_ns: int,
        revision: int = 0,
        size: int = 0,
        symlink_target: str | None = None,
    ) -> Node:
        row = await _fetch_one(
            self.conn,
            "INSERT INTO nodes (owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
            " revision, size, symlink_target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            f" RETURNING {_NODE_COLUMNS}",
            (
                owner_id,
                parent_id,
                name,
                kind.value,
                mode,
                mtime_ns,
                self.now_ns,
                revision,
                size,
                symlink_target,
            ),
        )
        return _node(row)

    async def insert_revision(
        self, node: Node, number: int, size: int, mtime_ns: int, actor: Actor
    ) -> None:
        await self.conn.execute(
            f"INSERT INTO revisions ({_REVISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (node.id, number, size, mtime_ns, node.mode, actor.user_id, actor.device, self.now_ns),
        )

    async def ensure_free(self, parent_id: int, name: str) -> None:
        if await _child(self.conn, parent_id, name) is not None:
            raise AlreadyExists(f"{name!r} already exists in directory {parent_id}")

    async def is_empty(self, directory_id: int) -> bool:
        row = await _fetch_one(
            self.conn,
            "SELECT 1 FROM nodes WHERE parent_id = ? AND deleted_ns IS NULL LIMIT 1",
            (directory_id,),
        )
        return row is None

    async def is_within(self, node_id: int, ancestor_id: int) -> bool:
        """Whether ancestor_id is node_id itself or one of its ancestors."""
        row = await _fetch_one(
            self.conn,
            "WITH RECURSIVE up (id) AS ("
            "  SELECT ? UNION ALL"
            "  SELECT nodes.parent_id FROM nodes JOIN up ON nodes.id = up.id"
            "  WHERE nodes.parent_id IS NOT NULL"
            ") SELECT 1 FROM up WHERE id = ? LIMIT 1",
            (node_id, ancestor_id),
        )
        return row is not None

    async def touch_directory(self, directory_id: int) -> None:
        """An entry was added, removed or renamed: the directory's mtime and ctime move."""
        await self.conn.execute(
            "UPDATE nodes SET mtime_ns = ?, ctime_ns = ? WHERE id = ?",
            (self.now_ns, self.now_ns, directory_id),
        )

    async def journal(
        self,
        kind: ChangeKind,
        node: Node,
        actor: Actor,
        *,
        parent_id: int | None,
        name: str,
        old_parent_id: int | None = None,
        old_name: str | None = None,
        revision: int = 0,
        replaced_node_id: int | None = None,
    ) -> Node:
        """Appends a change-journal row and stamps the nodes it touched with its sequence.

        Call it after the node's own updates: it returns the node as committed.
        """
        row = await self.conn.execute_insert(
            "INSERT INTO changes (owner_id, kind, node_id, node_kind, parent_id, name,"
            " old_parent_id, old_name, revision, actor_id, device, time_ns, replaced_node_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                node.owner_id,
                kind.value,
                node.id,
                node.kind.value,
                parent_id,
                name,
                old_parent_id,
                old_name,
                revision,
                actor.user_id,
                actor.device,
                self.now_ns,
                replaced_node_id,
            ),
        )
        assert row is not None
        sequence = int(row[0])
        self.last_sequence = sequence
        if replaced_node_id is not None:
            await self.conn.execute(
                "UPDATE nodes SET change_sequence = ? WHERE id = ?", (sequence, replaced_node_id)
            )
        stamped = await _fetch_one(
            self.conn,
            f"UPDATE nodes SET change_sequence = ? WHERE id = ? RETURNING {_NODE_COLUMNS}",
            (sequence, node.id),
        )
        return _node(stamped)


async def _check_replaceable(tx: _Transaction, node: Node, replaced: Node) -> None:
    """rename(2) rules: a directory replaces only an empty directory, others only non-dirs."""
    if node.kind is NodeKind.DIRECTORY:
        if replaced.kind is not NodeKind.DIRECTORY:
            raise NotADirectory(f"cannot replace non-directory {replaced.id} by a directory")
        if not await tx.is_empty(replaced.id):
            raise DirectoryNotEmpty(f"directory {replaced.id} is not empty")
    elif replaced.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"cannot replace directory {replaced.id} by a non-directory")


@dataclass(frozen=True)
class _Write:
    """A queued write: what to run in the transaction, and where its outcome goes."""

    body: Callable[[_Transaction], Awaitable[Any]]
    future: asyncio.Future[Any]


class Store:
    """The metadata of every drive in one SQLite file. Open with `Store.open`."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        *,
        on_commit: Callable[[int], None],
        clock: Callable[[], int],
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._on_commit = on_commit
        self._clock = clock
        self._pending: list[_Write] = []
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        on_commit: Callable[[int], None] = lambda sequence: None,
        clock: Callable[[], int] = time.time_ns,
    ) -> Store:
        """Opens (creating and migrating if needed) the database at path.

        Raises StartupError (SchemaTooNew among them) for problems an operator
        can fix: unreadable file, not a database, database from a newer metad.
        """
        writer: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            writer.row_factory = sqlite3.Row
            async with writer.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise StartupError(f"cannot put {path} in WAL mode (got {row and row[0]!r})")
            # FULL: the WAL is fsynced at every commit, so a commit whose RPC
            # returned survives a crash or a power loss.
            await writer.execute("PRAGMA synchronous = FULL")
            await writer.execute("PRAGMA foreign_keys = ON")
            await writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await schema.migrate(writer)
            reader = await aiosqlite.connect(path, isolation_level=None)
            reader.row_factory = sqlite3.Row
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await reader.execute("PRAGMA query_only = ON")
        except BaseException as exc:
            for conn in (reader, writer):
                if conn is not None:
                    await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StartupError(f"cannot open database {path}: {exc}") from exc
            raise
        store = cls(path, writer, reader, on_commit=on_commit, clock=clock)
        try:
            await store._ensure_first_user()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Lets queued writes commit, then closes both connections."""
        if self._committer is not None:
            await self._committer
        await self._reader.close()
        await self._writer.close()

    async def schema_version(self) -> int:
        return await schema.user_version(self._reader)

    # -- writes -------------------------------------------------------------------------------

    async def _write(self, body: Callable[[_Transaction], Awaitable[T]]) -> T:
        """Runs body as one atomic write and returns its result once it is durable.

        The caller is shielded: a client that gives up (deadline, cancel) does
        not interrupt a transaction halfway, and no commit notification is lost.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # A caller that went away never reads its outcome; retrieving it here
        # keeps asyncio from logging "exception was never retrieved".
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append(_Write(body, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending(), name="metad-commit")
        return await asyncio.shield(future)

    async def _commit_pending(self) -> None:
        """The only user of the writer connection once open: drains the queue batch by batch."""
        while self._pending:
            batch = self._pending[:MAX_GROUP_COMMIT]
            del self._pending[: len(batch)]
            try:
                await self._commit_batch(batch)
            except Exception:
                # Only a failed ROLLBACK gets here; its writes already have their error.
                log.exception("rolling back a failed transaction failed")

    async def _commit_batch(self, batch: list[_Write]) -> None:
        """One transaction for the batch, one SAVEPOINT per write, one fsync for all.

        A write that raises rolls back to its savepoint and fails alone. If the
        transaction as a whole fails (COMMIT or an error that makes SQLite
        abandon it), every write of the batch fails with that error.
        """
        conn = self._writer
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        last_sequence = 0
        # A lone write needs no savepoint: if it fails, the whole transaction goes.
        savepoints = len(batch) > 1
        try:
            await conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                tx = _Transaction(conn, self._clock())
                if savepoints:
                    await conn.execute("SAVEPOINT write")
                try:
                    result = await write.body(tx)
                except Exception as exc:
                    if not savepoints or not conn.in_transaction:
                        raise  # fails the transaction (SQLite may have rolled it back itself)
                    await conn.execute("ROLLBACK TO write")
                    await conn.execute("RELEASE write")
                    outcomes.append((write.future, None, exc))
                    continue
                if savepoints:
                    await conn.execute("RELEASE write")
                last_sequence = max(last_sequence, tx.last_sequence)
                outcomes.append((write.future, result, None))
            await conn.execute("COMMIT")
        except BaseException as exc:
            for write in batch:  # answer first: nobody waits on a failed rollback
                if not write.future.done():
                    write.future.set_exception(exc)
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            if not isinstance(exc, Exception):
                raise
            return
        if last_sequence:
            self._on_commit(last_sequence)
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    async def _ensure_first_user(self) -> None:
        """First start: user 1 ("owner", no password, unlimited) and its root directory."""

        async def body(tx: _Transaction) -> None:
            if await _fetch_one(tx.conn, "SELECT 1 FROM users LIMIT 1", ()) is not None:
                return
            await tx.conn.execute(
                "INSERT INTO users (id, name, password_hash, quota_bytes, root_node_id, created_ns)"
                " VALUES (?, ?, NULL, 0, NULL, ?)",
                (FIRST_USER_ID, FIRST_USER_NAME, tx.now_ns),
            )
            root_id = await tx.conn.execute_insert(
                "INSERT INTO nodes (owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns)"
                " VALUES (?, NULL, '', ?, ?, ?, ?)",
                (FIRST_USER_ID, NodeKind.DIRECTORY.value, ROOT_MODE, tx.now_ns, tx.now_ns),
            )
            assert root_id is not None
            await tx.conn.execute(
                "UPDATE users SET root_node_id = ? WHERE id = ?", (root_id[0], FIRST_USER_ID)
            )

        await self._write(body)

    async def make_directory(
        self, actor: Actor, parent_id: int, name: str, mode: int, mtime_ns: int = 0
    ) -> Node:
        rules.check_name(name)

        async def body(tx: _Transaction) -> Node:
            parent = await _directory(tx.conn, parent_id, actor.user_id)
            await tx.ensure_free(parent.id, name)
            node = await tx.insert_node(
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                kind=NodeKind.DIRECTORY,
                mode=rules.permission_bits(mode),
                mtime_ns=mtime_ns or tx.now_ns,
            )
            node = await tx.journal(ChangeKind.CREATED, node, actor, parent_id=parent.id, name=name)
            await tx.touch_directory(parent.id)
            return node

        return await self._write(body)

    async def create_file(
        self, actor: Actor, parent_id: int, name: str, mode: int, mtime_ns: int = 0
    ) -> Node:
        """A new empty file at revision 1."""
        rules.check_name(name)

        async def body(tx: _Transaction) -> Node:
            parent = await _directory(tx.conn, parent_id, actor.user_id)
            await tx.ensure_free(parent.id, name)
            mtime = mtime_ns or tx.now_ns
            node = await tx.insert_node(
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                kind=NodeKind.FILE,
                mode=rules.permission_bits(mode),
                mtime_ns=mtime,
                revision=1,
            )
            await tx.insert_revision(node, 1, 0, mtime, actor)
            node = await tx.journal(
                ChangeKind.CREATED, node, actor, parent_id=parent.id, name=name, revision=1
            )
            await tx.touch_directory(parent.id)
            return node

        return await self._write(body)

    async def create_symlink(self, actor: Actor, parent_id: int, name: str, target: str) -> Node:
        rules.check_name(name)
        rules.check_symlink_target(target)

        async def body(tx: _Transaction) -> Node:
            parent = await _directory(tx.conn, parent_id, actor.user_id)
            await tx.ensure_free(parent.id, name)
            node = await tx.insert_node(
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                kind=NodeKind.SYMLINK,
                mode=rules.SYMLINK_MODE,
                mtime_ns=tx.now_ns,
                size=len(target.encode("utf-8", "surrogatepass")),
                symlink_target=target,
            )
            node = await tx.journal(ChangeKind.CREATED, node, actor, parent_id=parent.id, name=name)
            await tx.touch_directory(parent.id)
            return node

        return await self._write(body)

    async def commit_revision(
        self,
        actor: Actor,
        node_id: int,
        base_revision: int,
        size: int,
        mtime_ns: int,
        blocks: Sequence[BlockRef],
    ) -> Node:
        """Revision current+1 with its block list, only if the file is still at base_revision."""
        rules.check_blocks(size, blocks)
        block_list = tuple(blocks)

        async def body(tx: _Transaction) -> Node:
            node = await _file(tx.conn, node_id, actor.user_id)
            if node.revision != base_revision:
                raise StaleRevision(node.id, base_revision, node.revision)
            number = node.revision + 1
            mtime = mtime_ns or tx.now_ns
            await tx.insert_revision(node, number, size, mtime, actor)
            await tx.conn.executemany(
                "INSERT INTO revision_blocks"
                " (node_id, revision, block_index, hash, file_offset, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (node.id, number, index, block.hash, block.offset, block.size)
                    for index, block in enumerate(block_list)
                ],
            )
            await tx.conn.execute(
                "UPDATE nodes SET revision = ?, size = ?, mtime_ns = ?, ctime_ns = ? WHERE id = ?",
                (number, size, mtime, tx.now_ns, node.id),
            )
            return await tx.journal(
                ChangeKind.EDITED,
                node,
                actor,
                parent_id=node.parent_id,
                name=node.name,
                revision=number,
            )

        return await self._write(body)

    async def rename(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        new_parent_id: int,
        new_name: str,
        *,
        no_replace: bool = False,
    ) -> tuple[Node, int | None]:
        """Moves an entry atomically; returns the moved node and the id of the node it replaced."""
        rules.check_name(name)
        rules.check_name(new_name)

        async def body(tx: _Transaction) -> tuple[Node, int | None]:
            old_parent = await _directory(tx.conn, parent_id, actor.user_id)
            node = await _child(tx.conn, old_parent.id, name)
            if node is None:
                raise NotFound(f"no {name!r} in directory {old_parent.id}")
            new_parent = await _directory(tx.conn, new_parent_id, actor.user_id)
            if new_parent.id == old_parent.id and new_name == name:
                return node, None
            if node.kind is NodeKind.DIRECTORY and await tx.is_within(new_parent.id, node.id):
                raise InvalidMove(f"cannot move directory {node.id} into itself or its subtree")
            replaced = await _child(tx.conn, new_parent.id, new_name)
            if replaced is not None:
                if no_replace:
                    raise AlreadyExists(f"{new_name!r} already exists in {new_parent.id}")
                await _check_replaceable(tx, node, replaced)
                await tx.conn.execute(
                    "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
                    (tx.now_ns, tx.now_ns, replaced.id),
                )
            await tx.conn.execute(
                "UPDATE nodes SET parent_id = ?, name = ?, ctime_ns = ? WHERE id = ?",
                (new_parent.id, new_name, tx.now_ns, node.id),
            )
            moved = await tx.journal(
                ChangeKind.MOVED,
                node,
                actor,
                parent_id=new_parent.id,
                name=new_name,
                old_parent_id=old_parent.id,
                old_name=name,
                replaced_node_id=None if replaced is None else replaced.id,
            )
            await tx.touch_directory(old_parent.id)
            if new_parent.id != old_parent.id:
                await tx.touch_directory(new_parent.id)
            return moved, None if replaced is None else replaced.id

        return await self._write(body)

    async def delete(self, actor: Actor, parent_id: int, name: str, *, directory: bool) -> int:
        """Removes an entry from the namespace (the node and its revisions are kept)."""
        rules.check_name(name)

        async def body(tx: _Transaction) -> int:
            parent = await _directory(tx.conn, parent_id, actor.user_id)
            node = await _child(tx.conn, parent.id, name)
            if node is None:
                raise NotFound(f"no {name!r} in directory {parent.id}")
            if directory:
                if node.kind is not NodeKind.DIRECTORY:
                    raise NotADirectory(f"{name!r} is not a directory")
                if not await tx.is_empty(node.id):
                    raise DirectoryNotEmpty(f"directory {name!r} is not empty")
            elif node.kind is NodeKind.DIRECTORY:
                raise IsADirectory(f"{name!r} is a directory")
            await tx.conn.execute(
                "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
                (tx.now_ns, tx.now_ns, node.id),
            )
            await tx.journal(ChangeKind.DELETED, node, actor, parent_id=parent.id, name=name)
            await tx.touch_directory(parent.id)
            return node.id

        return await self._write(body)

    async def set_attributes(
        self, actor: Actor, node_id: int, *, mode: int | None, mtime_ns: int | None
    ) -> Node:
        """Mode and/or mtime; nothing given is a no-op that returns the node."""

        async def body(tx: _Transaction) -> Node:
            node = await _live_node(tx.conn, node_id, actor.user_id)
            if mode is None and mtime_ns is None:
                return node
            await tx.conn.execute(
                "UPDATE nodes SET mode = ?, mtime_ns = ?, ctime_ns = ? WHERE id = ?",
                (
                    node.mode if mode is None else rules.permission_bits(mode),
                    node.mtime_ns if mtime_ns is None else mtime_ns,
                    tx.now_ns,
                    node.id,
                ),
            )
            return await tx.journal(
                ChangeKind.ATTRIBUTES, node, actor, parent_id=node.parent_id, name=node.name
            )

        return await self._write(body)

    # -- reads --------------------------------------------------------------------------------

    async def get_root(self, user_id: int) -> Node:
        row = await _fetch_one(
            self._reader,
            f"SELECT {_NODE_COLUMNS} FROM nodes"
            " WHERE id = (SELECT root_node_id FROM users WHERE id = ?)",
            (user_id,),
        )
        if row is None:
            raise NotFound(f"user {user_id} has no drive")
        return _node(row)

    async def stat(self, user_id: int, node_id: int) -> Node:
        return await _live_node(self._reader, node_id, user_id)

    async def lookup(self, user_id: int, parent_id: int, name: str) -> Node:
        rules.check_name(name)
        parent = await _directory(self._reader, parent_id, user_id)
        node = await _child(self._reader, parent.id, name)
        if node is None:
            raise NotFound(f"no {name!r} in directory {parent_id}")
        return node

    async def list_directory(
        self, user_id: int, node_id: int, after_id: int = 0, page_size: int = 0
    ) -> DirectoryPage:
        """Live children with id > after_id, in id order (stable under concurrent changes)."""
        limit = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)
        directory = await _directory(self._reader, node_id, user_id)
        rows = await _fetch_all(
            self._reader,
            f"SELECT {_NODE_COLUMNS} FROM nodes"
            " WHERE parent_id = ? AND deleted_ns IS NULL AND id > ? ORDER BY id LIMIT ?",
            (directory.id, after_id, limit + 1),
        )
        return DirectoryPage(
            entries=tuple(_node(row) for row in rows[:limit]), more=len(rows) > limit
        )

    async def get_revision(self, user_id: int, node_id: int, number: int = 0) -> Revision:
        """One revision with its blocks ordered by offset; number 0 = the current one."""
        node = await _file(self._reader, node_id, user_id)
        wanted = node.revision if number == 0 else number
        # Revisions and their blocks never change once written: separate reads agree.
        row = await _fetch_one(
            self._reader,
            f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE node_id = ? AND number = ?",
            (node.id, wanted),
        )
        if row is None:
            raise NotFound(f"node {node_id} has no revision {number}")
        blocks = await _fetch_all(
            self._reader,
            "SELECT hash, file_offset, size FROM revision_blocks"
            " WHERE node_id = ? AND revision = ? ORDER BY block_index",
            (node.id, wanted),
        )
        return _revision(
            row, tuple(BlockRef(bytes(b["hash"]), b["file_offset"], b["size"]) for b in blocks)
        )

    async def list_revisions(self, user_id: int, node_id: int) -> list[Revision]:
        """Every kept revision, newest first, without block lists."""
        node = await _file(self._reader, node_id, user_id)
        rows = await _fetch_all(
            self._reader,
            f"SELECT {_REVISION_COLUMNS} FROM revisions WHERE node_id = ? ORDER BY number DESC",
            (node.id,),
        )
        return [_revision(row) for row in rows]

    async def get_usage(self, user_id: int) -> Usage:
        row = await _fetch_one(
            self._reader,
            "SELECT quota_bytes,"
            " (SELECT COALESCE(SUM(size), 0) FROM nodes"
            "   WHERE owner_id = users.id AND deleted_ns IS NULL AND kind = 'file') AS used,"
            " (SELECT COUNT(*) FROM nodes"
            "   WHERE owner_id = users.id AND deleted_ns IS NULL) AS nodes"
            " FROM users WHERE id = ?",
            (user_id,),
        )
        if row is None:
            raise NotFound(f"no user {user_id}")
        return Usage(
            used_bytes=row["used"], quota_bytes=row["quota_bytes"], node_count=row["nodes"]
        )

    async def read_changes(self, user_id: int, after: int, limit: int) -> list[ChangeEvent]:
        """Journal rows of the user's drive with sequence > after, in sequence order."""
        rows = await _fetch_all(
            self._reader,
            f"SELECT {_CHANGE_COLUMNS} FROM changes"
            " WHERE owner_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
            (user_id, after, limit),
        )
        return [_change(row) for row in rows]

    async def journal_head(self, user_id: int) -> int:
        """The newest journal sequence of the user's drive; 0 if it has none yet."""
        row = await _fetch_one(
            self._reader,
            "SELECT COALESCE(MAX(sequence), 0) FROM changes WHERE owner_id = ?",
            (user_id,),
        )
        return int(row[0])

    async def last_sequence(self) -> int:
        row = await _fetch_one(self._reader, "SELECT COALESCE(MAX(sequence), 0) FROM changes", ())
        return int(row[0])
