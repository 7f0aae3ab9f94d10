"""Sharing: who may see and change someone else's file or folder, and the shares' lists.

An owner shares a node with another user as READ or WRITE; the share covers
the node and everything below it (access.py works out the role). Sharing and
unsharing are journaled for both users; unsharing also refuses the block
grants the user still holds (security.py), so blockd stops serving them.

Runs on a connection's thread (share/unshare inside a write transaction).
Holds the sharing SQL and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from metad import access, rows, security
from metad.errors import InvalidArgument, NotFound
from metad.models import Actor, ChangeKind, Role, Share, User
from metad.sql import Sql
from metad.transaction import Transaction


def _user_named(conn: Sql, name: str) -> User:
    row = rows.fetch_one(conn, f"SELECT {rows.USER_COLUMNS} FROM users WHERE name = ?", (name,))
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return rows.user(row)


def _shares(conn: Sql, viewer_id: int, where: str, params: Sequence[Any]) -> list[Share]:
    """Shares matching where (SQL over shares and nodes), nodes with the viewer's role."""
    found = conn.execute(
        f"SELECT {rows.NODE_COLUMNS_OF_NODES},"
        " shares.user_id AS share_user, shares.role AS share_role, shares.created_ns AS shared_ns,"
        " owners.name AS owner_name, users.name AS user_name"
        " FROM shares JOIN nodes ON nodes.id = shares.node_id"
        " JOIN users AS owners ON owners.id = nodes.owner_id"
        " JOIN users ON users.id = shares.user_id"
        f" WHERE {where} ORDER BY nodes.id, users.name",
        tuple(params),
    ).fetchall()
    result = []
    for row in found:
        node = rows.node(row)
        result.append(
            Share(
                node=replace(node, role=access.role_on(conn, node, viewer_id)),
                path=access.path_in_owner_drive(conn, node.id),
                owner_id=node.owner_id,
                owner_name=row["owner_name"],
                user_id=row["share_user"],
                user_name=row["user_name"],
                role=Role(row["share_role"]),
                created_ns=row["shared_ns"],
            )
        )
    return result


def made_by(conn: Sql, user_id: int, node_id: int = 0) -> list[Share]:
    """Shares the user made, of live nodes (of one node if node_id)."""
    where = "nodes.owner_id = ? AND nodes.deleted_ns IS NULL"
    params: tuple[int, ...] = (user_id,)
    if node_id:
        where, params = f"{where} AND shares.node_id = ?", (user_id, node_id)
    return _shares(conn, user_id, where, params)


def shared_with(conn: Sql, user_id: int) -> list[Share]:
    """Live files and folders others shared with the user."""
    return _shares(conn, user_id, "shares.user_id = ? AND nodes.deleted_ns IS NULL", (user_id,))


def share(tx: Transaction, actor: Actor, node_id: int, user_name: str, role: Role) -> Share:
    """Shares a node of the actor's with a user (or changes the role); journals SHARED."""
    node = access.visible_node(tx.conn, node_id, actor.user_id, Role.OWNER)
    if node.parent_id is None:
        raise InvalidArgument("share a folder or a file, not your whole drive")
    user = _user_named(tx.conn, user_name)
    if user.id == node.owner_id:
        raise InvalidArgument(f"{user_name!r} owns {node.name!r} already")
    tx.conn.execute(
        "INSERT INTO shares (node_id, user_id, role, created_ns) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (node_id, user_id) DO UPDATE SET role = excluded.role",
        (node.id, user.id, role.value, tx.now_ns),
    )
    tx.journal(
        ChangeKind.SHARED,
        node,
        actor,
        parent_id=node.parent_id,
        name=node.name,
        subject_user_id=user.id,
        role=role,
    )
    made = "shares.node_id = ? AND shares.user_id = ?"
    return _shares(tx.conn, actor.user_id, made, (node.id, user.id))[0]


def unshare(tx: Transaction, actor: Actor, node_id: int, user_name: str) -> int:
    """Takes shares away (all if no user_name), refusing the users' grants; journals UNSHARED."""
    node = access.visible_node(tx.conn, node_id, actor.user_id, Role.OWNER)
    if user_name:
        users = [_user_named(tx.conn, user_name).id]
    else:
        users = [
            row[0]
            for row in tx.conn.execute("SELECT user_id FROM shares WHERE node_id = ?", (node.id,))
        ]
    removed = 0
    for user_id in users:
        gone = tx.conn.execute(
            "DELETE FROM shares WHERE node_id = ? AND user_id = ?", (node.id, user_id)
        ).rowcount
        if gone:
            removed += gone
            security.revoke(tx, user_id, tokens=False)  # blockd stops serving at once
            tx.journal(
                ChangeKind.UNSHARED,
                node,
                actor,
                parent_id=node.parent_id,
                name=node.name,
                subject_user_id=user_id,
            )
    if user_name and not removed:
        raise NotFound(f"{node.name!r} is not shared with {user_name!r}")
    return removed
