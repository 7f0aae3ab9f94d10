"""The metadata store: every feature's SQL and the transactions it runs in.

Each operation is one write (a body run in a transaction on the engine's
writer thread) or one read (on a reader thread, in one read transaction when
it has several statements). Every change writes its change-journal row in the
same transaction as the change itself (transaction.py), so subscribers never
miss one. The engine (engine.py) owns the connections and group commit. The
bodies of the tree's changes live in namespace.py and edits.py, so the
servicer can run them one per write or many in one (`write_each`, ApplyBatch).

Raises the domain errors of errors.py; knows nothing of gRPC.
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
    damage,
    edits,
    links,
    namespace,
    quiet,
    requests,
    reservations,
    retention,
    rows,
    rules,
    security,
    sharing,
    snapshots,
    trash,
    xattrs,
)
from metad.changes import ChangePage
from metad.engine import Engine, snapshot
from metad.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
)
from metad.models import (
    Actor,
    BlockRef,
    BlockReference,
    ChangeEvent,
    DirectoryPage,
    Node,
    NodeKind,
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
from protos import auth

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# What one change of write_each came to: (its result, None) or (None, its error).
Outcome = tuple[Any, Exception | None]

FIRST_USER_ID = 1
FIRST_USER_NAME = "owner"
ROOT_MODE = 0o755
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000

# -- statements shared by reads and writes (run on a connection's own thread) -------------------


def _get_user(conn: Sql, user_id: int) -> User:
    row = rows.fetch_one(conn, f"SELECT {rows.USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
    if row is None:
        raise NotFound(f"no user {user_id}")
    return rows.user(row)


def _insert_user(
    tx: Transaction,
    name: str,
    password_hash: str | None,
    quota_bytes: int,
    admin: bool,
    user_id: int | None = None,
) -> int:
    """Inserts a user and the root directory of their drive; returns the user's id."""
    values = (name, password_hash, quota_bytes, int(admin), tx.now_ns)
    if user_id is None:
        user_id = rows.fetch_one(
            tx.conn,
            "INSERT INTO users (name, password_hash, quota_bytes, admin, created_ns)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            values,
        )[0]
    else:
        tx.conn.execute(
            "INSERT INTO users (id, name, password_hash, quota_bytes, admin, created_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, *values),
        )
        tx.conn.move_id_counter("users", user_id)
    root_id = rows.fetch_one(
        tx.conn,
        "INSERT INTO nodes (owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns)"
        " VALUES (?, NULL, '', ?, ?, ?, ?) RETURNING id",
        (user_id, NodeKind.DIRECTORY.value, ROOT_MODE, tx.now_ns, tx.now_ns),
    )[0]
    tx.conn.execute("UPDATE users SET root_node_id = ? WHERE id = ?", (root_id, user_id))
    return int(user_id)


class _UserNames:
    """User id → name for one read, each looked up once."""

    def __init__(self, conn: Sql) -> None:
        self._conn = conn
        self._names: dict[int, str] = {}

    def of(self, user_id: int | None) -> str:
        if not user_id:
            return ""
        if user_id not in self._names:
            row = rows.fetch_one(self._conn, "SELECT name FROM users WHERE id = ?", (user_id,))
            self._names[user_id] = "" if row is None else row[0]
        return self._names[user_id]


