"""Node ids reserved to a user, so their devices can name nodes before metad sees them.

A local-first mount makes files and folders offline and sends them later (as
a JuiceFS client takes inode numbers in chunks from its meta engine): it
reserves a range of ids first and creates each node with one of them, so the
id it showed programs stays the node's id for good. A range is taken from the
top of the nodes' id counter (Sql.id_counter), which then moves past it: ordinary
creates never land in a range, and no range is ever handed out twice. An id
makes one node at most: the node's row, never deleted, marks it used, so an
id is not reused even after its node is gone.

Runs on the writer's thread inside the change's transaction; holds the
reservation SQL and nothing else. Must not: know gRPC.
"""

from __future__ import annotations

from collections.abc import Callable

from metad import links
from metad.errors import NodeIdNotReserved, TooLarge
from metad.transaction import Transaction


def reserve(tx: Transaction, user_id: int, count: int) -> tuple[int, int]:
    """A fresh range of count node ids for user_id: (first, count). count is checked."""
    first = tx.conn.id_counter("nodes") + 1
    last = first + count - 1
    if last >= links.LINK_ENTRY_BASE:  # entry ids of further names start there
        raise TooLarge("the drive has no node ids left to reserve")
    tx.conn.move_id_counter("nodes", last)
    tx.conn.execute(
        "INSERT INTO node_id_reservations (first_id, last_id, user_id, created_ns)"
        " VALUES (?, ?, ?, ?)",
        (first, last, user_id, tx.now_ns),
    )
    return first, count


def claim(tx: Transaction, user_id: int, node_id: int) -> None:
    """Checks that node_id is reserved to user_id and makes no node yet.

    One refusal for every other case (outside any range, another user's
    range, already used), so a caller learns nothing about others' ids.
    """
    ask_claim(tx, user_id, node_id)()


def ask_claim(tx: Transaction, user_id: int, node_id: int) -> Callable[[], None]:
    """Sends claim's question ahead (Sql.ahead); the check it returns raises."""
    # One statement: no range below it (no row) is a refusal as well.
    found = tx.conn.ahead(
        "SELECT user_id, last_id, EXISTS (SELECT 1 FROM nodes WHERE id = ?) AS used"
        " FROM node_id_reservations WHERE first_id <= ? ORDER BY first_id DESC LIMIT 1",
        (node_id, node_id),
    )

    def check() -> None:
        reservation = found.fetchone()
        reserved = (
            reservation is not None and reservation[0] == user_id and node_id <= reservation[1]
        )
        if not reserved or reservation["used"]:
            raise NodeIdNotReserved(
                f"node id not reserved to you: {node_id} (reserve ids with ReserveNodeIds;"
                " each makes one node)"
            )

    return check
