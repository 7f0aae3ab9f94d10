"""Hard links: a node's further names, kept in the links table.

A node has its own name (nodes.parent_id, nodes.name), where the trash,
snapshots, sharing and the journal place it, and any number of further names
(links rows) for files, symlinks and special files; never for a folder.
Every name is an equal entry to lookup and listing. Removing a name removes
only that name while others remain; removing the node's own name promotes
its oldest further name to be its own. Only the last name sends the node to
the trash. Names live in one owner's drive (a link across drives is a
CrossDrive, as a move is).

Journal rows keep recording where the node is (its own name); LINKED and
UNLINKED name the further name in old_parent_id/old_name, so devices drop
that entry from their caches and snapshots stay right.

Runs on the writer's thread inside the change's transaction; holds the link
SQL and nothing else.
"""

from __future__ import annotations

from dataclasses import replace

from metad import rows
from metad.errors import NotPermitted
from metad.models import Actor, ChangeKind, Node, NodeKind
from metad.sql import Sql
from metad.transaction import Transaction

# Listing resumes after an entry id: a node's id for its own name, this plus
# the link's id for a further name (node ids stay far below it).
LINK_ENTRY_BASE = 1 << 48


def add(tx: Transaction, actor: Actor, node: Node, parent: Node, name: str) -> Node:
    """A further name for node in parent (access checked by the caller); journals LINKED."""
    if node.kind is NodeKind.DIRECTORY:
        raise NotPermitted(f"{node.name!r} is a folder: folders have one name only")
    tx.ensure_free(parent.id, name)
    link_id = rows.fetch_one(
        tx.conn,
        "INSERT INTO links (node_id, parent_id, name, created_ns) VALUES (?, ?, ?, ?) RETURNING id",
        (node.id, parent.id, name, tx.now_ns),
    )[0]
    tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, node.id))
    tx.touch_directory(parent.id)
    after = tx.journal(
        ChangeKind.LINKED,
        node,
        actor,
        parent_id=node.parent_id,
        name=node.name,
        old_parent_id=parent.id,
        old_name=name,
    )
    return replace(after, parent_id=parent.id, name=name, link_id=link_id)


def remove(tx: Transaction, actor: Actor, entry: Node) -> bool:
    """Removes the name entry is under; True if the node keeps other names (and stays).

    False: it was the node's only name; the caller deletes the node.
    """
    if entry.link_id is not None:
        tx.conn.execute("DELETE FROM links WHERE id = ?", (entry.link_id,))
        own_place = rows.fetch_one(
            tx.conn, "SELECT parent_id, name FROM nodes WHERE id = ?", (entry.id,)
        )
        parent_id, name = own_place[0], own_place[1]
    else:
        first = rows.fetch_one(
            tx.conn,
            "SELECT id, parent_id, name FROM links WHERE node_id = ? ORDER BY id LIMIT 1",
            (entry.id,),
        )
        if first is None:
            return False
        # The oldest further name becomes the node's own.
        tx.conn.execute("DELETE FROM links WHERE id = ?", (first[0],))
        parent_id, name = first[1], first[2]
        tx.conn.execute(
            "UPDATE nodes SET parent_id = ?, name = ? WHERE id = ?", (parent_id, name, entry.id)
        )
        tx.touch_directory(parent_id)
    tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, entry.id))
    tx.touch_directory(entry.parent_id or 0)
    tx.journal(
        ChangeKind.UNLINKED,
        replace(entry, parent_id=parent_id, name=name, link_id=None),
        actor,
        parent_id=parent_id,
        name=name,
        old_parent_id=entry.parent_id,
        old_name=entry.name,
    )
    return True


def move(tx: Transaction, actor: Actor, entry: Node, parent: Node, name: str) -> Node:
    """Renames a further name (the node's own stays); journals UNLINKED and LINKED."""
    assert entry.link_id is not None
    tx.conn.execute(
        "UPDATE links SET parent_id = ?, name = ? WHERE id = ?", (parent.id, name, entry.link_id)
    )
    tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, entry.id))
    return journal_moved(tx, actor, entry, parent.id, name)


def journal_moved(tx: Transaction, actor: Actor, entry: Node, parent_id: int, name: str) -> Node:
    """Journals a further name that went from entry's place to parent_id/name (moved already)."""
    own = rows.node(
        rows.fetch_one(tx.conn, f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ?", (entry.id,))
    )
    for kind, place in (
        (ChangeKind.UNLINKED, entry),
        (ChangeKind.LINKED, replace(entry, parent_id=parent_id, name=name)),
    ):
        tx.journal(
            kind,
            own,
            actor,
            parent_id=own.parent_id,
            name=own.name,
            old_parent_id=place.parent_id,
            old_name=place.name,
        )
    return replace(own, parent_id=parent_id, name=name, link_id=entry.link_id, role=entry.role)


def page(conn: Sql, parent_id: int, after_link_id: int, limit: int) -> list[Node]:
    """Further names in a folder, as entries, in link id order after after_link_id."""
    found = conn.execute(
        f"SELECT {rows.NODE_COLUMNS_OF_NODES}, links.id AS link_id, links.name AS link_name"
        " FROM links JOIN nodes ON nodes.id = links.node_id"
        " WHERE links.parent_id = ? AND links.id > ? ORDER BY links.id LIMIT ?",
        (parent_id, after_link_id, limit),
    ).fetchall()
    return [
        replace(rows.node(row), parent_id=parent_id, name=row["link_name"], link_id=row["link_id"])
        for row in found
    ]


def entry_id(node: Node) -> int:
    """Where a listing resumes after this entry."""
    return node.id if node.link_id is None else LINK_ENTRY_BASE + node.link_id
