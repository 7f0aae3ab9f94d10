"""The metadata store: every feature's SQL and the transactions it runs in.

Each operation is one write (a body run in a transaction on the engine's
writer thread) or one read (on a reader thread, in one read transaction when
it has several statements). Every change writes its change-journal row in the
same transaction as the change itself (transaction.py), so subscribers never
miss one. The engine (engine.py) owns the connections and group commit.

Raises the domain errors of errors.py; knows nothing of gRPC.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from metad import (
    access,
    damage,
    links,
    possession,
    quiet,
    requests,
    retention,
    rows,
    rules,
    saves,
    schema,
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
    BlocksCondemned,
    CrossDrive,
    DirectoryNotEmpty,
    InvalidArgument,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotAFile,
    NotFound,
    StaleRevision,
    UnprovenBlocks,
)
from metad.models import (
    NO_CHANGE,
    NO_OWNERSHIP,
    Actor,
    AttributeChange,
    BlockRef,
    BlockReference,
    ChangeEvent,
    ChangeKind,
    DirectoryPage,
    Node,
    NodeKind,
    Ownership,
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
from metad.transaction import USED_BYTES, Transaction, child
from protos import auth

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_USER_ID = 1
FIRST_USER_NAME = "owner"
ROOT_MODE = 0o755
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000

# -- statements shared by reads and writes (run on a connection's own thread) -------------------


def _get_user(conn: sqlite3.Connection, user_id: int) -> User:
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
    user_id = tx.conn.execute(
        "INSERT INTO users (id, name, password_hash, quota_bytes, admin, root_node_id, created_ns)"
        " VALUES (?, ?, ?, ?, ?, NULL, ?)",
        (user_id, name, password_hash, quota_bytes, int(admin), tx.now_ns),
    ).lastrowid
    root_id = tx.conn.execute(
        "INSERT INTO nodes (owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns)"
        " VALUES (?, NULL, '', ?, ?, ?, ?)",
        (user_id, NodeKind.DIRECTORY.value, ROOT_MODE, tx.now_ns, tx.now_ns),
    ).lastrowid
    tx.conn.execute("UPDATE users SET root_node_id = ? WHERE id = ?", (root_id, user_id))
    return int(user_id)


def _directory(
    conn: sqlite3.Connection, node_id: int, user_id: int, need: Role = Role.READ
) -> Node:
    node = access.visible_node(conn, node_id, user_id, need)
    if node.kind is not NodeKind.DIRECTORY:
        raise NotADirectory(f"node {node_id} is not a directory")
    return node


def _file(conn: sqlite3.Connection, node_id: int, user_id: int, need: Role = Role.READ) -> Node:
    node = access.visible_node(conn, node_id, user_id, need)
    if node.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"node {node_id} is a directory, not a file")
    if node.kind is not NodeKind.FILE:
        raise NotAFile(f"node {node_id} is a {node.kind.name.lower()}, not a file")
    return node


def _with_attributes(node: Node, change: AttributeChange) -> Node:
    """node as change leaves it (what change does not name stays)."""
    if change.empty:
        return node
    return replace(
        node,
        mode=node.mode if change.mode is None else rules.permission_bits(change.mode),
        atime_ns=node.atime_ns if change.atime_ns is None else change.atime_ns,
        uid=node.uid if change.owner.uid is None else change.owner.uid,
        gid=node.gid if change.owner.gid is None else change.owner.gid,
    )


def _condemned_among(conn: sqlite3.Connection, hashes: set[bytes]) -> set[bytes]:
    """Which of hashes the garbage collector has condemned (usually none: one probe)."""
    if not hashes or conn.execute("SELECT 1 FROM condemned_blocks LIMIT 1").fetchone() is None:
        return set()
    hits: set[bytes] = set()
    for marks, chunk in rows.in_chunks(sorted(hashes)):
        found = conn.execute(f"SELECT hash FROM condemned_blocks WHERE hash IN ({marks})", chunk)
        hits.update(row[0] for row in found)
    return hits


class _UserNames:
    """User id → name for one read, each looked up once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
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


