"""One write inside a transaction: the writer connection, its clock reading and its journal.

Owns the statements every write shares: inserting nodes and revisions,
quota, free names, undeleting, and the change journal row that every change
writes in the same transaction (stamping the node's change_sequence). Runs
on the writer's thread, inside the engine's transaction.

Must not: commit or roll back (the engine does), or know gRPC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from metad import rows, xattrs
from metad.errors import AlreadyExists, ContentGone, QuotaExceeded
from metad.models import Actor, ChangeKind, Node, NodeKind, Role
from metad.sql import Sql
from protos import names

T = TypeVar("T")

# The journal row a change just appended: the newest, as write transactions run one
# at a time (SQLite's single writer, PostgreSQL's write lock) and draw increasing
# sequences.
_NEWEST = "(SELECT MAX(sequence) FROM changes)"

# What counts against a user's quota (in a query over users): the current
# revisions of their live files, not trash or older revisions.
USED_BYTES = "users.used_bytes"  # kept by triggers (metad/schema.py, version 9)


def child(conn: Sql, parent_id: int, name: str) -> Node | None:
    """The live entry named name in parent_id, or None.

    A node under its own name, or a node under one of its further names (a
    hard link): then parent_id and name are the link's and link_id is set.
    """
    row = rows.fetch_one(
        conn,
        f"SELECT {rows.NODE_COLUMNS} FROM nodes"
        " WHERE parent_id = ? AND name = ? AND deleted_ns IS NULL",
        (parent_id, name),
    )
    if row is not None:
        return rows.node(row)
    row = rows.fetch_one(
        conn,
        f"SELECT {rows.NODE_COLUMNS_OF_NODES}, links.id AS link_id FROM links"
        " JOIN nodes ON nodes.id = links.node_id WHERE links.parent_id = ? AND links.name = ?",
        (parent_id, name),
    )
    if row is None:
        return None
    return replace(rows.node(row), parent_id=parent_id, name=name, link_id=row["link_id"])


@dataclass
class Transaction:
    """One write inside a transaction: the writer connection, its clock reading and its journal."""

    conn: Sql
    now_ns: int
    last_sequence: int = 0
    # The users its journal rows concern (owners, share receivers): changes.CommitSignal.
    concerns: set[int] = field(default_factory=set)

    def insert_node(
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
        role: Role | None = None,
        uid: int | None = None,
        gid: int | None = None,
        rdev: int = 0,
        node_id: int | None = None,
        born_ns: int = 0,
    ) -> Node:
        """A new live node; role: the creator's (their role on the folder).

        Its access time starts as its modification time. node_id: the id it
        gets (one reserved to the creator, see reservations.py); None: the next.
        born_ns: its ctime, when not now (a node a device made in its journal).
        """
        # The id column only when the id is given: None would be a NULL, not "the next".
        id_column, id_mark = ("", "") if node_id is None else ("id, ", "?, ")
        sql = (
            f"INSERT INTO nodes ({id_column}owner_id, parent_id, name, kind, mode, mtime_ns,"
            " ctime_ns, revision, size, symlink_target, uid, gid, rdev, atime_ns)"
            f" VALUES ({id_mark}?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        ctime_ns = born_ns or self.now_ns
        values = (owner_id, parent_id, name, kind.value, mode, mtime_ns, ctime_ns, revision)
        values += (size, symlink_target, uid, gid, rdev, mtime_ns)
        if node_id is None:  # the database picks the id: wait for it
            row = rows.fetch_one(self.conn, f"{sql} RETURNING {rows.NODE_COLUMNS}", values)
            return replace(rows.node(row), role=role)
        # Not waited for: the row is what was written (a new node has no further
        # names, subfolders or attributes yet).
        self.conn.execute(sql, (node_id, *values))
        return Node(
            id=node_id,
            owner_id=owner_id,
            parent_id=parent_id,
            name=name,
            kind=kind,
            mode=mode,
            size=size,
            mtime_ns=mtime_ns,
            ctime_ns=ctime_ns,
            revision=revision,
            symlink_target=symlink_target,
            change_sequence=0,
            uid=uid,
            gid=gid,
            rdev=rdev,
            atime_ns=mtime_ns,
            role=role,
        )

    def attempt(self, body: Callable[[Transaction], T]) -> tuple[T | None, Exception | None]:
        """Runs body in a SAVEPOINT of its own, so it is all or nothing on its own.

        Returns (its result, None), or (None, the error it raised) with its
        changes undone and the rest of the transaction standing. Raises when
        SQLite abandoned the whole transaction (then nothing of it stands).
        """
        last_sequence, concerns = self.last_sequence, set(self.concerns)
        self.conn.execute("SAVEPOINT attempt")
        try:
            result = body(self)
            self.conn.flush()  # an error of a statement sent ahead is body's too
        except Exception as error:
            if not self.conn.in_transaction:
                raise
            self.conn.execute("ROLLBACK TO attempt")
            self.conn.execute("RELEASE attempt")
            # Its journal rows are gone with it.
            self.last_sequence, self.concerns = last_sequence, concerns
            return None, error
        self.conn.execute("RELEASE attempt")
        return result, None

    def attempt_each(
        self, bodies: Sequence[Callable[[Transaction], Any]]
    ) -> list[tuple[Any, Exception | None]]:
        """attempt(body) for each body in order, at the cost of one SAVEPOINT for all.

        They run together first; only if one fails are they all undone and run
        again, each in its own SAVEPOINT (attempt), so the outcomes are the
        same either way. A body must therefore depend on nothing but the
        database and its own arguments (the changes of namespace.py and
        edits.py do not).
        """
        if len(bodies) < 2:
            return [self.attempt(body) for body in bodies]
        last_sequence, concerns = self.last_sequence, set(self.concerns)
        self.conn.execute("SAVEPOINT together")
        try:
            results = [body(self) for body in bodies]
            self.conn.flush()
        except Exception:
            if not self.conn.in_transaction:
                raise
            self.conn.execute("ROLLBACK TO together")
            self.conn.execute("RELEASE together")
            self.last_sequence, self.concerns = last_sequence, concerns
            return [self.attempt(body) for body in bodies]
        self.conn.execute("RELEASE together")
        return [(result, None) for result in results]

    def insert_revision(
        self, node: Node, number: int, size: int, mtime_ns: int, actor: Actor
    ) -> None:
        self.conn.execute(
            f"INSERT INTO revisions ({rows.REVISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (node.id, number, size, mtime_ns, node.mode, actor.user_id, actor.device, self.now_ns),
        )

    def free_name(self, parent_id: int, name: str) -> str:
        """name if no live entry of parent_id has it, else 'name (restored).ext', '(restored 2)'…"""
        if child(self.conn, parent_id, name) is None:
            return name
        for attempt in range(1, 10_000):
            candidate = names.tagged(name, "restored" if attempt == 1 else f"restored {attempt}")
            if child(self.conn, parent_id, candidate) is None:
                return candidate
        raise AlreadyExists(f"no free name for {name!r} in directory {parent_id}")

    def undelete(self, node: Node, parent_id: int, name: str, actor: Actor) -> Node:
        """Brings a deleted node back as parent_id/name (a free name) and journals RESTORED."""
        self.conn.execute(
            "UPDATE nodes SET deleted_ns = NULL, parent_id = ?, name = ?, ctime_ns = ?"
            " WHERE id = ?",
            (parent_id, name, self.now_ns, node.id),
        )
        self.conn.execute("DELETE FROM purged_nodes WHERE node_id = ?", (node.id,))
        self.touch_directory(parent_id)
        return self.journal(ChangeKind.RESTORED, node, actor, parent_id=parent_id, name=name)

    def check_quota(self, owner_id: int, growth: int) -> None:
        """Raises QuotaExceeded if growing the owner's live files by growth passes their quota.

        Whoever writes: a file in a shared folder counts for its owner.
        """
        if growth > 0:
            self.ask_quota(owner_id)(growth)

    def ask_quota(self, owner_id: int) -> Callable[[int], None]:
        """Sends check_quota's question ahead (Sql.ahead); the check it returns (given
        the growth) raises."""
        found = self.conn.ahead(
            f"SELECT quota_bytes, {USED_BYTES} AS used FROM users WHERE id = ?", (owner_id,)
        )

        def check(growth: int) -> None:
            row = found.fetchone()
            quota, used = row["quota_bytes"], row["used"]
            if growth > 0 and quota and used + growth > quota:
                raise QuotaExceeded(
                    f"over quota: {used + growth} bytes would exceed the {quota}-byte quota"
                    f" ({used} in use)"
                )

        return check

    def add_revision_from(
        self, node: Node, source_node_id: int, source_number: int, actor: Actor
    ) -> Node:
        """A new current revision of node with the content of another revision (any file's).

        Journals RESTORED with the new number; its mtime is now, so every
        device sees the content change.
        """
        source = rows.fetch_one(
            self.conn,
            "SELECT size FROM revisions WHERE node_id = ? AND number = ?",
            (source_node_id, source_number),
        )
        if source is None:
            raise ContentGone(f"revision {source_number} of node {source_node_id} is not kept")
        size = int(source[0])
        self.check_quota(node.owner_id, size - (0 if node.deleted_ns else node.size))
        number = node.revision + 1
        self.insert_revision(node, number, size, self.now_ns, actor)
        # The attributes come back with the content.
        xattrs.take_from_revision(self, node.id, source_node_id, source_number)
        xattrs.keep_with_revision(self, node.id, number)
        self.conn.execute(
            "INSERT INTO revision_blocks (node_id, revision, block_index, hash, file_offset, size)"
            " SELECT ?, ?, block_index, hash, file_offset, size FROM revision_blocks"
            " WHERE node_id = ? AND revision = ?",
            (node.id, number, source_node_id, source_number),
        )
        self.conn.execute(
            "UPDATE nodes SET revision = ?, size = ?, mtime_ns = ?, ctime_ns = ? WHERE id = ?",
            (number, size, self.now_ns, self.now_ns, node.id),
        )
        return self.journal(
            ChangeKind.RESTORED,
            node,
            actor,
            parent_id=node.parent_id,
            name=node.name,
            revision=number,
        )

    def ensure_free(self, parent_id: int, name: str) -> None:
        """Raises AlreadyExists if an entry of parent_id (a node or a further name) has name."""
        self.ask_free(parent_id, name)()

    def ask_free(self, parent_id: int, name: str) -> Callable[[], None]:
        """Sends ensure_free's question ahead (Sql.ahead); the check it returns raises.

        One statement that reads no node: every create asks it, and asks it
        with its other checks, so they cost one wait.
        """
        taken = self.conn.ahead(
            "SELECT 1 FROM nodes WHERE parent_id = ? AND name = ? AND deleted_ns IS NULL"
            " UNION ALL SELECT 1 FROM links WHERE parent_id = ? AND name = ?",
            (parent_id, name, parent_id, name),
        )

        def check() -> None:
            if taken.fetchall():
                raise AlreadyExists(f"{name!r} already exists in directory {parent_id}")

        return check

    def is_empty(self, directory_id: int) -> bool:
        row = rows.fetch_one(
            self.conn,
            "SELECT 1 FROM nodes WHERE parent_id = ? AND deleted_ns IS NULL"
            " UNION ALL SELECT 1 FROM links WHERE parent_id = ? LIMIT 1",
            (directory_id, directory_id),
        )
        return row is None

    def is_within(self, node_id: int, ancestor_id: int) -> bool:
        """Whether ancestor_id is node_id itself or one of its ancestors."""
        row = rows.fetch_one(
            self.conn,
            "WITH RECURSIVE up (id) AS ("
            "  SELECT CAST(? AS BIGINT) UNION ALL"
            "  SELECT nodes.parent_id FROM nodes JOIN up ON nodes.id = up.id"
            "  WHERE nodes.parent_id IS NOT NULL"
            ") SELECT 1 FROM up WHERE id = ? LIMIT 1",
            (node_id, ancestor_id),
        )
        return row is not None

    def touch_directory(self, directory_id: int, at_ns: int = 0) -> None:
        """An entry was added, removed or renamed: the directory's mtime and ctime move.

        at_ns: when a device made the change in its journal (maybe long before it
        arrived), as its own folder showed it then; times never go back for it.
        """
        if not at_ns:
            self.conn.execute(
                "UPDATE nodes SET mtime_ns = ?, ctime_ns = ? WHERE id = ?",
                (self.now_ns, self.now_ns, directory_id),
            )
            return
        self.conn.execute(
            "UPDATE nodes SET mtime_ns = CASE WHEN mtime_ns < ? THEN ? ELSE mtime_ns END,"
            " ctime_ns = CASE WHEN ctime_ns < ? THEN ? ELSE ctime_ns END WHERE id = ?",
            (at_ns, at_ns, at_ns, at_ns, directory_id),
        )

    def journal(
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
        subject_user_id: int | None = None,
        role: Role | None = None,
        fresh: bool = False,
    ) -> Node:
        """Appends a change-journal row and stamps the nodes it touched with its sequence.

        Call it after the node's own updates: it returns the node as committed
        (with the role it came in with). fresh: node is its row as it stands
        (just inserted), so only the sequence is read back.
        """
        # Not waited for: the statements after it name its row as the newest one,
        # which it is (the engine's transactions run one at a time, see schema.py).
        self.conn.execute(
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
        self.concerns.add(node.owner_id)
        if subject_user_id is not None:
            self.concerns.add(subject_user_id)
            self.conn.execute(
                f"INSERT INTO share_changes (sequence, user_id, role) SELECT {_NEWEST}, ?, ?",
                (subject_user_id, None if role is None else role.value),
            )
        if replaced_node_id is not None:
            self.conn.execute(
                f"UPDATE nodes SET change_sequence = {_NEWEST} WHERE id = ?", (replaced_node_id,)
            )
        columns = "change_sequence" if fresh else rows.NODE_COLUMNS
        stamped = rows.fetch_one(
            self.conn,
            f"UPDATE nodes SET change_sequence = {_NEWEST} WHERE id = ? RETURNING {columns}",
            (node.id,),
        )
        self.last_sequence = int(stamped["change_sequence"])
        if fresh:
            return replace(node, change_sequence=self.last_sequence)
        return replace(rows.node(stamped), role=node.role)


# A change as the store runs it: a body applied inside a write transaction.
Write = Callable[[Transaction], T]
