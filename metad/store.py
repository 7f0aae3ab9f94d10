"""The metadata store: the calls the servicers make, each one write or one read.

Each operation is one write (a body run in a transaction on the engine's
writer thread) or one read (on a reader thread, in one read transaction when
it has several statements). The feature procedures it runs are written once
against the transaction interface (transaction.py, sql.py) in their own
modules: the tree's changes in namespace.py and edits.py (so the servicer can
run them one per write or many in one: `write_each`, ApplyBatch), users.py,
revisions.py, trash.py, snapshots.py, sharing.py, journal.py (reading the
journal every change writes in its own transaction), fence.py (the garbage
collection fence). The engine (engine.py) owns the connections, whichever
database, and group commit.

Raises the domain errors of errors.py; knows nothing of gRPC or of an SQL dialect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from metad import (
    access,
    bulk,
    damage,
    edits,
    fence,
    journal,
    links,
    namespace,
    quiet,
    requests,
    reservations,
    retention,
    revisions,
    rows,
    rules,
    security,
    settings,
    sharing,
    snapshots,
    trash,
    users,
    xattrs,
)
from metad.changes import ChangePage
from metad.engine import Engine, OnCommit, snapshot
from metad.errors import (
    InvalidArgument,
    NotFound,
)
from metad.models import (
    Actor,
    BlockReference,
    DirectoryPage,
    Node,
    Restored,
    Revision,
    Role,
    Share,
    SnapshotEntry,
    StorageSummary,
    TrashEntry,
    Usage,
    User,
)
from metad.sql import Sql
from metad.transaction import USED_BYTES, Transaction, Write, child
from metad.users import FIRST_USER_ID, FIRST_USER_NAME  # noqa: F401 - the store's first user
from protos import auth

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# What one change of write_each came to: (its result, None) or (None, its error).
Outcome = tuple[Any, Exception | None]

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
# A write_each transaction on an engine that bounds its changes takes up to this many
# times the bound: set-based runs cost a SAVEPOINT each, not one per change, and a
# transaction of 240 changes measured 25-35% less CPU per file than one of 60, in
# metad and in PostgreSQL alike (new files and edits).
BULK_CHUNKS = 4


def _one_write(
    change: Callable[P, Write[T]],
) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, T]]:
    """A store method running change(...) as one write (see namespace.py, edits.py)."""

    async def method(self: Store, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._write(change(*args, **kwargs))

    method.__name__ = method.__qualname__ = change.__name__
    method.__doc__ = change.__doc__
    return method


class Store:
    """The metadata of every drive in one database. Open with `Store.open`."""

    def __init__(self, engine: Engine, *, quiet_ns: int = quiet.WINDOW_NS) -> None:
        self._engine = engine
        self.description = engine.description  # the database, for logs (never a password)
        self.shared = engine.shared  # other metad may write it too
        self.quiet_ns = quiet_ns  # files removed this soon after they came skip the trash

    @classmethod
    async def open(
        cls,
        database: str | Path,
        *,
        on_commit: OnCommit = lambda sequence, concerns: None,
        clock: Callable[[], int] = time.time_ns,
        first_user: str = FIRST_USER_NAME,
        first_user_quota: int = 0,
        quiet_ns: int = quiet.WINDOW_NS,
    ) -> Store:
        """Opens (creating and migrating if needed) the database: a SQLite file's path
        or a postgresql:// URL.

        Raises StartupError (SchemaTooNew among them) for problems an operator
        can fix: unreadable file, not a database, unreachable server, database
        from a newer metad.
        clock is read on the writer's thread, once per write. quiet_ns: see
        quiet.py (0: only the temporary names skip the trash).
        """
        engine = await Engine.open(database, on_commit=on_commit, clock=clock)
        store = cls(engine, quiet_ns=quiet_ns)
        try:
            await store._ensure_first_user(first_user, first_user_quota)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Lets queued writes commit, then closes the database."""
        await self._engine.close()

    async def adopt_drive_id(self, proposed: str) -> str:
        """The drive's id as its database keeps it: the one stored, else proposed (now stored)."""
        return await self._write(lambda tx: settings.adopt(tx, settings.DRIVE_ID, proposed))

    async def schema_version(self) -> int:
        return await self._engine.schema_version()

    async def _write(self, body: Callable[[Transaction], T]) -> T:
        """Runs body as one atomic write; returns its result once it is durable.

        The first write of a call that named a request id (requests.expect)
        is applied only once for that id (see requests.py).
        """
        key = requests.take()
        return await self._engine.write(body if key is None else requests.once(key, body))

    async def write(self, change: Write[T]) -> T:
        """Runs a change (a body from namespace.py or edits.py) as one atomic write.

        For the servicer, which builds the change from a request; as any write
        of a call that named a request id, it is applied once for that id.
        """
        return await self._write(change)

    async def write_each(self, changes: Sequence[Write[Any]]) -> list[Outcome]:
        """Runs changes in order in one transaction, so they share one commit and one fsync.

        Each is all or nothing on its own (Transaction.attempt): one that
        raises is undone alone, with its error as its outcome, and those after
        it still run. Runs of new files are written set-based (bulk.py), with
        the same outcomes. Every change that succeeded is durable when this returns.
        Outcomes come in the changes' order: (result, None) or (None, error).
        An engine that bounds the changes of a transaction (PostgreSQL, see
        engine.Driver) gets them in transactions committed one after the
        other, each queued once the one before committed: up to BULK_CHUNKS
        times that bound, as long as they go set-based, and the bound's worth
        of SAVEPOINTs (bulk.attempt_each) when some go one by one. If one
        fails as a whole, those before it stand.
        """

        key = requests.take()
        size = self._engine.changes_per_transaction
        if key is not None or not size or len(changes) <= size:
            whole: Write[list[Outcome]] = lambda tx: bulk.attempt_each(tx, changes)  # noqa: E731
            return await self._engine.write(whole if key is None else requests.once(key, whole))
        outcomes: list[Outcome] = []
        while len(outcomes) < len(changes):
            part = changes[len(outcomes) : len(outcomes) + BULK_CHUNKS * size]
            outcomes += await self._engine.write(
                lambda tx, part=part: bulk.attempt_each(tx, part, size), len(part)
            )
        return outcomes

    async def _read(self, read: Callable[[Sql], T]) -> T:
        return await self._engine.read(read)

    async def _ensure_first_user(self, name: str, quota_bytes: int) -> None:
        rules.check_user_name(name)
        await self._write(lambda tx: users.ensure_first(tx, name, quota_bytes))

    # -- users --------------------------------------------------------------------------------

    async def create_user(
        self, name: str, password_hash: str, *, quota_bytes: int, admin: bool
    ) -> User:
        """A new user with an empty drive. Raises AlreadyExists if the name is taken."""
        rules.check_user_name(name)
        return await self._write(
            lambda tx: users.create(tx, name, password_hash, quota_bytes, admin)
        )

    async def get_user(self, user_id: int) -> User:
        return await self._read(lambda conn: users.get(conn, user_id))

    async def find_user(self, name: str) -> tuple[User, str | None] | None:
        """The user of that name and their stored password hash, or None."""
        return await self._read(lambda conn: users.find(conn, name))

    async def list_users(self) -> list[User]:
        return await self._read(users.every)

    async def set_password(self, user_id: int, password_hash: str) -> User:
        """A new password; every token and grant the user holds stops working."""
        return await self._write(lambda tx: users.set_password(tx, user_id, password_hash))

    async def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disables (every token and grant refused, no sign-in) or enables an account."""
        return await self._write(lambda tx: users.set_disabled(tx, user_id, disabled))

    async def revocations(self) -> list[auth.UserRevocation]:
        return await self._read(security.revocations)

    async def set_quota(self, user_id: int, quota_bytes: int) -> User:
        return await self._write(lambda tx: users.set_quota(tx, user_id, quota_bytes))

    # The tree's changes, each run as one write: the bodies the servicer runs too.
    make_directory = _one_write(namespace.make_directory)
    create_file = _one_write(namespace.create_file)
    create_symlink = _one_write(namespace.create_symlink)
    make_node = _one_write(namespace.make_node)
    commit_revision = _one_write(edits.commit_revision)
    rename = _one_write(namespace.rename)
    exchange = _one_write(namespace.exchange)
    link = _one_write(namespace.link)
    set_attributes = _one_write(edits.set_attributes)
    set_xattr = _one_write(edits.set_xattr)
    remove_xattr = _one_write(edits.remove_xattr)

    async def delete(
        self, actor: Actor, parent_id: int, name: str, *, directory: bool
    ) -> tuple[int, bool]:
        """Removes an entry: (node id, whether the node stays under its other names)."""
        change = namespace.delete(
            actor, parent_id, name, directory=directory, quiet_ns=self.quiet_ns
        )
        return await self._write(change)

    async def get_xattrs(self, user_id: int, node_id: int) -> dict[str, bytes]:
        """A node's extended attributes, by name."""

        @snapshot
        def read(conn: Sql) -> dict[str, bytes]:
            node = access.visible_node(conn, node_id, user_id)
            return xattrs.all_of(conn, node.id)

        return await self._read(read)

    async def reserve_node_ids(self, user_id: int, count: int) -> tuple[int, int]:
        """A fresh range of node ids for the user's offline creates: (first, count)."""
        rules.check_reservation(count)
        return await self._write(lambda tx: reservations.reserve(tx, user_id, count))

    async def mark_accessed(self, user_id: int, node_ids: Sequence[int]) -> list[Node]:
        """Sets the atime of the nodes the user can see to now (a read is not a change).

        No ctime and no journal entry, as a read on a local disk; nodes the
        user cannot see (any more) are skipped, so a stale or hostile id
        learns nothing.
        """
        if len(node_ids) > rules.MAX_ACCESSED_NODES:
            raise InvalidArgument(f"at most {rules.MAX_ACCESSED_NODES} nodes at a time")

        def body(tx: Transaction) -> list[Node]:
            marked = []
            for node_id in dict.fromkeys(node_ids):
                try:
                    node = access.visible_node(tx.conn, node_id, user_id)
                except NotFound:
                    continue
                tx.conn.execute("UPDATE nodes SET atime_ns = ? WHERE id = ?", (tx.now_ns, node.id))
                marked.append(replace(node, atime_ns=tx.now_ns))
            return marked

        return await self._write(body) if node_ids else []

    # -- reads --------------------------------------------------------------------------------

    async def get_root(self, user_id: int) -> Node:
        def read(conn: Sql) -> Node:
            row = rows.fetch_one(
                conn,
                f"SELECT {rows.NODE_COLUMNS} FROM nodes"
                " WHERE id = (SELECT root_node_id FROM users WHERE id = ?)",
                (user_id,),
            )
            if row is None:
                raise NotFound(f"user {user_id} has no drive")
            return replace(rows.node(row), role=Role.OWNER)

        return await self._read(read)

    async def stat(self, user_id: int, node_id: int) -> Node:
        return await self._read(lambda conn: access.visible_node(conn, node_id, user_id))

    async def lookup(self, user_id: int, parent_id: int, name: str) -> Node:
        rules.check_name(name)

        @snapshot
        def read(conn: Sql) -> Node:
            parent = access.directory(conn, parent_id, user_id)
            node = child(conn, parent.id, name)
            if node is None:
                raise NotFound(f"no {name!r} in directory {parent_id}")
            assert parent.role is not None
            return replace(node, role=access.child_role(conn, parent.role, node, user_id))

        return await self._read(read)

    async def list_directory(
        self, user_id: int, node_id: int, after_id: int = 0, page_size: int = 0
    ) -> DirectoryPage:
        """Live children with id > after_id, in id order (stable under concurrent changes)."""
        limit = DEFAULT_PAGE_SIZE if page_size <= 0 else min(page_size, MAX_PAGE_SIZE)

        @snapshot
        def read(conn: Sql) -> DirectoryPage:
            directory = access.directory(conn, node_id, user_id)
            entries: list[Node] = []
            more = False
            link_after = after_id - links.LINK_ENTRY_BASE
            if link_after < 0:  # nodes under their own names first, then further names
                found = conn.execute(
                    f"SELECT {rows.NODE_COLUMNS} FROM nodes"
                    " WHERE parent_id = ? AND deleted_ns IS NULL AND id > ? ORDER BY id LIMIT ?",
                    (directory.id, after_id, limit + 1),
                ).fetchall()
                entries = [rows.node(row) for row in found[:limit]]
                more = len(found) > limit
                link_after = 0
            if not more:
                room = limit - len(entries)
                further = links.page(conn, directory.id, link_after, room + 1)
                entries += further[:room]
                more = len(further) > room
            assert directory.role is not None
            entries = access.with_roles(conn, directory.role, entries, user_id)
            return DirectoryPage(entries=tuple(entries), more=more)

        return await self._read(read)

    async def get_revision(self, user_id: int, node_id: int, number: int = 0) -> Revision:
        """One revision with its blocks ordered by offset; number 0 = the current one."""
        return await self._read(snapshot(lambda c: revisions.get(c, user_id, node_id, number)))

    async def list_revisions(self, user_id: int, node_id: int) -> list[Revision]:
        """Every kept revision, newest first, without block lists."""
        return await self._read(snapshot(lambda conn: revisions.kept(conn, user_id, node_id)))

    async def get_usage(self, user_id: int) -> Usage:
        def read(conn: Sql) -> Usage:
            row = rows.fetch_one(
                conn,
                f"SELECT quota_bytes, {USED_BYTES} AS used,"
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

        return await self._read(read)

    async def read_changes(self, user_id: int, after: int, limit: int) -> ChangePage:
        """The user's journal events with sequence > after, from at most limit rows.

        Theirs: every change in their drive, changes to nodes shared with them
        (as far as their shares reach now), and shares given to or taken from
        them. Each event comes with names and the path as this user sees it.
        """
        return await self._read(snapshot(lambda conn: journal.read(conn, user_id, after, limit)))

    async def journal_head(self) -> int:
        """The newest journal sequence; 0 if there is none yet.

        A subscriber that starts here gets only changes made after this call.
        """
        return await self.last_sequence()

    async def last_sequence(self) -> int:
        return await self._read(journal.head)

    # -- sharing ------------------------------------------------------------------------------

    async def share(self, actor: Actor, node_id: int, user_name: str, role: Role) -> Share:
        """Shares a node of the caller's with a user as READ or WRITE (or changes the role)."""
        if role not in (Role.READ, Role.WRITE):
            raise InvalidArgument("a share gives read or write access")
        return await self._write(lambda tx: sharing.share(tx, actor, node_id, user_name, role))

    async def unshare(self, actor: Actor, node_id: int, user_name: str = "") -> int:
        """Takes a share away from one user ("" = from everyone); returns how many went."""
        return await self._write(lambda tx: sharing.unshare(tx, actor, node_id, user_name))

    async def list_shares(self, user_id: int, node_id: int = 0) -> list[Share]:
        """Shares the user made, of live nodes (of one node if node_id)."""
        return await self._read(snapshot(lambda conn: sharing.made_by(conn, user_id, node_id)))

    async def shared_with_me(self, user_id: int) -> list[Share]:
        """Live files and folders others shared with the user."""
        return await self._read(snapshot(lambda conn: sharing.shared_with(conn, user_id)))

    # -- revisions, trash, snapshots, retention -------------------------------------------------

    async def restore_revision(self, actor: Actor, node_id: int, number: int) -> Node:
        """Makes revision number's content the file's newest revision."""
        return await self._write(lambda tx: revisions.restore(tx, actor, node_id, number))

    async def list_trash(self, user_id: int, keep_ns: int) -> list[TrashEntry]:
        return await self._read(snapshot(lambda conn: trash.entries(conn, user_id, keep_ns)))

    async def restore_from_trash(self, actor: Actor, node_id: int) -> Restored:
        return await self._write(lambda tx: trash.restore(tx, actor, node_id))

    async def empty_trash(self, user_id: int) -> tuple[int, int]:
        """Forgets the revisions of the user's deleted nodes: (nodes, bytes)."""
        return await self._write(lambda tx: trash.purge(tx, "owner_id = ?", (user_id,)))

    async def purge_trash(self, deleted_before_ns: int) -> tuple[int, int]:
        """Forgets every drive's nodes deleted before then: (nodes, bytes)."""
        return await self._write(lambda tx: trash.purge(tx, "deleted_ns < ?", (deleted_before_ns,)))

    async def thin_revisions(self, policy: retention.Retention, batch: int = 200) -> int:
        """Drops the revisions the policy no longer keeps (never a current one); returns how many.

        Works through the files in batches, each its own transaction, so the
        writer is never held for long.
        """
        dropped = 0
        after_node = 0
        while True:
            count, after_node = await self._write(
                lambda tx, after=after_node: revisions.thin(tx, policy, after, batch)
            )
            dropped += count
            if not after_node:
                return dropped

    async def list_snapshot(self, user_id: int, folder_id: int, at_ns: int) -> list[SnapshotEntry]:
        """A folder's entries as they were at at_ns (folder_id 0 = the user's root)."""

        @snapshot
        def read(conn: Sql) -> list[SnapshotEntry]:
            folder = (
                folder_id
                or rows.fetch_one(conn, "SELECT root_node_id FROM users WHERE id = ?", (user_id,))[
                    0
                ]
            )
            return snapshots.entries(conn, user_id, folder, at_ns)

        return await self._read(read)

    async def restore_snapshot(self, actor: Actor, node_id: int, at_ns: int) -> Restored:
        return await self._write(lambda tx: snapshots.restore(tx, actor, node_id, at_ns))

    # --- garbage collection fence ----------------------------------------

    async def condemn_blocks(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Fences the hashes no revision refers to; returns them (see fence.py)."""
        candidates = sorted(set(hashes))
        return await self._write(lambda tx: fence.condemn(tx, candidates))

    async def release_blocks(self, hashes: Sequence[bytes]) -> None:
        """Lifts the fence once the collector has deleted the blocks."""
        unique = sorted(set(hashes))
        await self._write(lambda tx: fence.release(tx, unique))

    async def list_condemned_blocks(self, among: Sequence[bytes] = ()) -> list[bytes]:
        """Condemned hashes: those of among that are, or all when among is empty."""
        return await self._read(lambda conn: fence.condemned(conn, among))

    async def referenced_blocks(self, after: bytes, limit: int) -> tuple[list[bytes], bool]:
        """A page of distinct referenced hashes greater than after, in order; more?"""
        return await self._read(lambda conn: fence.referenced(conn, after, limit))

    async def block_references(self, hashes: Sequence[bytes]) -> list[BlockReference]:
        """The files whose kept revisions refer to these blocks (see damage.py)."""
        return await self._read(snapshot(lambda conn: damage.references(conn, hashes)))

    async def report_damaged(self, hashes: Sequence[bytes]) -> int:
        """Journals DAMAGED for the live files referring to these blocks; how many files."""
        return await self._write(lambda tx: damage.journal_damaged(tx, hashes))

    async def purge_request_log(self, before_ns: int) -> int:
        """Forgets the request ids of changes applied before then (see requests.py)."""
        return await self._write(lambda tx: requests.purge(tx, before_ns))

    async def storage_summary(self) -> StorageSummary:
        return await self._read(snapshot(fence.summary))
