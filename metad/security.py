"""Revocations: what was taken back from whom, in the database and in memory.

A password change raises the user's token generation (older tokens are
refused) and refuses the block grants issued before it; disabling an account
refuses all of them; a share taken away refuses that user's earlier grants
(their devices simply ask metad again for the files they may still read).
The user_security table holds this; `RevocationBoard` holds the same in
memory, where metad's interceptor checks every call against it and from
where WatchRevocations streams it to blockd.

The SQL functions run on a connection's thread (inside a transaction for the
writes); the board lives on the event loop. When other metad share the
database (PostgreSQL), `follow_database` brings their revocations to this
board within FOLLOW_S: a disabled account is refused by every replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from metad.models import User
from metad.sql import Sql
from metad.transaction import Transaction
from protos import auth

log = logging.getLogger(__name__)

# How often a replica reads the revocations other replicas may have made.
FOLLOW_S = 0.5


def revoke(tx: Transaction, user_id: int, *, tokens: bool) -> None:
    """Refuses the user's grants issued until now, and with tokens their tokens too."""
    now_ms = tx.now_ns // 1_000_000
    tx.conn.execute(
        "INSERT INTO user_security (user_id, token_generation, grants_not_before_ms)"
        " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " token_generation = user_security.token_generation + excluded.token_generation,"
        " grants_not_before_ms = CASE"
        "  WHEN user_security.grants_not_before_ms > excluded.grants_not_before_ms"
        "  THEN user_security.grants_not_before_ms ELSE excluded.grants_not_before_ms END",
        (user_id, 1 if tokens else 0, now_ms),
    )


def set_disabled(tx: Transaction, user_id: int, disabled: bool) -> None:
    if disabled:
        revoke(tx, user_id, tokens=True)
    tx.conn.execute(
        "INSERT INTO user_security (user_id, disabled_ns) VALUES (?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET disabled_ns = excluded.disabled_ns",
        (user_id, tx.now_ns if disabled else None),
    )


def revocations(conn: Sql) -> list[auth.UserRevocation]:
    return [
        auth.UserRevocation(row[0], row[1], row[2], row[3] is not None)
        for row in conn.execute(
            "SELECT user_id, token_generation, grants_not_before_ms, disabled_ns"
            " FROM user_security ORDER BY user_id"
        )
    ]


class RevocationBoard:
    """The revocations metad enforces, and their followers (blockd's WatchRevocations)."""

    def __init__(self) -> None:
        self.revocations = auth.Revocations()
        self._changed = asyncio.Event()
        self._closed = False

    def publish(self, users: list[auth.UserRevocation]) -> None:
        """The whole new state (after a write that changed it, or at start)."""
        self.revocations.replace(users)
        self._announce()

    def revoke(self, user: User) -> None:
        """The user's tokens and grants until now, at once: before any other call runs.

        From what the write returned, with no await in between; publish() with
        the database's state follows.
        """
        self.revocations.update(
            auth.UserRevocation(
                user.id, user.token_generation, time.time_ns() // 1_000_000, user.disabled
            )
        )
        self._announce()

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        """Ends every follow() (metad is stopping)."""
        self._closed = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[list[auth.UserRevocation]]:
        """The state now, then again after every change, until close()."""
        while not self._closed:
            changed = self._changed
            yield self.revocations.all()
            await changed.wait()


async def follow_database(
    read: Callable[[], Awaitable[list[auth.UserRevocation]]], board: RevocationBoard
) -> None:
    """Publishes the database's revocations on the board whenever they change, until cancelled.

    For a database other metad write too: their revocations (a password
    changed, an account disabled through another replica) reach this one's
    calls and its blockd followers within FOLLOW_S.
    """
    known: list[auth.UserRevocation] | None = None
    failing = False
    while True:
        try:
            now = await read()
        except Exception as exc:  # the database is away: the next round tries again
            if not failing:
                log.warning("cannot read the revocations of other replicas: %s", exc)
            failing = True
        else:
            if known is not None and now != known:
                board.publish(now)
            known, failing = now, False
        await asyncio.sleep(FOLLOW_S)
