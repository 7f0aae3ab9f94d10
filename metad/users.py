"""Users: their rows, their drives' roots, and the changes to an account.

Owns the users table's SQL: inserting a user with the root directory of their
drive, finding one by id or name, passwords (with the revocation a change
brings), quotas and the disabled flag. Runs on a connection's own thread,
inside the write's transaction for changes.

Must not: hash or check passwords (accounts.py does, off the event loop), or
know gRPC.
"""

from __future__ import annotations

from metad import rows, rules, security
from metad.errors import AlreadyExists, NotFound
from metad.models import NodeKind, User
from metad.sql import Sql
from metad.transaction import Transaction

FIRST_USER_ID = 1
FIRST_USER_NAME = "owner"
ROOT_MODE = 0o755


def get(conn: Sql, user_id: int) -> User:
    row = rows.fetch_one(conn, f"SELECT {rows.USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
    if row is None:
        raise NotFound(f"no user {user_id}")
    return rows.user(row)


def _insert(
    tx: Transaction,
    name: str,
    password_hash: str | None,
    quota_bytes: int,
    admin: bool,
    user_id: int | None = None,
) -> int:
    """Inserts a user and the root directory of their drive; returns the user's id."""
    values = (name, password_hash, quota_bytes, int(admin), tx.now_ns)
    if user_id is None:
        user_id = rows.fetch_one(
            tx.conn,
            "INSERT INTO users (name, password_hash, quota_bytes, admin, created_ns)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            values,
        )[0]
    else:
        tx.conn.execute(
            "INSERT INTO users (id, name, password_hash, quota_bytes, admin, created_ns)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, *values),
        )
        tx.conn.move_id_counter("users", user_id)
    root_id = rows.fetch_one(
        tx.conn,
        "INSERT INTO nodes (owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns)"
        " VALUES (?, NULL, '', ?, ?, ?, ?) RETURNING id",
        (user_id, NodeKind.DIRECTORY.value, ROOT_MODE, tx.now_ns, tx.now_ns),
    )[0]
    tx.conn.execute("UPDATE users SET root_node_id = ? WHERE id = ?", (root_id, user_id))
    return int(user_id)


def ensure_first(tx: Transaction, name: str, quota_bytes: int) -> None:
    """First start: user 1, an administrator without a password, and its root directory."""
    if rows.fetch_one(tx.conn, "SELECT 1 FROM users LIMIT 1", ()) is None:
        _insert(tx, name, None, quota_bytes, admin=True, user_id=FIRST_USER_ID)


def create(tx: Transaction, name: str, password_hash: str, quota_bytes: int, admin: bool) -> User:
    """A new user with an empty drive. Raises AlreadyExists if the name is taken."""
    rules.check_user_name(name)
    if rows.fetch_one(tx.conn, "SELECT 1 FROM users WHERE name = ?", (name,)) is not None:
        raise AlreadyExists(f"a user named {name!r} exists")
    return get(tx.conn, _insert(tx, name, password_hash, quota_bytes, admin))


def find(conn: Sql, name: str) -> tuple[User, str | None] | None:
    """The user of that name and their stored password hash, or None."""
    row = rows.fetch_one(
        conn, f"SELECT {rows.USER_COLUMNS}, password_hash FROM users WHERE name = ?", (name,)
    )
    return None if row is None else (rows.user(row), row["password_hash"])


def every(conn: Sql) -> list[User]:
    found = conn.execute(f"SELECT {rows.USER_COLUMNS} FROM users ORDER BY id").fetchall()
    return [rows.user(row) for row in found]


def set_password(tx: Transaction, user_id: int, password_hash: str) -> User:
    """A new password; every token and grant the user holds stops working."""
    tx.conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    security.revoke(tx, user_id, tokens=True)
    return get(tx.conn, user_id)


def set_disabled(tx: Transaction, user_id: int, disabled: bool) -> User:
    """Disables (every token and grant refused, no sign-in) or enables an account."""
    get(tx.conn, user_id)
    security.set_disabled(tx, user_id, disabled)
    return get(tx.conn, user_id)


def set_quota(tx: Transaction, user_id: int, quota_bytes: int) -> User:
    tx.conn.execute("UPDATE users SET quota_bytes = ? WHERE id = ?", (quota_bytes, user_id))
    return get(tx.conn, user_id)


class Names:
    """User id → name for one read, each looked up once."""

    def __init__(self, conn: Sql) -> None:
        self._conn = conn
        self._names: dict[int, str] = {}

    def of(self, user_id: int | None) -> str:
        if not user_id:
            return ""
        if user_id not in self._names:
            row = rows.fetch_one(self._conn, "SELECT name FROM users WHERE id = ?", (user_id,))
            self._names[user_id] = "" if row is None else row[0]
        return self._names[user_id]
