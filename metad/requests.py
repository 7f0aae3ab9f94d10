"""Retried changes are applied once: the request log.

A client gives every change a request id and sends the same id with each
retry. The servicer names the call's id (`expect`) before it calls the store;
the store's next write then runs `once`: inside the write's transaction it
looks the id up, and either returns the result recorded the first time (the
retry whose first reply was lost) or applies the change and records its
result, in the same transaction, so a change and its record commit together.
Results are the store's domain values, pickled (only metad writes them);
records are kept for a day.

Must not: know gRPC, or what any change does.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from metad import rows
from metad.errors import RequestIdReused
from metad.transaction import Transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEP_NS = 24 * 3600 * 10**9


@dataclass(frozen=True, slots=True)
class RequestKey:
    user_id: int
    request_id: str
    digest: bytes  # of the method and the whole request: the same id must mean the same change


_expected: contextvars.ContextVar[RequestKey | None] = contextvars.ContextVar(
    "metad_request", default=None
)


def digest_of(method: str, request: bytes) -> bytes:
    return hashlib.blake2b(method.encode() + b"\0" + request, digest_size=16).digest()


def expect(key: RequestKey | None) -> None:
    """The id of the change the current call is about to make (None: no id)."""
    _expected.set(key)


def take() -> RequestKey | None:
    """The id for the next write of this call, once: a second write is not the retried one."""
    key = _expected.get()
    if key is not None:
        _expected.set(None)
    return key


@dataclass(frozen=True)
class Once(Generic[T]):
    """body, applied only if its request id has not been applied before (see once).

    A value rather than a closure, so a batch's set-based writer (bulk.py)
    can see the change inside and record many ids at once (record_rows).
    """

    key: RequestKey
    body: Callable[[Transaction], T]

    def __call__(self, tx: Transaction) -> T:
        key = self.key
        row = rows.fetch_one(
            tx.conn,
            "SELECT request_digest, result FROM request_log WHERE user_id = ? AND request_id = ?",
            (key.user_id, key.request_id),
        )
        if row is not None:
            if row[0] != key.digest:
                raise RequestIdReused(f"request id {key.request_id!r} was used for another request")
            result: T = pickle.loads(row[1])
            log.info(
                "request %r of user %d was a retry: answered again", key.request_id, key.user_id
            )
            return result
        result = self.body(tx)
        tx.conn.execute(f"{RECORD} VALUES (?, ?, ?, ?, ?)", record_row(key, result, tx.now_ns))
        return result


RECORD = "INSERT INTO request_log (user_id, request_id, request_digest, result, created_ns)"


def record_row(key: RequestKey, result: object, now_ns: int) -> tuple[object, ...]:
    """The values of RECORD for a change applied now with this result."""
    return (key.user_id, key.request_id, key.digest, pickle.dumps(result), now_ns)


def once(key: RequestKey, body: Callable[[Transaction], T]) -> Callable[[Transaction], T]:
    """body, applied only if this request id has not been applied before."""
    return Once(key, body)


def purge(tx: Transaction, before_ns: int) -> int:
    """Forgets the records older than before_ns; returns how many."""
    return tx.conn.execute("DELETE FROM request_log WHERE created_ns < ?", (before_ns,)).rowcount
