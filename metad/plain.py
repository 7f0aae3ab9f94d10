"""The plain changes a batch may write set-based, and the SQL their set-based writers share.

Owns PlainCreate and PlainCommit (a change as its body, which the one-by-one
path runs, and its arguments, which bulk.py and bulk_edits.py read), and the
questions and writes both set-based writers ask and make: whether a request
id was applied, which nodes are live, whether growths stay within a quota,
multi-row INSERTs, and the journal rows with their nodes' stamps.

A question is sent ahead (Sql.ahead) and answered by the function it returns,
so a writer sends every question of a run before it reads any answer: on
PostgreSQL the run's checks cost one wait together, not one each.

Must not: decide what a change means (namespace.py and edits.py do), or
commit (the engine does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from metad import requests, rows
from metad.models import Actor, AttributeChange, BlockRef, Node, Ownership, Role
from metad.sql import Cursor, Sql
from metad.transaction import USED_BYTES, Transaction, Write

# Rows per multi-row INSERT (at most 15 values each: well under both engines' limits).
ROWS_PER_STATEMENT = 250


@dataclass(frozen=True)
class PlainCreate:
    """A CreateFile with a reserved id, as its change (body) and its arguments."""

    body: Write[Node]
    actor: Actor
    parent_id: int
    name: str
    mode: int
    mtime_ns: int
    owner: Ownership
    node_id: int

    def __call__(self, tx: Transaction) -> Node:
        return self.body(tx)


@dataclass(frozen=True)
class PlainCommit:
    """A CommitRevision (with the attributes it sets, if any), as its change (body) and
    its arguments."""

    body: Write[Node]
    actor: Actor
    node_id: int
    base_revision: int
    size: int
    mtime_ns: int
    blocks: tuple[BlockRef, ...]
    attributes: AttributeChange

    def __call__(self, tx: Transaction) -> Node:
        return self.body(tx)


def unwrapped(body: Write[Any]) -> tuple[Any, requests.RequestKey | None]:
    """The change inside a body applied once per request id, and that id's key."""
    if isinstance(body, requests.Once):
        return body.body, body.key
    return body, None


def chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [
        values[at : at + ROWS_PER_STATEMENT] for at in range(0, len(values), ROWS_PER_STATEMENT)
    ]


def marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def rows_of(chunk: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """A VALUES list of chunk's rows: "(?, ?), (?, ?)" and the values, flat."""
    row = f"({marks(chunk[0])})"
    return ", ".join([row] * len(chunk)), [value for each in chunk for value in each]


def ask_applied(conn: Sql, user_id: int, keys: list[requests.RequestKey]) -> Callable[[], bool]:
    """Whether any of the ids (user_id's) was applied before, or one comes twice or is
    someone else's (then the request log answers, one by one)."""
    ids = [key.request_id for key in keys]
    if not keys:
        return lambda: False
    if len(set(ids)) != len(ids) or any(key.user_id != user_id for key in keys):
        return lambda: True
    found = [
        conn.ahead(
            f"SELECT 1 FROM request_log WHERE user_id = ? AND request_id IN ({marks(chunk)})"
            " LIMIT 1",
            (user_id, *chunk),
        )
        for chunk in chunks(ids)
    ]
    return lambda: any(cursor.fetchall() for cursor in found)


def ask_own_live(conn: Sql, user_id: int, ids: Sequence[int]) -> Callable[[], dict[int, Node]]:
    """The live nodes among ids that user_id owns, by id, each with the role OWNER."""
    found = [
        conn.ahead(
            f"SELECT {rows.NODE_COLUMNS} FROM nodes WHERE id IN ({marks(chunk)})"
            " AND deleted_ns IS NULL",
            chunk,
        )
        for chunk in chunks(sorted(set(ids)))
    ]

    def answer() -> dict[int, Node]:
        nodes = (rows.node(row) for cursor in found for row in cursor.fetchall())
        return {
            node.id: replace(node, role=Role.OWNER) for node in nodes if node.owner_id == user_id
        }

    return answer


def ask_room(conn: Sql, user_id: int) -> Callable[[Sequence[int]], bool]:
    """Whether growths, made in turn, each pass the user's quota as check_quota would
    (a growth <= 0 is never refused)."""
    found = conn.ahead(
        f"SELECT quota_bytes, {USED_BYTES} AS used FROM users WHERE id = ?", (user_id,)
    )

    def answer(growths: Sequence[int]) -> bool:
        quota, used = found.fetchone()
        for growth in growths:
            if growth > 0 and quota and used + growth > quota:
                return False
            used += growth
        return True

    return answer


def insert_rows(conn: Sql, head: str, values: list[tuple[Any, ...]]) -> None:
    """head VALUES (...), (...): multi-row INSERTs of at most ROWS_PER_STATEMENT rows."""
    for chunk in chunks(values):
        listed, flat = rows_of(chunk)
        conn.execute(f"{head} VALUES {listed}", flat)


# A journal row: the values of changes' columns in _JOURNAL's order.
_JOURNAL = (
    "INSERT INTO changes (owner_id, kind, node_id, node_kind, parent_id, name,"
    " old_parent_id, old_name, revision, actor_id, device, time_ns, replaced_node_id)"
)


def journal(
    tx: Transaction, values: list[tuple[Any, ...]]
) -> Callable[[], dict[tuple[int, str], int]]:
    """Appends the journal rows (in order: their sequences are drawn in that order) and
    stamps each node with its newest; the answer: each row's sequence by (node, kind).

    Sent ahead: read the answer after the run's other statements are sent.
    """
    conn = tx.conn
    appended: list[Cursor] = []
    for chunk in chunks(values):
        listed, flat = rows_of(chunk)
        appended.append(
            conn.ahead(f"{_JOURNAL} VALUES {listed} RETURNING sequence, node_id, kind", flat)
        )
    ids = sorted({each[2] for each in values})
    for chunk in chunks(ids):
        conn.execute(
            "UPDATE nodes SET change_sequence = (SELECT MAX(sequence) FROM changes"
            f" WHERE changes.node_id = nodes.id) WHERE id IN ({marks(chunk)})",
            chunk,
        )
    tx.concerns.update(each[0] for each in values)

    def answer() -> dict[tuple[int, str], int]:
        sequences = {
            (node_id, kind): int(sequence)
            for cursor in appended
            for sequence, node_id, kind in cursor.fetchall()
        }
        tx.last_sequence = max(sequences.values())
        return sequences

    return answer
