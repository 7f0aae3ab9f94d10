"""Which files a block belongs to, for naming and repairing damage in storage.

blockd quarantines a block it finds damaged and reports it; `journal_damaged`
then writes a DAMAGED journal row for every live file whose kept revisions
refer to it, so the devices that follow those files (their owner's and those
they are shared with: the journal's own filtering) upload the block again
from their caches. `references` lists those files for `drive scrub`.

Runs on a connection's thread (journal_damaged inside a write transaction).
"""

from __future__ import annotations

from collections.abc import Sequence

from metad import access, rows
from metad.models import Actor, BlockReference, ChangeKind
from metad.sql import Sql
from metad.transaction import Transaction

# Files looked at per block (a block in thousands of files is rare, and a
# damaged one is healed by the first device that uploads it).
MAX_FILES_PER_BLOCK = 1000
DEVICE = "storage"  # the device name DAMAGED rows carry: no mount has it


def references(conn: Sql, hashes: Sequence[bytes]) -> list[BlockReference]:
    found: list[BlockReference] = []
    for digest in dict.fromkeys(hashes):
        by_node: dict[int, list[int]] = {}
        for node_id, number in conn.execute(
            "SELECT node_id, revision FROM revision_blocks WHERE hash = ? LIMIT ?",
            (digest, MAX_FILES_PER_BLOCK * 4),
        ):
            by_node.setdefault(node_id, []).append(number)
        for node_id, numbers in list(by_node.items())[:MAX_FILES_PER_BLOCK]:
            row = rows.fetch_one(
                conn,
                "SELECT nodes.owner_id, users.name, nodes.revision, nodes.deleted_ns FROM nodes"
                " JOIN users ON users.id = nodes.owner_id WHERE nodes.id = ?",
                (node_id,),
            )
            found.append(
                BlockReference(
                    hash=digest,
                    node_id=node_id,
                    owner_id=row[0],
                    owner_name=row[1],
                    path=access.path_in_owner_drive(conn, node_id),
                    revisions=tuple(sorted(set(numbers))),
                    current=row[2] in numbers,
                    deleted=row[3] is not None,
                )
            )
    return found


def journal_damaged(tx: Transaction, hashes: Sequence[bytes]) -> int:
    """DAMAGED for each live file whose kept revisions refer to one of hashes; how many files."""
    node_ids: dict[int, None] = {}
    for digest in dict.fromkeys(hashes):
        for (node_id,) in tx.conn.execute(
            "SELECT DISTINCT revision_blocks.node_id FROM revision_blocks"
            " JOIN nodes ON nodes.id = revision_blocks.node_id"
            " WHERE revision_blocks.hash = ? AND nodes.deleted_ns IS NULL LIMIT ?",
            (digest, MAX_FILES_PER_BLOCK),
        ):
            node_ids[node_id] = None
    for node_id in node_ids:
        node = rows.node(
            rows.fetch_one(
                tx.conn, f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id = ?", (node_id,)
            )
        )
        tx.journal(
            ChangeKind.DAMAGED,
            node,
            Actor(node.owner_id, DEVICE),
            parent_id=node.parent_id,
            name=node.name,
            revision=node.revision,
        )
    return len(node_ids)