def _place_of_event(viewer: access.Viewer, event: ChangeEvent) -> tuple[str, bool] | None:
    """Where the event's node is for the viewer: after the change, or, if the change took
    it out of their sight (moved out of a shared folder), where it was before."""
    place = viewer.place_of_entry(event.parent_id, event.name, event.node_id)
    if place is None and event.old_parent_id is not None and event.old_name is not None:
        place = viewer.place_of_entry(event.old_parent_id, event.old_name, event.node_id)
    return place


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
        on_commit: Callable[[int], None] = lambda sequence: None,
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
        it still run. Every change that succeeded is durable when this returns.
        Outcomes come in the changes' order: (result, None) or (None, error).
        """

        def body(tx: Transaction) -> list[Outcome]:
            return [tx.attempt(change) for change in changes]

        return await self._write(body)

    async def _read(self, read: Callable[[Sql], T]) -> T:
        return await self._engine.read(read)

    async def _ensure_first_user(self, name: str, quota_bytes: int) -> None:
        """First start: user 1, an administrator without a password, and its root directory."""
        rules.check_user_name(name)

        def body(tx: Transaction) -> None:
            if rows.fetch_one(tx.conn, "SELECT 1 FROM users LIMIT 1", ()) is None:
                _insert_user(tx, name, None, quota_bytes, admin=True, user_id=FIRST_USER_ID)

        await self._write(body)

    # -- users --------------------------------------------------------------------------------

    async def create_user(
        self, name: str, password_hash: str, *, quota_bytes: int, admin: bool
    ) -> User:
        """A new user with an empty drive. Raises AlreadyExists if the name is taken."""
        rules.check_user_name(name)

        def body(tx: Transaction) -> User:
            if rows.fetch_one(tx.conn, "SELECT 1 FROM users WHERE name = ?", (name,)) is not None:
                raise AlreadyExists(f"a user named {name!r} exists")
            return _get_user(tx.conn, _insert_user(tx, name, password_hash, quota_bytes, admin))

        return await self._write(body)

    async def get_user(self, user_id: int) -> User:
        return await self._read(lambda conn: _get_user(conn, user_id))

    async def find_user(self, name: str) -> tuple[User, str | None] | None:
        """The user of that name and their stored password hash, or None."""

        def read(conn: Sql) -> tuple[User, str | None] | None:
            row = rows.fetch_one(
                conn,
                f"SELECT {rows.USER_COLUMNS}, password_hash FROM users WHERE name = ?",
                (name,),
            )
            return None if row is None else (rows.user(row), row["password_hash"])

        return await self._read(read)

    async def list_users(self) -> list[User]:
        def read(conn: Sql) -> list[User]:
            found = conn.execute(f"SELECT {rows.USER_COLUMNS} FROM users ORDER BY id").fetchall()
            return [rows.user(row) for row in found]

        return await self._read(read)

    async def set_password(self, user_id: int, password_hash: str) -> User:
        """A new password; every token and grant the user holds stops working."""

        def body(tx: Transaction) -> User:
            tx.conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )
            security.revoke(tx, user_id, tokens=True)
            return _get_user(tx.conn, user_id)

        return await self._write(body)

    async def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disables (every token and grant refused, no sign-in) or enables an account."""

        def body(tx: Transaction) -> User:
            _get_user(tx.conn, user_id)
            security.set_disabled(tx, user_id, disabled)
            return _get_user(tx.conn, user_id)

        return await self._write(body)

    async def revocations(self) -> list[auth.UserRevocation]:
        return await self._read(security.revocations)

    async def set_quota(self, user_id: int, quota_bytes: int) -> User:
        def body(tx: Transaction) -> User:
            tx.conn.execute("UPDATE users SET quota_bytes = ? WHERE id = ?", (quota_bytes, user_id))
            return _get_user(tx.conn, user_id)

        return await self._write(body)

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

        @snapshot
        def read(conn: Sql) -> Revision:
            node = access.regular_file(conn, node_id, user_id)
            wanted = node.revision if number == 0 else number
            row = rows.fetch_one(
                conn,
                f"SELECT {rows.REVISION_COLUMNS} FROM revisions WHERE node_id = ? AND number = ?",
                (node.id, wanted),
            )
            if row is None:
                raise NotFound(f"node {node_id} has no revision {number}")
            blocks = conn.execute(
                "SELECT hash, file_offset, size FROM revision_blocks"
                " WHERE node_id = ? AND revision = ? ORDER BY block_index",
                (node.id, wanted),
            ).fetchall()
            return rows.revision(
                row,
                tuple(BlockRef(bytes(b["hash"]), b["file_offset"], b["size"]) for b in blocks),
            )

        return await self._read(read)

    async def list_revisions(self, user_id: int, node_id: int) -> list[Revision]:
        """Every kept revision, newest first, without block lists."""

        @snapshot
        def read(conn: Sql) -> list[Revision]:
            node = access.regular_file(conn, node_id, user_id)
            found = conn.execute(
                f"SELECT {rows.REVISION_COLUMNS} FROM revisions WHERE node_id = ?"
                " ORDER BY number DESC",
                (node.id,),
            ).fetchall()
            return [rows.revision(row) for row in found]

        return await self._read(read)

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

        @snapshot
        def read(conn: Sql) -> ChangePage:
            head = int(
                rows.fetch_one(conn, "SELECT COALESCE(MAX(sequence), 0) FROM changes", ())[0]
            )
            viewer = access.Viewer(conn, user_id)
            owners = sorted(viewer.owners_sharing - {user_id})
            marks = ",".join("?" * len(owners))
            others = f" OR owner_id IN ({marks})" if owners else ""
            found = conn.execute(
                f"SELECT {rows.CHANGE_COLUMNS} FROM {rows.CHANGES}"
                " WHERE changes.sequence > ? AND changes.sequence <= ?"
                f" AND (owner_id = ? OR share_changes.user_id = ?{others})"
                " ORDER BY changes.sequence LIMIT ?",
                (after, head, user_id, user_id, *owners, limit),
            ).fetchall()
            more = len(found) == limit
            names = _UserNames(conn)
            events: list[ChangeEvent] = []
            for row in found:
                event = rows.change(row)
                place = _place_of_event(viewer, event)
                if place is None:
                    if event.owner_id != user_id and event.subject_user_id != user_id:
                        continue  # in a drive that shares other things with them
                    place = (event.name, event.owner_id != user_id)
                events.append(
                    replace(
                        event,
                        actor_name=names.of(event.actor_id),
                        subject_name=names.of(event.subject_user_id),
                        path=place[0],
                        shared=place[1],
                    )
                )
            return ChangePage(events, int(found[-1]["sequence"]) if more else head, more)

        return await self._read(read)

    async def journal_head(self) -> int:
        """The newest journal sequence; 0 if there is none yet.

        A subscriber that starts here gets only changes made after this call.
        """
        return await self.last_sequence()

    async def last_sequence(self) -> int:
        def read(conn: Sql) -> int:
            row = rows.fetch_one(conn, "SELECT COALESCE(MAX(sequence), 0) FROM changes", ())
            return int(row[0])

        return await self._read(read)

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

        def body(tx: Transaction) -> Node:
            node = access.regular_file(tx.conn, node_id, actor.user_id, Role.WRITE)
            exists = rows.fetch_one(
                tx.conn,
                "SELECT 1 FROM revisions WHERE node_id = ? AND number = ?",
                (node.id, number),
            )
            if exists is None:
                raise NotFound(f"{node.name!r} has no revision {number} (any more)")
            return tx.add_revision_from(node, node.id, number, actor)

        return await self._write(body)

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

            def body(tx: Transaction, after_node: int = after_node) -> tuple[int, int]:
                candidates = [
                    row[0]
                    for row in tx.conn.execute(
                        "SELECT DISTINCT node_id FROM revisions WHERE created_ns < ?"
                        " AND node_id > ? ORDER BY node_id LIMIT ?",
                        (tx.now_ns - policy.keep_all_ns, after_node, batch),
                    )
                ]
                count = 0
                for node_id in candidates:
                    current = rows.fetch_one(
                        tx.conn, "SELECT revision FROM nodes WHERE id = ?", (node_id,)
                    )[0]
                    kept = tx.conn.execute(
                        "SELECT number, created_ns FROM revisions WHERE node_id = ?", (node_id,)
                    ).fetchall()
                    doomed = policy.to_drop([(r[0], r[1]) for r in kept], current, tx.now_ns)
                    for number in doomed:
                        tx.conn.execute(
                            "DELETE FROM revision_xattrs WHERE node_id = ? AND revision = ?",
                            (node_id, number),
                        )
                        tx.conn.execute(
                            "DELETE FROM revision_blocks WHERE node_id = ? AND revision = ?",
                            (node_id, number),
                        )
                        tx.conn.execute(
                            "DELETE FROM revisions WHERE node_id = ? AND number = ?",
                            (node_id, number),
                        )
                    count += len(doomed)
                return count, candidates[-1] if len(candidates) == batch else 0

            count, after_node = await self._write(body)
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
        """Fences the hashes no revision refers to; returns them.

        In the same write transaction as every commit, so a commit either
        lands before (its blocks are referenced and not condemned) or after
        (it is refused with BlocksCondemned).
        """
        candidates = sorted(set(hashes))

        def body(tx: Transaction) -> list[bytes]:
            referenced: set[bytes] = set()
            for marks, chunk in rows.in_chunks(candidates):
                found = tx.conn.execute(
                    f"SELECT DISTINCT hash FROM revision_blocks WHERE hash IN ({marks})", chunk
                )
                referenced.update(row[0] for row in found)
            condemned = [h for h in candidates if h not in referenced]
            tx.conn.executemany(
                "INSERT INTO condemned_blocks (hash, condemned_ns) VALUES (?, ?)"
                " ON CONFLICT (hash) DO NOTHING",
                [(h, tx.now_ns) for h in condemned],
            )
            return condemned

        return await self._write(body)

    async def release_blocks(self, hashes: Sequence[bytes]) -> None:
        """Lifts the fence once the collector has deleted the blocks."""
        unique = sorted(set(hashes))

        def body(tx: Transaction) -> None:
            for marks, chunk in rows.in_chunks(unique):
                tx.conn.execute(f"DELETE FROM condemned_blocks WHERE hash IN ({marks})", chunk)

        await self._write(body)

    async def list_condemned_blocks(self, among: Sequence[bytes] = ()) -> list[bytes]:
        """Condemned hashes: those of among that are, or all when among is empty."""

        def read(conn: Sql) -> list[bytes]:
            if among:
                return sorted(edits.condemned_among(conn, set(among)))
            return [row[0] for row in conn.execute("SELECT hash FROM condemned_blocks")]

        return await self._read(read)

    async def referenced_blocks(self, after: bytes, limit: int) -> tuple[list[bytes], bool]:
        """A page of distinct referenced hashes greater than after, in order; more?"""

        def read(conn: Sql) -> tuple[list[bytes], bool]:
            found = conn.execute(
                "SELECT DISTINCT hash FROM revision_blocks WHERE hash > ? ORDER BY hash LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            hashes = [row[0] for row in found[:limit]]
            return hashes, len(found) > limit

        return await self._read(read)

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
        def read(conn: Sql) -> StorageSummary:
            logical = rows.fetch_one(
                conn,
                "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM nodes"
                " WHERE deleted_ns IS NULL AND kind = 'file'",
                (),
            )
            blocks = rows.fetch_one(
                conn,
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM"
                " (SELECT MAX(size) AS size FROM revision_blocks GROUP BY hash) AS per_hash",
                (),
            )
            return StorageSummary(
                logical_bytes=int(logical[0]),
                referenced_blocks=int(blocks[0]),
                referenced_bytes=int(blocks[1]),
            )

        return await self._read(read)