def _create(
    tx: Transaction,
    actor: Actor,
    parent_id: int,
    name: str,
    kind: NodeKind,
    mode: int,
    mtime_ns: int,
    owner: Ownership,
    **fields: Any,
) -> Node:
    """A new node named name in a folder the actor may write to; journals CREATED.

    A file starts at revision 1, empty.
    """
    rules.check_ownership(owner)
    parent = _directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
    tx.ensure_free(parent.id, name)
    mtime = mtime_ns or tx.now_ns
    revision = 1 if kind is NodeKind.FILE else 0
    node = tx.insert_node(
        owner_id=parent.owner_id,
        parent_id=parent.id,
        role=parent.role,
        name=name,
        kind=kind,
        mode=rules.permission_bits(mode),
        mtime_ns=mtime,
        revision=revision,
        uid=owner.uid,
        gid=owner.gid,
        **fields,
    )
    if revision:
        tx.insert_revision(node, 1, 0, mtime, actor)
    node = tx.journal(
        ChangeKind.CREATED, node, actor, parent_id=parent.id, name=name, revision=revision
    )
    tx.touch_directory(parent.id)
    return node


def _place(tx: Transaction, entry: Node, parent_id: int, name: str) -> None:
    """Puts an entry (a node's own name, or a further name) at parent_id/name; ctime moves."""
    if entry.link_id is not None:
        tx.conn.execute(
            "UPDATE links SET parent_id = ?, name = ? WHERE id = ?",
            (parent_id, name, entry.link_id),
        )
        tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, entry.id))
    else:
        tx.conn.execute(
            "UPDATE nodes SET parent_id = ?, name = ?, ctime_ns = ? WHERE id = ?",
            (parent_id, name, tx.now_ns, entry.id),
        )


def _attributes_changed(tx: Transaction, actor: Actor, node: Node) -> Node:
    """ctime moves and ATTRIBUTES is journaled; the node as it is now."""
    tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, node.id))
    return tx.journal(ChangeKind.ATTRIBUTES, node, actor, parent_id=node.parent_id, name=node.name)


def _drop_empty_placeholder(tx: Transaction, node: Node) -> None:
    """A new file's first content replaces the empty revision 1 CreateFile made.

    So its history starts with its content (numbers still only grow: every
    device's caches keyed by revision stay right).
    """
    if node.revision != 1:
        return
    placeholder = rows.fetch_one(
        tx.conn,
        "SELECT 1 FROM revisions WHERE node_id = ? AND number = 1 AND size = 0"
        " AND NOT EXISTS (SELECT 1 FROM revision_blocks WHERE node_id = ? AND revision = 1)",
        (node.id, node.id),
    )
    if placeholder is not None:
        xattrs.forget_revisions(tx, "node_id = ? AND revision = 1", (node.id,))
        tx.conn.execute("DELETE FROM revisions WHERE node_id = ? AND number = 1", (node.id,))


def _check_replaceable(tx: Transaction, node: Node, replaced: Node) -> None:
    """rename(2) rules: a directory replaces only an empty directory, others only non-dirs."""
    if node.kind is NodeKind.DIRECTORY:
        if replaced.kind is not NodeKind.DIRECTORY:
            raise NotADirectory(f"cannot replace non-directory {replaced.id} by a directory")
        if not tx.is_empty(replaced.id):
            raise DirectoryNotEmpty(f"directory {replaced.id} is not empty")
    elif replaced.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"cannot replace directory {replaced.id} by a non-directory")


