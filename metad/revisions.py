"""A file's kept revisions: reading them, restoring one, and thinning old ones.

Owns the revisions SQL the store's revision calls run: one revision with its
blocks, the list of kept revisions, making an old revision's content the
newest one, and dropping what the retention policy (retention.py, a pure
policy) no longer keeps, a batch of files at a time. Commits of new content
live in edits.py and the journal row in transaction.py. Runs on a
connection's own thread (in the write's transaction for changes).

Must not: drop a file's current revision, or know gRPC.
"""

from __future__ import annotations

from metad import access, rows
from metad.errors import NotFound
from metad.models import Actor, BlockRef, Node, Revision, Role
from metad.retention import Retention
from metad.sql import Sql
from metad.transaction import Transaction


def get(conn: Sql, user_id: int, node_id: int, number: int) -> Revision:
    """One revision with its blocks ordered by offset; number 0 = the current one."""
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
        row, tuple(BlockRef(bytes(b["hash"]), b["file_offset"], b["size"]) for b in blocks)
    )


def kept(conn: Sql, user_id: int, node_id: int) -> list[Revision]:
    """Every kept revision, newest first, without block lists."""
    node = access.regular_file(conn, node_id, user_id)
    found = conn.execute(
        f"SELECT {rows.REVISION_COLUMNS} FROM revisions WHERE node_id = ? ORDER BY number DESC",
        (node.id,),
    ).fetchall()
    return [rows.revision(row) for row in found]


def restore(tx: Transaction, actor: Actor, node_id: int, number: int) -> Node:
    """Makes revision number's content the file's newest revision."""
    node = access.regular_file(tx.conn, node_id, actor.user_id, Role.WRITE)
    exists = rows.fetch_one(
        tx.conn, "SELECT 1 FROM revisions WHERE node_id = ? AND number = ?", (node.id, number)
    )
    if exists is None:
        raise NotFound(f"{node.name!r} has no revision {number} (any more)")
    return tx.add_revision_from(node, node.id, number, actor)


def thin(tx: Transaction, policy: Retention, after_node: int, batch: int) -> tuple[int, int]:
    """Drops what the policy no longer keeps from up to batch files with id > after_node.

    Returns (revisions dropped, the last file looked at, or 0 when none is left).
    """
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
        current = rows.fetch_one(tx.conn, "SELECT revision FROM nodes WHERE id = ?", (node_id,))[0]
        found = tx.conn.execute(
            "SELECT number, created_ns FROM revisions WHERE node_id = ?", (node_id,)
        ).fetchall()
        doomed = policy.to_drop([(r[0], r[1]) for r in found], current, tx.now_ns)
        for number in doomed:
            for table, column in (
                ("revision_xattrs", "revision"),
                ("revision_blocks", "revision"),
                ("revisions", "number"),
            ):
                tx.conn.execute(
                    f"DELETE FROM {table} WHERE node_id = ? AND {column} = ?", (node_id, number)
                )
        count += len(doomed)
    return count, candidates[-1] if len(candidates) == batch else 0
