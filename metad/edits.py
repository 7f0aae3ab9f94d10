"""Changes to what a node holds: content revisions, attributes, extended attributes.

As in namespace.py, each function applies the pure rules at once and returns
the change as a body for a write transaction, so a change sent alone and one
sent in an ApplyBatch run the same code. A commit checks, in its transaction,
that the file is still at its base revision, that every block is proven
(possession.py), the owner's quota and the garbage collection fence.

Must not: run a transaction (the store does), check receipts (the servicer
holds the key: blocks arrive `vouched`), or know gRPC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from metad import access, possession, rows, rules, xattrs
from metad.errors import BlocksCondemned, StaleRevision, UnprovenBlocks
from metad.models import (
    NO_CHANGE,
    NO_OWNERSHIP,
    Actor,
    AttributeChange,
    BlockRef,
    ChangeKind,
    Node,
    Ownership,
    Role,
)
from metad.sql import Cursor, Sql
from metad.transaction import Transaction, Write


def with_attributes(node: Node, change: AttributeChange) -> Node:
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


# Whether the garbage collector has condemned any block at all (usually not).
ANY_CONDEMNED = "SELECT 1 FROM condemned_blocks LIMIT 1"


def condemned_among(conn: Sql, hashes: set[bytes], probe: Cursor | None = None) -> set[bytes]:
    """Which of hashes the garbage collector has condemned (usually none: one probe).

    probe: ANY_CONDEMNED sent ahead (Sql.ahead).
    """
    if probe is None:
        probe = conn.execute(ANY_CONDEMNED)
    if probe.fetchall() == [] or not hashes:
        return set()
    hits: set[bytes] = set()
    for marks, chunk in rows.in_chunks(sorted(hashes)):
        found = conn.execute(f"SELECT hash FROM condemned_blocks WHERE hash IN ({marks})", chunk)
        hits.update(row[0] for row in found)
    return hits


def _drop_empty_placeholder(tx: Transaction, node: Node) -> None:
    """A new file's first content replaces the empty revision 1 CreateFile made.

    So its history starts with its content (numbers still only grow: every
    device's caches keyed by revision stay right).
    """
    if node.revision != 1:
        return
    # Two statements and no round trip to look first: the attributes kept with the
    # placeholder (its foreign key wants them gone first), then the placeholder.
    empty = (
        "SELECT 1 FROM revisions WHERE node_id = ? AND number = 1 AND size = 0"
        " AND NOT EXISTS (SELECT 1 FROM revision_blocks WHERE node_id = ? AND revision = 1)"
    )
    xattrs.forget_revisions(
        tx, f"node_id = ? AND revision = 1 AND EXISTS ({empty})", (node.id, node.id, node.id)
    )
    tx.conn.execute(
        "DELETE FROM revisions WHERE node_id = ? AND number = 1 AND size = 0"
        " AND NOT EXISTS (SELECT 1 FROM revision_blocks WHERE node_id = ? AND revision = 1)",
        (node.id, node.id),
    )


def commit_revision(
    actor: Actor,
    node_id: int,
    base_revision: int,
    size: int,
    mtime_ns: int,
    blocks: Sequence[BlockRef],
    attributes: AttributeChange = NO_CHANGE,
) -> Write[Node]:
    """Revision current+1 with its block list, only if the file is still at base_revision.

    Every block must be proven (see possession.py): UnprovenBlocks otherwise.
    attributes set while the edits were made (chmod, chown, utime) come
    with them, in the same step, and the revision keeps the new mode.
    """
    rules.check_blocks(size, blocks)
    rules.check_ownership(attributes.owner)
    block_list = tuple(blocks)

    def body(tx: Transaction) -> Node:
        # Their answers come with the file's: one wait for the three.
        probe = tx.conn.ahead(ANY_CONDEMNED)
        own_quota = tx.ask_quota(actor.user_id)  # most commits are to one's own files
        found = access.regular_file(tx.conn, node_id, actor.user_id, Role.WRITE)
        node = with_attributes(found, attributes)
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
        quota = own_quota if node.owner_id == actor.user_id else tx.ask_quota(node.owner_id)
        quota(size - node.size)
        condemned = condemned_among(tx.conn, {b.hash for b in block_list}, probe)
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
        # The node as that update left it: nothing else of it changed.
        edited = replace(node, revision=number, size=size, mtime_ns=mtime, ctime_ns=tx.now_ns)
        return tx.journal(
            ChangeKind.EDITED,
            edited,
            actor,
            parent_id=node.parent_id,
            name=node.name,
            revision=number,
            fresh=True,
        )

    return body


def set_attributes(
    actor: Actor,
    node_id: int,
    *,
    mode: int | None = None,
    mtime_ns: int | None = None,
    atime_ns: int | None = None,
    owner: Ownership = NO_OWNERSHIP,
    changed_ns: int | None = None,
) -> Write[Node]:
    """Mode, times and/or ownership; nothing given is a no-op that returns the node.

    Any change moves ctime: to now, or to changed_ns (when a device made the
    change in its journal, as a create's time; never in the future, never back),
    so the device's view does not change when the change arrives. Who may
    chown or chmod is the mount's (the kernel's) to decide by the POSIX rules:
    metad keeps numbers it cannot check; what a user may change at all is
    their role's (WRITE).
    """
    rules.check_ownership(owner)
    change = AttributeChange(mode, atime_ns, owner)

    def body(tx: Transaction) -> Node:
        node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
        if change.empty and mtime_ns is None:
            return node
        new = with_attributes(node, change)
        tx.conn.execute(
            "UPDATE nodes SET mode = ?, mtime_ns = ?, atime_ns = ?, uid = ?, gid = ?,"
            " ctime_ns = ? WHERE id = ?",
            (
                new.mode,
                node.mtime_ns if mtime_ns is None else mtime_ns,
                new.atime_ns,
                new.uid,
                new.gid,
                tx.now_ns if changed_ns is None else max(node.ctime_ns, min(changed_ns, tx.now_ns)),
                node.id,
            ),
        )
        return tx.journal(
            ChangeKind.ATTRIBUTES, node, actor, parent_id=node.parent_id, name=node.name
        )

    return body


def _attributes_changed(tx: Transaction, actor: Actor, node: Node) -> Node:
    """ctime moves and ATTRIBUTES is journaled; the node as it is now."""
    tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, node.id))
    return tx.journal(ChangeKind.ATTRIBUTES, node, actor, parent_id=node.parent_id, name=node.name)


def set_xattr(
    actor: Actor, node_id: int, name: str, value: bytes, how: int = xattrs.EITHER
) -> Write[Node]:
    """Sets one extended attribute (how: xattrs.EITHER, CREATE or REPLACE)."""
    xattrs.check_name(name)

    def body(tx: Transaction) -> Node:
        node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
        xattrs.put(tx, node.id, name, value, how)
        return _attributes_changed(tx, actor, node)

    return body


def remove_xattr(actor: Actor, node_id: int, name: str) -> Write[Node]:
    xattrs.check_name(name)

    def body(tx: Transaction) -> Node:
        node = access.visible_node(tx.conn, node_id, actor.user_id, Role.WRITE)
        xattrs.remove(tx, node.id, name)
        return _attributes_changed(tx, actor, node)

    return body
