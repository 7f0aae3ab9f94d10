"""Who may see and change which node, and where a node is as a given user sees it.

The owner of a drive is OWNER of every node in it. Anyone else sees a node
only through a share on it or on one of its folders; the strongest such share
is their role. A node the caller may not see is NotFound, exactly like a node
that does not exist, so ids leak nothing; a node they may see but not change
is PermissionDenied.

Runs on a connection's thread inside the caller's transaction. Holds the
access SQL and nothing else.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import replace

from metad import rows
from metad.errors import IsADirectory, NotADirectory, NotAFile, NotFound, PermissionDenied
from metad.models import Node, NodeKind, Role
from metad.sql import Sql

# Self and every ancestor of a node, nearest first.
_ANCESTORS = (
    "WITH RECURSIVE up (id, depth) AS ("
    "  SELECT CAST(? AS BIGINT), 0 UNION ALL"
    "  SELECT nodes.parent_id, up.depth + 1 FROM nodes JOIN up ON nodes.id = up.id"
    "  WHERE nodes.parent_id IS NOT NULL"
    ")"
)


def strongest(roles: Iterable[Role | None]) -> Role | None:
    best: Role | None = None
    for role in roles:
        if role is not None and (best is None or role.rank > best.rank):
            best = role
    return best


def role_on(conn: Sql, node: Node, user_id: int) -> Role | None:
    """The user's role on a node: OWNER, the strongest share on it or a folder above, or None."""
    if node.owner_id == user_id:
        return Role.OWNER
    found = conn.execute(
        f"{_ANCESTORS} SELECT shares.role FROM up JOIN shares ON shares.node_id = up.id"
        " WHERE shares.user_id = ?",
        (node.id, user_id),
    ).fetchall()
    return strongest(Role(row[0]) for row in found)


def child_role(conn: Sql, parent_role: Role, child: Node, user_id: int) -> Role:
    """A child's role given its folder's: a share on the child itself may grant more."""
    if parent_role is Role.OWNER or child.owner_id == user_id:
        return Role.OWNER
    row = rows.fetch_one(
        conn, "SELECT role FROM shares WHERE node_id = ? AND user_id = ?", (child.id, user_id)
    )
    return strongest((parent_role, None if row is None else Role(row[0]))) or parent_role


def with_roles(conn: Sql, parent_role: Role, children: list[Node], user_id: int) -> list[Node]:
    """Children of one folder, each with the user's role (one query for the direct shares)."""
    if parent_role is Role.OWNER or not children:
        return [replace(node, role=parent_role) for node in children]
    direct: dict[int, Role] = {}
    for marks, chunk in rows.in_chunks([node.id for node in children]):
        for node_id, role in conn.execute(
            f"SELECT node_id, role FROM shares WHERE user_id = ? AND node_id IN ({marks})",
            (user_id, *chunk),
        ):
            direct[node_id] = Role(role)
    return [
        replace(node, role=strongest((parent_role, direct.get(node.id))) or parent_role)
        for node in children
    ]


def visible_node(conn: Sql, node_id: int, user_id: int, need: Role = Role.READ) -> Node:
    """A live node the user may see, with their role; NotFound or PermissionDenied otherwise."""
    row = rows.fetch_one(
        conn,
        f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ? AND deleted_ns IS NULL",
        (node_id,),
    )
    if row is None:
        raise NotFound(f"no node {node_id}")
    node = rows.node(row)
    role = role_on(conn, node, user_id)
    if role is None:
        raise NotFound(f"no node {node_id}")
    if not role.allows(need):
        raise denied(node, role, need)
    return replace(node, role=role)


def directory(conn: Sql, node_id: int, user_id: int, need: Role = Role.READ) -> Node:
    """A folder the user may see (and, with need, change); NotADirectory for anything else."""
    node = visible_node(conn, node_id, user_id, need)
    if node.kind is not NodeKind.DIRECTORY:
        raise NotADirectory(f"node {node_id} is not a directory")
    return node


def regular_file(conn: Sql, node_id: int, user_id: int, need: Role = Role.READ) -> Node:
    """A regular file the user may see (and, with need, change): what has revisions."""
    node = visible_node(conn, node_id, user_id, need)
    if node.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"node {node_id} is a directory, not a file")
    if node.kind is not NodeKind.FILE:
        raise NotAFile(f"node {node_id} is a {node.kind.name.lower()}, not a file")
    return node


def denied(node: Node, role: Role, need: Role) -> PermissionDenied:
    what = "only its owner may" if need is Role.OWNER else "you may only read it, not"
    verb = "share it" if need is Role.OWNER else "change it"
    return PermissionDenied(f"{node.name!r} is shared with you as {role.value}: {what} {verb}")


def path_in_owner_drive(conn: Sql, node_id: int) -> str:
    """'docs/plan.txt': the node's names from its drive's root (deleted nodes: their last place)."""
    found = conn.execute(
        f"{_ANCESTORS} SELECT nodes.name FROM up JOIN nodes ON nodes.id = up.id"
        " ORDER BY up.depth DESC",
        (node_id,),
    ).fetchall()
    return "/".join(row[0] for row in found if row[0])