class Store:
    """The metadata of every drive in one SQLite file. Open with `Store.open`."""

    def __init__(self, engine: Engine, *, quiet_ns: int = quiet.WINDOW_NS) -> None:
        self._engine = engine
        self.path = engine.path
        self._quiet_ns = quiet_ns  # files removed this soon after they came skip the trash

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        on_commit: Callable[[int], None] = lambda sequence: None,
        clock: Callable[[], int] = time.time_ns,
        first_user: str = FIRST_USER_NAME,
        first_user_quota: int = 0,
        quiet_ns: int = quiet.WINDOW_NS,
    ) -> Store:
        """Opens (creating and migrating if needed) the database at path.

        Raises StartupError (SchemaTooNew among them) for problems an operator
        can fix: unreadable file, not a database, database from a newer metad.
        clock is read on the writer's thread, once per write. quiet_ns: see
        quiet.py (0: only the temporary names skip the trash).
        """
        engine = await Engine.open(path, on_commit=on_commit, clock=clock)
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
        return await self._read(schema.user_version)

    async def _write(self, body: Callable[[Transaction], T]) -> T:
        """Runs body as one atomic write; returns its result once it is durable.

        The first write of a call that named a request id (requests.expect)
        is applied only once for that id (see requests.py).
        """
        key = requests.take()
        return await self._engine.write(body if key is None else requests.once(key, body))

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
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

        def read(conn: sqlite3.Connection) -> tuple[User, str | None] | None:
            row = rows.fetch_one(
                conn,
                f"SELECT {rows.USER_COLUMNS}, password_hash FROM users WHERE name = ?",
                (name,),
            )
            return None if row is None else (rows.user(row), row["password_hash"])

        return await self._read(read)

    async def list_users(self) -> list[User]:
        def read(conn: sqlite3.Connection) -> list[User]:
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

    async def make_directory(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        mode: int,
        mtime_ns: int = 0,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        rules.check_name(name)
        return await self._write(
            lambda tx: _create(
                tx, actor, parent_id, name, NodeKind.DIRECTORY, mode, mtime_ns, owner
            )
        )

    async def create_file(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        mode: int,
        mtime_ns: int = 0,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """A new empty file at revision 1."""
        rules.check_name(name)
        return await self._write(
            lambda tx: _create(tx, actor, parent_id, name, NodeKind.FILE, mode, mtime_ns, owner)
        )

    async def create_symlink(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        target: str,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        rules.check_name(name)
        rules.check_symlink_target(target)
        return await self._write(
            lambda tx: _create(
                tx, actor, parent_id, name, NodeKind.SYMLINK, rules.SYMLINK_MODE, 0, owner,
                symlink_target=target,
                size=rules.symlink_size(target),
            )
        )  # fmt: skip

    async def make_node(
        self,
        actor: Actor,
        parent_id: int,
        name: str,
        kind: NodeKind,
        mode: int,
        rdev: int = 0,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """A FIFO, a device or a socket: a node without content."""
        rules.check_name(name)
        rules.check_special(kind, rdev)
        return await self._write(
            lambda tx: _create(tx, actor, parent_id, name, kind, mode, 0, owner, rdev=rdev)
        )

    async def commit_revision(
        self,
        actor: Actor,
        node_id: int,
        base_revision: int,
        size: int,
        mtime_ns: int,
        blocks: Sequence[BlockRef],
        attributes: AttributeChange = NO_CHANGE,
    ) -> Node:
        """Revision current+1 with its block list, only if the file is still at base_revision.

        Every block must be proven (see possession.py): UnprovenBlocks otherwise.
        attributes set while the edits were made (chmod, chown, utime) come
        with them, in the same step, and the revision keeps the new mode.
        """
        rules.check_blocks(size, blocks)
        rules.check_ownership(attributes.owner)
        block_list = tuple(blocks)

        def body(tx: Transaction) -> Node:
            node = _with_attributes(_file(tx.conn, node_id, actor.user_id, Role.WRITE), attributes)
            if node.revision != base_revision:
                raise StaleRevision(node.id, base_revision, node.revision)
            index = possession.first_unproven(
                tx.conn, actor.user_id, node.id, node.revision, block_list
            )
            if index is not None:
                raise UnprovenBlocks(
                    f"block {index} of this commit ({block_list[index].hash.hex()[:16]}…,"
                    f" {block_list[index].size} bytes) was neither uploaded by you (no valid"
                    " receipt for that hash and size) nor is in a file you may read:"
                    " upload it and commit again"
                )
            tx.check_quota(node.owner_id, size - node.size)
            condemned = _condemned_among(tx.conn, {b.hash for b in block_list})
            if condemned:
                raise BlocksCondemned(
                    f"{len(condemned)} block(s) of this commit are being deleted by garbage"
                    " collection; upload them again and retry"
                )
            number = node.revision + 1
            mtime = mtime_ns or tx.now_ns
            _drop_empty_placeholder(tx, node)
            tx.insert_revision(node, number, size, mtime, actor)
            xattrs.keep_with_revision(tx, node.id, number)
            tx.conn.executemany(
                "INSERT INTO revision_blocks"
                " (node_id, revision, block_index, hash, file_offset, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (node.id, number, index, block.hash, block.offset, block.size)
                    for index, block in enumerate(block_list)
                ],
            )
            tx.conn.execute(
                "UPDATE nodes SET revision = ?, size = ?, mtime_ns = ?, ctime_ns = ?, mode = ?,"
                " uid = ?, gid = ?, atime_ns = ? WHERE id = ?",
                (
                    number,
                    size,
                    mtime,
                    tx.now_ns,
                    node.mode,
                    node.uid,
                    node.gid,
                    node.atime_ns,
                    node.id,
                ),
            )
            return tx.journal(
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
    ) -> tuple[Node, int | None, bool, int | None]:
        """Moves an entry atomically.

        Returns the node now at the new name, the id of the node whose name it
        took (or None), whether that node stays (it had other names), and,
        when the move was a save over another file (saves.py), the id of the
        moved node, which is gone: its content is the returned node's newest
        revision.
        """
        rules.check_name(name)
        rules.check_name(new_name)

        def body(tx: Transaction) -> tuple[Node, int | None, bool, int | None]:
            old_parent = _directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
            node = child(tx.conn, old_parent.id, name)
            if node is None:
                raise NotFound(f"no {name!r} in directory {old_parent.id}")
            new_parent = _directory(tx.conn, new_parent_id, actor.user_id, Role.WRITE)
            if new_parent.id == old_parent.id and new_name == name:
                return node, None, False, None
            if new_parent.owner_id != node.owner_id:
                raise CrossDrive(
                    f"cannot move {name!r} between two people's drives; copy it instead"
                )
            if node.kind is NodeKind.DIRECTORY and tx.is_within(new_parent.id, node.id):
                raise InvalidMove(f"cannot move directory {node.id} into itself or its subtree")
            replaced = child(tx.conn, new_parent.id, new_name)
            if replaced is not None and replaced.id == node.id:
                return node, None, False, None  # two names of one file: rename(2) does nothing
            remains = False
            if replaced is not None:
                if no_replace:
                    raise AlreadyExists(f"{new_name!r} already exists in {new_parent.id}")
                _check_replaceable(tx, node, replaced)
                if saves.applies(node, replaced):
                    saved = saves.save_over(tx, actor, node, replaced, (old_parent.id, name))
                    tx.touch_directory(old_parent.id)
                    if new_parent.id != old_parent.id:
                        tx.touch_directory(new_parent.id)
                    return replace(saved, role=new_parent.role), None, False, node.id
                remains = links.remove(tx, actor, replaced)
                if not remains:
                    tx.conn.execute(
                        "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
                        (tx.now_ns, tx.now_ns, replaced.id),
                    )
            if node.link_id is not None:
                moved = links.move(tx, actor, node, new_parent, new_name)
                tx.touch_directory(old_parent.id)
                tx.touch_directory(new_parent.id)
                return moved, None if replaced is None else replaced.id, remains, None
            tx.conn.execute(
                "UPDATE nodes SET parent_id = ?, name = ?, ctime_ns = ? WHERE id = ?",
                (new_parent.id, new_name, tx.now_ns, node.id),
            )
            node = replace(node, role=new_parent.role)
            moved = tx.journal(
                ChangeKind.MOVED,
                node,
                actor,
                parent_id=new_parent.id,
                name=new_name,
                old_parent_id=old_parent.id,
                old_name=name,
                replaced_node_id=None if replaced is None or remains else replaced.id,
            )
            tx.touch_directory(old_parent.id)
            if new_parent.id != old_parent.id:
                tx.touch_directory(new_parent.id)
            return moved, None if replaced is None else replaced.id, remains, None

        return await self._write(body)

    async def exchange(
        self, actor: Actor, parent_id: int, name: str, other_parent_id: int, other_name: str
    ) -> tuple[Node, Node]:
        """Swaps two entries atomically (RENAME_EXCHANGE): (the one now at other_name, the
        one now at name)."""
        rules.check_name(name)
        rules.check_name(other_name)

        def body(tx: Transaction) -> tuple[Node, Node]:
            first_parent = _directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
            second_parent = _directory(tx.conn, other_parent_id, actor.user_id, Role.WRITE)
            first = child(tx.conn, first_parent.id, name)
            second = child(tx.conn, second_parent.id, other_name)
            if first is None or second is None:
                raise NotFound(f"exchange needs both {name!r} and {other_name!r}")
            if first.id == second.id:
                return first, second
            if first_parent.owner_id != second_parent.owner_id:
                raise CrossDrive("cannot exchange entries between two people's drives")
            for node, into in ((first, second_parent), (second, first_parent)):
                if node.kind is NodeKind.DIRECTORY and tx.is_within(into.id, node.id):
                    raise InvalidMove(f"cannot move directory {node.id} into its own subtree")
            # Through a name no entry can have (NUL), so the swap never collides.
            _place(tx, first, first_parent.id, f"{name}\0exchange")
            _place(tx, second, first_parent.id, name)
            _place(tx, first, second_parent.id, other_name)
            swapped = []
            for node, parent, new_name in (
                (first, second_parent, other_name),
                (second, first_parent, name),
            ):
                if node.link_id is not None:
                    moved = links.journal_moved(tx, actor, node, parent.id, new_name)
                else:
                    moved = tx.journal(
                        ChangeKind.MOVED,
                        node,
                        actor,
                        parent_id=parent.id,
                        name=new_name,
                        old_parent_id=node.parent_id,
                        old_name=node.name,
                    )
                swapped.append(replace(moved, role=parent.role))
            tx.touch_directory(first_parent.id)
            tx.touch_directory(second_parent.id)
            return swapped[0], swapped[1]

        return await self._write(body)

    async def delete(
        self, actor: Actor, parent_id: int, name: str, *, directory: bool
    ) -> tuple[int, bool]:
        """Removes an entry: (node id, whether the node stays under its other names).

        The last name of a node sends it to the trash (its revisions are kept).
        """
        rules.check_name(name)

        def body(tx: Transaction) -> tuple[int, bool]:
            parent = _directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
            node = child(tx.conn, parent.id, name)
            if node is None:
                raise NotFound(f"no {name!r} in directory {parent.id}")
            if directory:
                if node.kind is not NodeKind.DIRECTORY:
                    raise NotADirectory(f"{name!r} is not a directory")
                if not tx.is_empty(node.id):
                    raise DirectoryNotEmpty(f"directory {name!r} is not empty")
            elif node.kind is NodeKind.DIRECTORY:
                raise IsADirectory(f"{name!r} is a directory")
            if links.remove(tx, actor, node):
                return node.id, True
            tx.conn.execute(
                "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
                (tx.now_ns, tx.now_ns, node.id),
            )
            tx.journal(ChangeKind.DELETED, node, actor, parent_id=parent.id, name=name)
            tx.touch_directory(parent.id)
            if quiet.is_temporary(tx, node, self._quiet_ns):
                trash.purge(tx, "id = ?", (node.id,))
            return node.id, False

        return await self._write(body)

    async def get_xattrs(self, user_id: int, node_id: int) -> dict[str, bytes]:
        """A node's extended attributes, by name."""

        @snapshot
        def read(conn: sqlite3.Connection) -> dict[str, bytes]:
            node = access.visible_node(conn, node_id, user_id)
            return xattrs.all_of(conn, node.id)

        return await self._read(read)

    async def set_xattr(
        self, actor: Actor, node_id: int, name: str, value: bytes, how: int = xattrs.EITHER
    ) -> Node:
        """Sets one extended attribute (how: xattrs.EITHER, CREATE or REPLACE)."""
        xattrs.check_name(name)

        def body(tx: Transaction) -> Node:
            node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
            xattrs.put(tx, node.id, name, value, how)
            return _attributes_changed(tx, actor, node)

        return await self._write(body)

    async def remove_xattr(self, actor: Actor, node_id: int, name: str) -> Node:
        xattrs.check_name(name)

        def body(tx: Transaction) -> Node:
            node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
            xattrs.remove(tx, node.id, name)
            return _attributes_changed(tx, actor, node)

        return await self._write(body)

    async def link(self, actor: Actor, node_id: int, new_parent_id: int, new_name: str) -> Node:
        """A further name (hard link) for a file in a folder of the same drive."""
        rules.check_name(new_name)

        def body(tx: Transaction) -> Node:
            node = access.visible_node(tx.conn, node_id, actor.user_id)
            parent = _directory(tx.conn, new_parent_id, actor.user_id, Role.WRITE)
            if parent.owner_id != node.owner_id:
                raise CrossDrive(f"cannot link {node.name!r} into another person's drive")
            made = links.add(tx, actor, node, parent, new_name)
            return replace(made, role=parent.role)

        return await self._write(body)

    async def set_attributes(
        self,
        actor: Actor,
        node_id: int,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """Mode, times and/or ownership; nothing given is a no-op that returns the node.

        Any change moves ctime. Who may chown or chmod is the mount's (the
        kernel's) to decide by the POSIX rules: metad keeps numbers it cannot
        check; what a user may change at all is their role's (WRITE).
        """
        rules.check_ownership(owner)

        change = AttributeChange(mode, atime_ns, owner)

        def body(tx: Transaction) -> Node:
            node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
            if change.empty and mtime_ns is None:
                return node
            new = _with_attributes(node, change)
            tx.conn.execute(
                "UPDATE nodes SET mode = ?, mtime_ns = ?, atime_ns = ?, uid = ?, gid = ?,"
                " ctime_ns = ? WHERE id = ?",
                (
                    new.mode,
                    node.mtime_ns if mtime_ns is None else mtime_ns,
                    new.atime_ns,
                    new.uid,
                    new.gid,
                    tx.now_ns,
                    node.id,
                ),
            )
            return tx.journal(
                ChangeKind.ATTRIBUTES, node, actor, parent_id=node.parent_id, name=node.name
            )

        return await self._write(body)

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
        def read(conn: sqlite3.Connection) -> Node:
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
        def read(conn: sqlite3.Connection) -> Node:
            parent = _directory(conn, parent_id, user_id)
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
        def read(conn: sqlite3.Connection) -> DirectoryPage:
            directory = _directory(conn, node_id, user_id)
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
        def read(conn: sqlite3.Connection) -> Revision:
            node = _file(conn, node_id, user_id)
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
        def read(conn: sqlite3.Connection) -> list[Revision]:
            node = _file(conn, node_id, user_id)
            found = conn.execute(
                f"SELECT {rows.REVISION_COLUMNS} FROM revisions WHERE node_id = ?"
                " ORDER BY number DESC",
                (node.id,),
            ).fetchall()
            return [rows.revision(row) for row in found]

        return await self._read(read)

    async def get_usage(self, user_id: int) -> Usage:
        def read(conn: sqlite3.Connection) -> Usage:
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
        def read(conn: sqlite3.Connection) -> ChangePage:
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
        def read(conn: sqlite3.Connection) -> int:
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
            node = _file(tx.conn, node_id, actor.user_id, Role.WRITE)
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
        def read(conn: sqlite3.Connection) -> list[SnapshotEntry]:
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
                "INSERT OR IGNORE INTO condemned_blocks (hash, condemned_ns) VALUES (?, ?)",
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

        def read(conn: sqlite3.Connection) -> list[bytes]:
            if among:
                return sorted(_condemned_among(conn, set(among)))
            return [row[0] for row in conn.execute("SELECT hash FROM condemned_blocks")]

        return await self._read(read)

    async def referenced_blocks(self, after: bytes, limit: int) -> tuple[list[bytes], bool]:
        """A page of distinct referenced hashes greater than after, in order; more?"""

        def read(conn: sqlite3.Connection) -> tuple[list[bytes], bool]:
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
        def read(conn: sqlite3.Connection) -> StorageSummary:
            logical = rows.fetch_one(
                conn,
                "SELECT COALESCE(SUM(size), 0) FROM nodes"
                " WHERE deleted_ns IS NULL AND kind = 'file'",
                (),
            )
            blocks = rows.fetch_one(
                conn,
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM"
                " (SELECT MAX(size) AS size FROM revision_blocks GROUP BY hash)",
                (),
            )
            return StorageSummary(
                logical_bytes=int(logical[0]),
                referenced_blocks=int(blocks[0]),
                referenced_bytes=int(blocks[1]),
            )

        return await self._read(read)
