"""The trash: what deleting kept, bringing it back, and letting it go for good.

Deleting never removes a node: it marks it (nodes.deleted_ns) and keeps its
place and revisions. A folder is removed entry by entry (`rm -r` empties it
first), so "the tree deleted with a folder" is the run of deletions in its
subtree that ended with its own: every descendant deleted after the last
change in the subtree that was not a deletion. Restoring the folder brings
exactly that run back; an entry deleted on its own before stays in the trash.

Purging (emptying, or expiry after the trash period) drops the revisions and
their block references, so garbage collection can reclaim the blocks, and
records the node in purged_nodes; the node row stays for the journal.

Runs inside a store write or read on the connection's thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metad import access, rows
from metad.errors import NotFound
from metad.models import Actor, Node, NodeKind, Restored, TrashEntry
from metad.sql import Sql

if TYPE_CHECKING:
    from metad.transaction import Transaction

_NOT_PURGED = "id NOT IN (SELECT node_id FROM purged_nodes)"


def entries(conn: Sql, user_id: int, keep_ns: int) -> list[TrashEntry]:
    """The user's deleted nodes that sit in a live folder, newest first.

    keep_ns: how long the trash keeps an entry (0 = until emptied).
    """
    found = conn.execute(
        f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE owner_id = ? AND deleted_ns IS NOT NULL"
        f" AND {_NOT_PURGED} AND EXISTS (SELECT 1 FROM nodes AS parent"
        "   WHERE parent.id = nodes.parent_id AND parent.deleted_ns IS NULL)"
        " ORDER BY deleted_ns DESC, id DESC",
        (user_id,),
    ).fetchall()
    result = []
    for row in found:
        node = rows.node(row)
        assert node.deleted_ns is not None
        result.append(
            TrashEntry(
                node=node,
                path=access.path_in_owner_drive(conn, node.id),
                deleted_ns=node.deleted_ns,
                purge_ns=node.deleted_ns + keep_ns if keep_ns else 0,
            )
        )
    return result


def _deleted_node(conn: Sql, node_id: int, user_id: int) -> Node:
    row = rows.fetch_one(
        conn,
        f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ? AND owner_id = ?"
        f" AND deleted_ns IS NOT NULL AND {_NOT_PURGED}",
        (node_id, user_id),
    )
    if row is None:
        raise NotFound(f"node {node_id} is not in your trash")
    return rows.node(row)


def _deleted_with(conn: Sql, folder: Node) -> list[Node]:
    """Descendants deleted in the run that ended with the folder's deletion, parents first."""
    subtree = conn.execute(
        "WITH RECURSIVE down (id, depth) AS ("
        "  SELECT CAST(? AS BIGINT), 0 UNION ALL"
        "  SELECT nodes.id, down.depth + 1 FROM nodes JOIN down ON nodes.parent_id = down.id"
        f") SELECT {rows.NODE_COLUMNS}, down.depth AS depth FROM down JOIN nodes USING (id)"
        " WHERE down.depth > 0 ORDER BY down.depth, nodes.id",
        (folder.id,),
    ).fetchall()
    if not subtree:
        return []
    ids = [folder.id, *(row["id"] for row in subtree)]
    cutoff = 0
    for marks, chunk in rows.in_chunks(ids):
        row = rows.fetch_one(
            conn,
            "SELECT COALESCE(MAX(sequence), 0) FROM changes"
            f" WHERE node_id IN ({marks}) AND kind != 'deleted' AND sequence < ?",
            (*chunk, folder.change_sequence),
        )
        cutoff = max(cutoff, int(row[0]))
    purged = {
        row[0]
        for marks, chunk in rows.in_chunks(ids)
        for row in conn.execute(
            f"SELECT node_id FROM purged_nodes WHERE node_id IN ({marks})", chunk
        )
    }
    return [
        node
        for node in map(rows.node, subtree)
        if node.deleted_ns is not None
        and node.id not in purged
        and cutoff < node.change_sequence <= folder.change_sequence
    ]


def restore(tx: Transaction, actor: Actor, node_id: int) -> Restored:
    """Brings a node of the caller's trash back, with the folders it needs and its tree."""
    node = _deleted_node(tx.conn, node_id, actor.user_id)
    assert node.parent_id is not None  # a drive root is never deleted
    missing_folders: list[Node] = []
    parent_id: int | None = node.parent_id
    while parent_id is not None:
        parent = rows.node(
            rows.fetch_one(
                tx.conn, f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ?", (parent_id,)
            )
        )
        if parent.deleted_ns is None:
            break
        missing_folders.append(parent)
        parent_id = parent.parent_id
    tree = _deleted_with(tx.conn, node) if node.kind is NodeKind.DIRECTORY else []
    tx.check_quota(actor.user_id, sum(n.size for n in (node, *tree) if n.kind is NodeKind.FILE))
    for folder in reversed(missing_folders):  # outermost first
        assert folder.parent_id is not None
        tx.undelete(folder, folder.parent_id, tx.free_name(folder.parent_id, folder.name), actor)
    restored = tx.undelete(node, node.parent_id, tx.free_name(node.parent_id, node.name), actor)
    for member in tree:  # parents come back before their children
        assert member.parent_id is not None
        tx.undelete(member, member.parent_id, tx.free_name(member.parent_id, member.name), actor)
    return Restored(
        node=restored,
        path=access.path_in_owner_drive(tx.conn, restored.id),
        files=1 + len(tree) + len(missing_folders),
    )


def purge(tx: Transaction, where: str, params: tuple[object, ...]) -> tuple[int, int]:
    """Lets go of deleted nodes matching `where` (SQL over nodes): (nodes, bytes of files)."""
    doomed = f"SELECT id FROM nodes WHERE deleted_ns IS NOT NULL AND {_NOT_PURGED} AND ({where})"
    row = rows.fetch_one(
        tx.conn,
        "SELECT COUNT(*),"
        " CAST(COALESCE(SUM(CASE WHEN kind = 'file' THEN size END), 0) AS BIGINT) FROM nodes"
        f" WHERE id IN ({doomed})",
        params,
    )
    tx.conn.execute(f"DELETE FROM revision_blocks WHERE node_id IN ({doomed})", params)
    tx.conn.execute(f"DELETE FROM revision_xattrs WHERE node_id IN ({doomed})", params)
    tx.conn.execute(f"DELETE FROM xattrs WHERE node_id IN ({doomed})", params)
    tx.conn.execute(f"DELETE FROM revisions WHERE node_id IN ({doomed})", params)
    tx.conn.execute(
        "INSERT INTO purged_nodes (node_id, purged_ns)"
        f" SELECT id, ? FROM nodes WHERE id IN ({doomed})",
        (tx.now_ns, *params),
    )
    return int(row[0]), int(row[1])
