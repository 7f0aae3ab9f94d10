"""Rows of metad's tables as domain values, and the small SQL helpers every part uses.

Owns the column lists and the row → model mapping, so store.py and the
modules that hold one feature's SQL (access, trash, snapshots) read rows the
same way. Runs on a connection's own thread; no transactions here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from metad.models import BlockRef, ChangeEvent, ChangeKind, Node, NodeKind, Revision, Role, User
from metad.sql import Row, Sql

_NODE_FIELDS = (
    "id, owner_id, parent_id, name, kind, mode, size, mtime_ns, ctime_ns, revision, "
    "symlink_target, change_sequence, deleted_ns, uid, gid, rdev, atime_ns"
)
# A directory's live subdirectories (its st_nlink is 2 + this), for rows of `nodes`.
_SUBDIRECTORIES = (
    "(SELECT COUNT(*) FROM nodes AS sub WHERE sub.parent_id = nodes.id AND sub.kind = 'dir'"
    " AND sub.deleted_ns IS NULL) AS subdirectories"
)
# A node's further names (hard links): its st_nlink is 1 + this.
_LINKS = "(SELECT COUNT(*) FROM links WHERE links.node_id = nodes.id) AS links"
# How many extended attributes it has (a mount answers "none" without asking).
_XATTRS = "(SELECT COUNT(*) FROM xattrs WHERE xattrs.node_id = nodes.id) AS xattrs"
_COMPUTED = f"{_SUBDIRECTORIES}, {_LINKS}, {_XATTRS}"
# SELECT NODE_COLUMNS FROM nodes (the table unaliased; also in RETURNING).
NODE_COLUMNS = f"{_NODE_FIELDS}, {_COMPUTED}"
# NODE_COLUMNS for a query that joins nodes to tables with columns of the same names.
NODE_COLUMNS_OF_NODES = (
    ", ".join(f"nodes.{c} AS {c}" for c in _NODE_FIELDS.split(", ")) + f", {_COMPUTED}"
)
# Journal rows with what share_changes adds to 'shared'/'unshared' ones: select
# CHANGE_COLUMNS FROM CHANGES.
CHANGE_COLUMNS = (
    "changes.sequence AS sequence, kind, node_id, node_kind, parent_id, name, old_parent_id,"
    " old_name, revision, actor_id, device, time_ns, replaced_node_id, owner_id,"
    " share_changes.user_id AS subject_user_id, share_changes.role AS role"
)
CHANGES = "changes LEFT JOIN share_changes ON share_changes.sequence = changes.sequence"
REVISION_COLUMNS = "node_id, number, size, mtime_ns, mode, author_id, device, created_ns"


# SELECT USER_COLUMNS FROM users (no alias): with the user's security state.
USER_COLUMNS = (
    "id, name, admin, quota_bytes, root_node_id, created_ns,"
    " (SELECT token_generation FROM user_security WHERE user_id = users.id) AS token_generation,"
    " (SELECT disabled_ns FROM user_security WHERE user_id = users.id) AS disabled_ns"
)


def user(row: Row) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        admin=bool(row["admin"]),
        quota_bytes=row["quota_bytes"],
        root_id=row["root_node_id"],
        created_ns=row["created_ns"],
        token_generation=row["token_generation"] or 0,
        disabled=row["disabled_ns"] is not None,
    )


def node(row: Row) -> Node:
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
        uid=row["uid"],
        gid=row["gid"],
        rdev=row["rdev"],
        atime_ns=row["atime_ns"],
        subdirectories=row["subdirectories"],
        links=row["links"],
        xattrs=row["xattrs"],
    )


def change(row: Row) -> ChangeEvent:
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
        owner_id=row["owner_id"],
        subject_user_id=row["subject_user_id"],
        role=None if row["role"] is None else Role(row["role"]),
    )


def revision(row: Row, blocks: tuple[BlockRef, ...] = ()) -> Revision:
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


def fetch_one(conn: Sql, sql: str, params: Sequence[Any]) -> Any:
    # fetchall steps the statement to its end: none (a RETURNING one especially)
    # is left in progress when its savepoint or transaction ends.
    rows = conn.execute(sql, params).fetchall()
    return rows[0] if rows else None


IN_CHUNK = 500  # host parameters per IN (...) list, well under SQLite's limit


def in_chunks(values: Sequence[bytes]) -> Iterator[tuple[str, Sequence[bytes]]]:
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        yield ",".join("?" * len(chunk)), chunk
