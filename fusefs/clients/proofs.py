"""The proofs a client holds for blocks: grants from metad (to read), receipts from blockd
(to commit). Shared by one device's metadata and block clients; safe from many threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from fusefs import errors


@dataclass(frozen=True, slots=True)
class Grant:
    grant: bytes
    issued_ms: int
    expires_s: int


NO_GRANT = Grant(b"", 0, 0)


class GrantBook:
    """The proofs this client holds for blocks: grants (to read) and receipts (to commit).

    Grants arrive with revisions (MetadataClient.get_revision). A block whose
    grant is missing or about to expire is re-granted by asking metad again
    for the revision it came with (refresh(node_id, number); 0 = the current
    one, for blocks just committed), so a past revision held open for hours
    keeps reading; a grant blockd refuses (revoked after an unshare) is
    refreshed the same way. Receipts arrive with uploads
    (BlockClient.upload) and go with the blocks of the next commit.
    """

    MAX_ENTRIES = 500_000
    MARGIN_S = 60

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # hash -> (grant, node_id, revision number it came with)
        self._book: OrderedDict[bytes, tuple[Grant, int, int]] = OrderedDict()
        # hash -> (size, receipt): a hash has one size, its content's
        self._receipts: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()
        self.refresh: Callable[[int, int], object] | None = None

    def add(
        self, node_id: int, hashes: Iterable[bytes], grants: Iterable[Grant], number: int = 0
    ) -> None:
        with self._lock:
            for digest, grant in zip(hashes, grants, strict=True):
                self._book[digest] = (grant, node_id, number)
                self._book.move_to_end(digest)
            while len(self._book) > self.MAX_ENTRIES:
                self._book.popitem(last=False)

    def add_receipts(self, receipts: Iterable[tuple[bytes, int, bytes]]) -> None:
        """(hash, size, receipt) of blocks this client uploaded."""
        with self._lock:
            for digest, size, mac in receipts:
                self._receipts[digest] = (size, mac)
                self._receipts.move_to_end(digest)
            while len(self._receipts) > self.MAX_ENTRIES:
                self._receipts.popitem(last=False)

    def receipt(self, digest: bytes, size: int) -> bytes:
        """The receipt for this block, or b"" (then a readable revision must hold it)."""
        with self._lock:
            held = self._receipts.get(digest)
        return held[1] if held is not None and held[0] == size else b""

    def receipts(self, hashes: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """Per hash, (size, receipt) of a receipt held for it, or (0, b"")."""
        with self._lock:
            return [self._receipts.get(h, (0, b"")) for h in hashes]

    def expect(self, node_id: int, hashes: Iterable[bytes]) -> None:
        """Blocks of node_id (just committed) that have no grant yet."""
        with self._lock:
            for digest in hashes:
                if digest not in self._book:
                    self._book[digest] = (NO_GRANT, node_id, 0)

    def known(self, hashes: Sequence[bytes]) -> list[Grant]:
        """Per hash, its grant, or NO_GRANT."""
        with self._lock:
            return [self._book.get(h, (NO_GRANT, 0, 0))[0] for h in hashes]

    def for_download(self, hashes: Sequence[bytes], renew: bool = False) -> list[Grant]:
        """Valid grants for hashes, refreshing the stale ones (all, with renew) from metad first."""
        soon = time.time() + self.MARGIN_S
        with self._lock:
            stale = {
                entry[1:]
                for h in hashes
                if (entry := self._book.get(h)) is not None
                and entry[1]
                and (renew or entry[0].expires_s < soon)
            }
        if stale and self.refresh is not None:
            for node_id, number in stale:
                with contextlib.suppress(errors.DriveError):
                    self.refresh(node_id, number)
        return self.known(hashes)
