"""The tree as it was at a past time, rebuilt from the change journal, and restoring from it.

Every journal row records where its node was after the change (parent and
name), so a node's last row at or before time T says where it was then, or
that it had been deleted; a row that moved another node over it deleted that
one. A file's content then is the revision its last row named; if retention
thinned that revision, the newest kept one before it stands in.

Restoring never deletes or overwrites: a file whose content differs gets a
new revision, a deleted node comes back, a node that now lives elsewhere is
copied, and a taken name gets "(restored)".

Runs inside a store read or write on the connection's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from metad import access, rows, rules
from metad.errors import FailedPrecondition, NotFound
from metad.models import Actor, ChangeKind, Node, NodeKind, Restored, Role, SnapshotEntry
from metad.sql import Row, Sql

if TYPE_CHECKING:
    from metad.transaction import Transaction


@dataclass(frozen=True, slots=True)
class _State:
    """A node at time T: where it was and, for files, which revision was current."""

    node_id: int
    kind: NodeKind
    parent_id: int | None
    name: str
    revision: int
    time_ns: int  # of its last change at or before T


def _states(conn: Sql, node_ids: list[int], at_ns: int) -> dict[int, _State]:
    """The nodes among node_ids that existed (not deleted) at at_ns, as they were."""
    states: dict[int, _State] = {}
    for marks, chunk in rows.in_chunks(node_ids):
        last = conn.execute(
            "SELECT changes.* FROM changes JOIN ("
            "  SELECT node_id AS id, MAX(sequence) AS last FROM changes"
            f"  WHERE node_id IN ({marks}) AND time_ns <= ? GROUP BY node_id"
            ") AS latest ON changes.sequence = latest.last",
            (*chunk, at_ns),
        ).fetchall()
        replaced = dict(
            conn.execute(
                "SELECT replaced_node_id, MAX(sequence) FROM changes"
                f" WHERE replaced_node_id IN ({marks}) AND time_ns <= ? GROUP BY replaced_node_id",
                (*chunk, at_ns),
            ).fetchall()
        )
        revisions = dict(
            conn.execute(
                "SELECT node_id, MAX(revision) FROM changes"
                f" WHERE node_id IN ({marks}) AND time_ns <= ? AND revision > 0 GROUP BY node_id",
                (*chunk, at_ns),
            ).fetchall()
        )
        for row in last:
            if row["kind"] == ChangeKind.DELETED.value:
                continue
            if replaced.get(row["node_id"], 0) > row["sequence"]:
                continue  # a move replaced it
            states[row["node_id"]] = _State(
                node_id=row["node_id"],
                kind=NodeKind(row["node_kind"]),
                parent_id=row["parent_id"],
                name=row["name"],
                revision=revisions.get(row["node_id"], 0),
                time_ns=row["time_ns"],
            )
    return states


def _children(conn: Sql, folder_id: int, at_ns: int) -> list[_State]:
    candidates = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT node_id FROM changes WHERE parent_id = ? AND time_ns <= ?",
            (folder_id, at_ns),
        )
    ]
    states = _states(conn, candidates, at_ns)
    return sorted((s for s in states.values() if s.parent_id == folder_id), key=lambda s: s.name)


def _kept_revision(conn: Sql, node_id: int, number: int) -> Row | None:
    """The revision number, or the newest kept one before it."""
    return rows.fetch_one(
        conn,
        "SELECT number, size, mtime_ns FROM revisions WHERE node_id = ? AND number <= ?"
        " ORDER BY number DESC LIMIT 1",
        (node_id, number),
    )


def _any_node(conn: Sql, node_id: int, user_id: int, need: Role) -> Node:
    """A node live or deleted that the user may reach (their own, or through a share now)."""
    row = rows.fetch_one(conn, f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ?", (node_id,))
    node = None if row is None else rows.node(row)
    role = None if node is None else access.role_on(conn, node, user_id)
    if node is None or role is None:
        raise NotFound(f"no node {node_id}")
    if not role.allows(need):
        raise access.denied(node, role, need)
    return node


def entries(conn: Sql, user_id: int, folder_id: int, at_ns: int) -> list[SnapshotEntry]:
    """The folder's entries as they were at at_ns."""
    folder = _any_node(conn, folder_id, user_id, Role.READ)
    result = []
    for state in _children(conn, folder.id, at_ns):
        size, mtime, kept, target = 0, state.time_ns, True, None
        if state.kind is NodeKind.FILE:
            revision = _kept_revision(conn, state.node_id, state.revision)
            kept = revision is not None
            if revision is not None:
                size, mtime = revision["size"], revision["mtime_ns"]
        elif state.kind is NodeKind.SYMLINK:
            row = rows.fetch_one(
                conn, "SELECT symlink_target FROM nodes WHERE id = ?", (state.node_id,)
            )
            target = row[0]
            size = rules.symlink_size(target)
        result.append(
            SnapshotEntry(
                node_id=state.node_id,
                name=state.name,
                kind=state.kind,
                size=size,
                mtime_ns=mtime,
                revision=state.revision,
                content_kept=kept,
                symlink_target=target,
            )
        )
    return result


