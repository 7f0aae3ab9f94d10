"""The block store's domain errors, and the one mapping of backend errors onto them.

Owns what a caller of the store (the servicer, maintenance) can be told went
wrong, and which backend error means which: a copy the backend proved damaged
(BlockDamaged) is quarantined by the store; one merely unreadable here is not.

Must not: know gRPC (the servicer maps these errors to status codes) or the store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from blockd.backends.base import BackendFull, BackendUnavailable, ObjectCorrupt, ObjectNotFound

log = logging.getLogger("blockd.store")  # the store's log, as before this module was split out

HASH_BYTES = 32


class StoreError(Exception):
    """Base of the store's domain errors; the message is for the client."""


class InvalidBlock(StoreError):
    """A malformed hash, an empty or too large block, or data not matching its hash."""


class BlockNotFound(StoreError):
    """The store does not hold the block."""


class BlockCorrupt(StoreError):
    """The store holds the block but cannot return its exact bytes."""


class StoreUnavailable(StoreError):
    """The backend is down; retrying later may succeed."""


class StoreFull(StoreError):
    """The backend has no room for a new block."""


def check_stored(key: str, digest: bytes, actual: bytes) -> None:
    """Raises BlockDamaged if a stored block's data (hashing to actual) is not its own."""
    if actual != digest:
        log.error("stored block %s is corrupt: its data hashes to %s", key, actual.hex())
        raise BlockDamaged(f"stored block {key} is corrupt")


def check_hash(digest: bytes) -> None:
    if len(digest) != HASH_BYTES:
        raise InvalidBlock(
            f"a block hash is {HASH_BYTES} bytes (BLAKE3-256), got {len(digest)}: "
            f"{digest[:64].hex()}"
        )


class BlockDamaged(BlockCorrupt):
    """The stored copy is damaged (not merely unreadable here): it is to be quarantined."""


@contextlib.contextmanager
def backend_errors(key: str | None) -> Iterator[None]:
    """Backend error → store error, for an operation on the block under key (or many)."""
    try:
        yield
    except ObjectNotFound:
        raise BlockNotFound(f"block {key} not found") from None
    except ObjectCorrupt as exc:
        log.error("stored block %s is unreadable: %s", key, exc)
        kind = BlockDamaged if exc.damaged else BlockCorrupt
        raise kind(f"stored block {key} is unreadable") from exc
    except BackendFull as exc:
        log.warning("backend full: %s", exc)
        raise StoreFull("no room to store blocks") from exc
    except BackendUnavailable as exc:
        log.warning("backend unavailable: %s", exc)
        raise StoreUnavailable(f"block storage unavailable: {exc}") from exc
