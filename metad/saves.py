"""Saves keep history: a file renamed over another becomes that file's newest revision.

Editors, `sed -i`, rsync and office suites save by writing a temporary file
and renaming it over the original. Done as a plain move, the original (its
history, its shares, its place in others' drives) would go to the trash and
the temporary would carry on alone. Instead, when a regular file is renamed
over another regular file of the same drive and neither has further names
(hard links), the moved file's content and attributes become the next
revision of the file it replaces: same node id, its history, its shares.
The moved node itself is gone: quietly when it held nothing but that content
(a temporary), to the trash when it had a history of its own.

Journal: EDITED for the file saved over (every device sees new content under
the name it knew) and DELETED for the moved file at its old name.

Runs on the writer's thread inside the rename's transaction.
"""

from __future__ import annotations

from metad import rows, trash, xattrs
from metad.models import Actor, ChangeKind, Node, NodeKind
from metad.transaction import Transaction


def applies(moved: Node, replaced: Node) -> bool:
    """Whether renaming moved over replaced is a save (see the module docstring)."""
    return (
        moved.kind is NodeKind.FILE
        and replaced.kind is NodeKind.FILE
        and moved.owner_id == replaced.owner_id
        and moved.link_id is None
        and replaced.link_id is None
        and moved.links == 0
        and replaced.links == 0
    )


def save_over(
    tx: Transaction, actor: Actor, moved: Node, replaced: Node, old_place: tuple[int, str]
) -> Node:
    """Makes moved's content and attributes replaced's next revision; moved goes away."""
    number = replaced.revision + 1
    tx.conn.execute(
        f"INSERT INTO revisions ({rows.REVISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            replaced.id,
            number,
            moved.size,
            moved.mtime_ns,
            moved.mode,
            actor.user_id,
            actor.device,
            tx.now_ns,
        ),
    )
    tx.conn.execute(
        "INSERT INTO revision_blocks (node_id, revision, block_index, hash, file_offset, size)"
        " SELECT ?, ?, block_index, hash, file_offset, size FROM revision_blocks"
        " WHERE node_id = ? AND revision = ?",
        (replaced.id, number, moved.id, moved.revision),
    )
    tx.conn.execute(
        "UPDATE nodes SET revision = ?, size = ?, mtime_ns = ?, atime_ns = ?, mode = ?, uid = ?,"
        " gid = ?, ctime_ns = ? WHERE id = ?",
        (
            number,
            moved.size,
            moved.mtime_ns,
            moved.atime_ns,
            moved.mode,
            moved.uid,
            moved.gid,
            tx.now_ns,
            replaced.id,
        ),
    )
    xattrs.take_from_node(tx, replaced.id, moved.id)
    xattrs.keep_with_revision(tx, replaced.id, number)
    tx.conn.execute(
        "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
        (tx.now_ns, tx.now_ns, moved.id),
    )
    old_parent_id, old_name = old_place
    tx.journal(ChangeKind.DELETED, moved, actor, parent_id=old_parent_id, name=old_name)
    if not _has_history(tx, moved):
        trash.purge(tx, "id = ?", (moved.id,))
    return tx.journal(
        ChangeKind.EDITED,
        replaced,
        actor,
        parent_id=replaced.parent_id,
        name=replaced.name,
        revision=number,
    )


def _has_history(tx: Transaction, node: Node) -> bool:
    """Whether a file kept content other than its current revision (worth the trash)."""
    row = rows.fetch_one(
        tx.conn,
        "SELECT 1 FROM revisions WHERE node_id = ? AND number != ? AND size > 0 LIMIT 1",
        (node.id, node.revision),
    )
    return row is not None