class Viewer:
    """One user's view of the tree for one read: where nodes are as they see them.

    Caches the user's shares and the parent links it walks, so placing a batch
    of journal events costs a query per distinct node, not per event.
    """

    def __init__(self, conn: Sql, user_id: int) -> None:
        self.conn = conn
        self.user_id = user_id
        self.shared: dict[int, Role] = {
            node_id: Role(role)
            for node_id, role in conn.execute(
                "SELECT node_id, role FROM shares WHERE user_id = ?", (user_id,)
            )
        }
        self.owners_sharing: set[int] = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT nodes.owner_id FROM shares JOIN nodes ON nodes.id = shares.node_id"
                " WHERE shares.user_id = ?",
                (user_id,),
            )
        }
        self._shared_during = _share_periods(conn, user_id)
        self._history: dict[int, list[tuple[int, int | None, int | None]]] = {}
        self._links: dict[int, tuple[int | None, str, int]] = {}

    def _link(self, node_id: int) -> tuple[int | None, str, int] | None:
        link = self._links.get(node_id)
        if link is None:
            row = rows.fetch_one(
                self.conn, "SELECT parent_id, name, owner_id FROM nodes WHERE id = ?", (node_id,)
            )
            if row is None:
                return None
            link = self._links[node_id] = (row[0], row[1], row[2])
        return link

    def place(self, node_id: int | None) -> tuple[str, bool] | None:
        """(path, shared) of a node as the user sees it; None if they cannot see it.

        Own nodes: the path from the user's root. Shared nodes: the path from
        the nearest shared folder above (its name first).
        """
        names: list[str] = []
        current = node_id
        while current is not None:
            link = self._link(current)
            if link is None:
                return None
            parent, name, owner = link
            if owner == self.user_id:
                if parent is None:
                    return "/".join(reversed(names)), False
            elif current in self.shared:
                names.append(name)
                return "/".join(reversed(names)), True
            names.append(name)
            current = parent
        return None

    def shared_at(self, parent_id: int | None, node_id: int, sequence: int) -> bool:
        """Whether, at that journal sequence, a share of the user's was in force on the node
        or on a folder it was in then (parent_id: its folder then). What a folder held
        before it was shared with them, or while it was not, and what a folder held before
        it moved into a share, stay its owner's."""
        if self._shared_then(node_id, sequence):
            return True
        seen: set[int] = set()
        current = parent_id
        while current is not None and current not in seen:
            if self._shared_then(current, sequence):
                return True
            seen.add(current)
            current = self._parent_at(current, sequence)
        return False

    def _shared_then(self, node_id: int, sequence: int) -> bool:
        periods = self._shared_during.get(node_id)
        if periods is None:
            return node_id in self.shared  # shared before the journal's oldest row
        return any(a <= sequence and (b is None or sequence < b) for a, b in periods)

    def _parent_at(self, node_id: int, sequence: int) -> int | None:
        """The folder a node was in at a journal sequence: every journal row about a node
        says where it is right after (its own name), so the last at or before it does;
        before its first kept row, where a move from there says it was, or where it is."""
        history = self._history.get(node_id)
        if history is None:
            history = self._history[node_id] = [
                (row[0], row[1], row[2] if row[3] == "moved" else row[1])
                for row in self.conn.execute(
                    "SELECT sequence, parent_id, old_parent_id, kind FROM changes"
                    " WHERE node_id = ? ORDER BY sequence",
                    (node_id,),
                )
            ]
        at = bisect.bisect_right(history, sequence, key=lambda row: row[0])
        if at > 0:
            return history[at - 1][1]
        if history:
            return history[0][2]
        link = self._link(node_id)
        return None if link is None else link[0]

    def place_of_entry(
        self, parent_id: int | None, name: str, node_id: int
    ) -> tuple[str, bool] | None:
        """Where an entry named name in parent_id is, for the user (a shared node: its name)."""
        link = self._link(node_id)
        if link is not None and link[2] != self.user_id and node_id in self.shared:
            return name, True
        if parent_id is None:
            return ("", False) if link is not None and link[2] == self.user_id else None
        parent = self.place(parent_id)
        if parent is None:
            return None
        path, shared = parent
        return (f"{path}/{name}" if path else name), shared


def _share_periods(conn: Sql, user_id: int) -> dict[int, list[tuple[int, int | None]]]:
    """Node -> the journal sequences between which it was shared with the user: from a
    SHARED row to the next UNSHARED (None: still shared; a change of role goes on). An
    UNSHARED whose SHARED the journal no longer holds began before every kept row."""
    periods: dict[int, list[tuple[int, int | None]]] = {}
    opened: dict[int, int] = {}
    for node_id, sequence, kind in conn.execute(
        "SELECT changes.node_id, changes.sequence, changes.kind FROM changes"
        " JOIN share_changes ON share_changes.sequence = changes.sequence"
        " WHERE share_changes.user_id = ? ORDER BY changes.sequence",
        (user_id,),
    ):
        if kind == "shared":
            opened.setdefault(node_id, sequence)
        else:
            periods.setdefault(node_id, []).append((opened.pop(node_id, 0), sequence))
    for node_id, sequence in opened.items():
        periods.setdefault(node_id, []).append((sequence, None))
    return periods
