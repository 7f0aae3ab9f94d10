"""Extended attributes of nodes, and the copy each revision keeps of them.

Names are namespaced as on Linux: user., trusted., security., and the POSIX
ACLs stored as system.posix_acl_access / system.posix_acl_default (kept, not
enforced: the kernel checks modes). A value is at most 64 KiB and a node's
attributes together at most 256 KiB. Every revision a commit makes keeps the
attributes the file had then, so a restore brings them back.

Runs on a connection's thread (the writes inside the change's transaction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metad.errors import (
    AlreadyExists,
    InvalidArgument,
    NoAttribute,
    NoRoom,
    NotSupported,
    TooLarge,
)
from metad.sql import Sql
from protos import xattr_limits as limits

if TYPE_CHECKING:  # transaction.py calls in here (restores)
    from metad.transaction import Transaction


# How a set may go (Linux's XATTR_CREATE and XATTR_REPLACE).
EITHER, CREATE, REPLACE = 0, 1, 2


def check_name(name: str) -> None:
    if not limits.well_formed(name):
        raise InvalidArgument(f"an attribute name has 1 to {limits.MAX_NAME_BYTES} bytes")
    if not limits.supported(name):
        raise NotSupported(
            f"attribute {name[:64]!r}: names start with user., trusted. or security.,"
            " or are the POSIX ACLs"
        )


def all_of(conn: Sql, node_id: int) -> dict[str, bytes]:
    return {
        row[0]: bytes(row[1])
        for row in conn.execute(
            "SELECT name, value FROM xattrs WHERE node_id = ? ORDER BY name", (node_id,)
        )
    }


def put(tx: Transaction, node_id: int, name: str, value: bytes, how: int = EITHER) -> None:
    check_name(name)
    if len(value) > limits.MAX_VALUE_BYTES:
        raise TooLarge(
            f"an attribute value is at most {limits.MAX_VALUE_BYTES} bytes, not {len(value)}"
        )
    present = all_of(tx.conn, node_id)
    if how == CREATE and name in present:
        raise AlreadyExists(f"attribute {name!r} exists")
    if how == REPLACE and name not in present:
        raise NoAttribute(f"no attribute {name!r}")
    if limits.total_bytes({**present, name: value}) > limits.MAX_TOTAL_BYTES:
        raise NoRoom(f"a node's attributes are at most {limits.MAX_TOTAL_BYTES} bytes together")
    tx.conn.execute(
        "INSERT INTO xattrs (node_id, name, value) VALUES (?, ?, ?)"
        " ON CONFLICT (node_id, name) DO UPDATE SET value = excluded.value",
        (node_id, name, value),
    )


def remove(tx: Transaction, node_id: int, name: str) -> None:
    check_name(name)
    gone = tx.conn.execute(
        "DELETE FROM xattrs WHERE node_id = ? AND name = ?", (node_id, name)
    ).rowcount
    if not gone:
        raise NoAttribute(f"no attribute {name!r}")


def keep_with_revision(tx: Transaction, node_id: int, number: int) -> None:
    """The file's attributes now, kept with its revision number."""
    tx.conn.execute(
        "INSERT INTO revision_xattrs (node_id, revision, name, value)"
        " SELECT node_id, ?, name, value FROM xattrs WHERE node_id = ?",
        (number, node_id),
    )


def take_from_revision(tx: Transaction, node_id: int, source_id: int, source_number: int) -> None:
    """node's attributes become those a revision (of it or of another file) kept."""
    tx.conn.execute("DELETE FROM xattrs WHERE node_id = ?", (node_id,))
    tx.conn.execute(
        "INSERT INTO xattrs (node_id, name, value)"
        " SELECT ?, name, value FROM revision_xattrs WHERE node_id = ? AND revision = ?",
        (node_id, source_id, source_number),
    )


def take_from_node(tx: Transaction, node_id: int, source_id: int) -> None:
    """node's attributes become another node's (a save: the saved file's are the file's)."""
    if node_id == source_id:
        return
    tx.conn.execute("DELETE FROM xattrs WHERE node_id = ?", (node_id,))
    tx.conn.execute(
        "INSERT INTO xattrs (node_id, name, value) SELECT ?, name, value FROM xattrs"
        " WHERE node_id = ?",
        (node_id, source_id),
    )


def forget_revisions(tx: Transaction, where: str, params: tuple[object, ...]) -> None:
    """Drops the attributes kept with the revisions `where` (SQL over revision_xattrs) names."""
    tx.conn.execute(f"DELETE FROM revision_xattrs WHERE {where}", params)
