"""Proof of possession: a commit may name only blocks the caller has shown they hold.

A block is proven when a receipt from blockd's Upload vouches for its hash
and size for this caller (checked by the servicer, which holds the key: the
block arrives here `vouched`), or when a revision the caller may read
already refers to the same hash and size (an edit keeping most of a file's
blocks, a copy of a file they can read). Anything else would let someone who
learnt a hash read content they never had (the "Dropship" attack) or claim a
size the block does not have.

Runs on the writer's thread inside the commit's transaction. Holds this
check's SQL and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from metad import access, rows
from metad.models import BlockRef
from metad.sql import Sql

# Files looked at per block when only a share could make it readable.
_SHARED_CANDIDATES = 50


def first_unproven(
    conn: Sql, user_id: int, node_id: int, base: int, blocks: Sequence[BlockRef]
) -> int | None:
    """The position of the first block neither vouched for nor in a revision the user may read.

    None when every block is proven. base: the revision of node_id the
    commit is based on; its blocks are looked up first, in one query, since
    an edit keeps most of them. Stops at the first failure, so a commit of
    made-up blocks costs one lookup, not one per block.
    """
    todo = [(index, block) for index, block in enumerate(blocks) if not block.vouched]
    if not todo:
        return None
    kept = {
        (row[0], row[1])
        for row in conn.execute(
            "SELECT hash, size FROM revision_blocks WHERE node_id = ? AND revision = ?",
            (node_id, base),
        )
    }
    checked: set[tuple[bytes, int]] = set()
    for index, block in todo:
        key = (block.hash, block.size)
        if key in kept or key in checked:
            continue
        if not _readable_reference(conn, user_id, block.hash, block.size):
            return index
        checked.add(key)
    return None


def _readable_reference(conn: Sql, user_id: int, digest: bytes, size: int) -> bool:
    """Whether a kept revision the user may read refers to this hash with this size."""
    owned = rows.fetch_one(
        conn,
        "SELECT 1 FROM revision_blocks JOIN nodes ON nodes.id = revision_blocks.node_id"
        " WHERE revision_blocks.hash = ? AND revision_blocks.size = ? AND nodes.owner_id = ?"
        " LIMIT 1",
        (digest, size, user_id),
    )
    if owned is not None:
        return True
    candidates = conn.execute(
        f"SELECT DISTINCT {rows.NODE_COLUMNS_OF_NODES} FROM revision_blocks"
        " JOIN nodes ON nodes.id = revision_blocks.node_id"
        " WHERE revision_blocks.hash = ? AND revision_blocks.size = ? AND nodes.deleted_ns IS NULL"
        " LIMIT ?",
        (digest, size, _SHARED_CANDIDATES),
    ).fetchall()
    return any(access.role_on(conn, rows.node(row), user_id) is not None for row in candidates)
