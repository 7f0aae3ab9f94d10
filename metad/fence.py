"""The garbage collection fence: blocks condemned, released, and what revisions refer to.

Owns the condemned_blocks SQL and the reads blockd's collector makes of
revision_blocks. A hash is condemned in a write transaction, as every commit
runs in one, so a commit either lands before (its blocks are referenced and
not condemned) or after (edits.py refuses it with BlocksCondemned). Runs on a
connection's own thread.

Must not: delete blocks (blockd's collector does), or know gRPC.
"""

from __future__ import annotations

from collections.abc import Sequence

from metad import edits, rows
from metad.models import StorageSummary
from metad.sql import Sql
from metad.transaction import Transaction


def condemn(tx: Transaction, candidates: Sequence[bytes]) -> list[bytes]:
    """Fences the hashes among candidates (sorted, distinct) no revision refers to."""
    referenced: set[bytes] = set()
    for marks, chunk in rows.in_chunks(candidates):
        found = tx.conn.execute(
            f"SELECT DISTINCT hash FROM revision_blocks WHERE hash IN ({marks})", chunk
        )
        referenced.update(bytes(row[0]) for row in found)
    condemned = [h for h in candidates if h not in referenced]
    tx.conn.executemany(
        "INSERT INTO condemned_blocks (hash, condemned_ns) VALUES (?, ?)"
        " ON CONFLICT (hash) DO NOTHING",
        [(h, tx.now_ns) for h in condemned],
    )
    return condemned


def release(tx: Transaction, hashes: Sequence[bytes]) -> None:
    """Lifts the fence once the collector has deleted the blocks."""
    for marks, chunk in rows.in_chunks(hashes):
        tx.conn.execute(f"DELETE FROM condemned_blocks WHERE hash IN ({marks})", chunk)


def condemned(conn: Sql, among: Sequence[bytes]) -> list[bytes]:
    """Condemned hashes: those of among that are, or all when among is empty."""
    if among:
        return sorted(edits.condemned_among(conn, set(among)))
    return [bytes(row[0]) for row in conn.execute("SELECT hash FROM condemned_blocks")]


def referenced(conn: Sql, after: bytes, limit: int) -> tuple[list[bytes], bool]:
    """A page of distinct referenced hashes greater than after, in order; more?"""
    found = conn.execute(
        "SELECT DISTINCT hash FROM revision_blocks WHERE hash > ? ORDER BY hash LIMIT ?",
        (after, limit + 1),
    ).fetchall()
    return [bytes(row[0]) for row in found[:limit]], len(found) > limit


def summary(conn: Sql) -> StorageSummary:
    logical = rows.fetch_one(
        conn,
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM nodes"
        " WHERE deleted_ns IS NULL AND kind = 'file'",
        (),
    )
    blocks = rows.fetch_one(
        conn,
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM"
        " (SELECT MAX(size) AS size FROM revision_blocks GROUP BY hash) AS per_hash",
        (),
    )
    return StorageSummary(
        logical_bytes=int(logical[0]),
        referenced_blocks=int(blocks[0]),
        referenced_bytes=int(blocks[1]),
    )