@dataclass
class _Tally:
    files: int = 0
    directories: int = 0
    skipped: int = 0


def restore(tx: Transaction, actor: Actor, node_id: int, at_ns: int) -> Restored:
    """Restores a file or folder (with its tree) as it was at at_ns, into the folder it was in."""
    _any_node(tx.conn, node_id, actor.user_id, Role.WRITE)
    state = _states(tx.conn, [node_id], at_ns).get(node_id)
    if state is None or state.parent_id is None:
        raise NotFound(f"node {node_id} did not exist at that time (or is a drive root)")
    try:
        parent = access.visible_node(tx.conn, state.parent_id, actor.user_id, Role.WRITE)
    except NotFound:
        raise FailedPrecondition(
            f"the folder {state.name!r} was in is gone; restore that folder instead"
        ) from None
    tally = _Tally()
    node = _restore(tx, actor, state, parent, at_ns, tally)
    return Restored(
        node=node,
        path=access.path_in_owner_drive(tx.conn, node.id),
        files=tally.files,
        directories=tally.directories,
        skipped=tally.skipped,
    )


def _restore(
    tx: Transaction, actor: Actor, state: _State, parent: Node, at_ns: int, tally: _Tally
) -> Node:
    row = rows.fetch_one(
        tx.conn, f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ?", (state.node_id,)
    )
    current = rows.node(row)
    kept = None
    if state.kind is NodeKind.FILE:
        kept = _kept_revision(tx.conn, state.node_id, state.revision)
        if kept is None:
            tally.skipped += 1
            return current
    purged = (
        rows.fetch_one(tx.conn, "SELECT 1 FROM purged_nodes WHERE node_id = ?", (current.id,))
        is not None
    )
    in_place = (
        current.deleted_ns is None and current.parent_id == parent.id and current.name == state.name
    )
    if in_place:
        node = current
    elif current.deleted_ns is not None and not (purged and state.kind is NodeKind.FILE):
        node = tx.undelete(current, parent.id, tx.free_name(parent.id, state.name), actor)
    else:
        node = _copy(tx, actor, current, parent, tx.free_name(parent.id, state.name))
    if state.kind is NodeKind.FILE:
        assert kept is not None
        if node.id != current.id or node.revision != kept["number"]:
            node = tx.add_revision_from(node, current.id, kept["number"], actor)
        if not in_place or node is not current:
            tally.files += 1
    elif state.kind is NodeKind.DIRECTORY:
        if not in_place:
            tally.directories += 1
        for child in _children(tx.conn, state.node_id, at_ns):
            _restore(tx, actor, child, node, at_ns, tally)
    return node


def _copy(tx: Transaction, actor: Actor, source: Node, parent: Node, name: str) -> Node:
    """A new node like source in parent (a file starts empty: its content is added after)."""
    node = tx.insert_node(
        owner_id=parent.owner_id,
        parent_id=parent.id,
        name=name,
        kind=source.kind,
        mode=source.mode,
        mtime_ns=tx.now_ns,
        revision=1 if source.kind is NodeKind.FILE else 0,
        size=source.size if source.kind is NodeKind.SYMLINK else 0,
        symlink_target=source.symlink_target,
        role=parent.role,
        uid=source.uid,
        gid=source.gid,
        rdev=source.rdev,
    )
    if source.kind is NodeKind.FILE:
        tx.insert_revision(node, 1, 0, tx.now_ns, actor)
    tx.touch_directory(parent.id)
    return tx.journal(
        ChangeKind.CREATED,
        node,
        actor,
        parent_id=parent.id,
        name=name,
        revision=node.revision,
    )
