"""Which blocks the store holds, in memory, so a write need not ask the backend.

Owns: a compact set of the blocks this blockd knows are on its backend
(listed at open, written or removed since), by the first 8 bytes of each
hash: 8 bytes a block in a sorted array for those listed at open, a Python
set for the changes since (folded into the array once they grow past an
eighth of it). The store keeps its counters (object count, stored bytes) by
it: a write of a block it holds already is not counted again, without a HEAD
before every PUT (on S3 a request of its own, about 1 s of blockd's CPU per
GiB written).

What it cannot know: blocks another blockd on the same bucket wrote or
removed (replicas): each replica's counters are its own view, as they were
when every write asked the backend. Two hashes sharing their first 8 bytes
(about 1 in 10^12 for a billion blocks) would make one look held, and its
write uncounted: a counter off by one, never data lost (the write happens).

Must not: decide whether a block is written (every upload is written; see
store.py), touch the backend, or block the event loop for long (each call is
O(log n); folding the changes in is one pass over the array, amortized over
the n/8 changes that trigger it).
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable


def _prefix(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big")


class HeldBlocks:
    """A set of block hashes (by their first 8 bytes); add and discard say if it changed."""

    def __init__(self, digests: Iterable[bytes] = (), *, fold_min: int = 4096) -> None:
        """fold_min: changes kept in sets at least, whatever the array (fewer only in tests)."""
        self._fold_min = fold_min
        self._base = array("Q")  # sorted
        self._added: set[int] = set()  # held, not in _base
        self._removed: set[int] = set()  # in _base, no longer held
        for digest in sorted(digests):
            self.add_listed(digest)

    def __len__(self) -> int:
        return len(self._base) - len(self._removed) + len(self._added)

    def __contains__(self, digest: bytes) -> bool:
        p = _prefix(digest)
        return p in self._added or (p not in self._removed and self._in_base(p))

    def add_listed(self, digest: bytes) -> None:
        """Records a block a listing found: 8 bytes, appended, when it comes in key order.

        Listings do come in key order, and a hash's hex key sorts as its bytes,
        so the listing at open fills the sorted array without ever holding
        more than it; a block out of order is added as a change.
        """
        p = _prefix(digest)
        if (not self._base or p > self._base[-1]) and p not in self._added:
            self._base.append(p)
        else:
            self.add(digest)

    def add(self, digest: bytes) -> bool:
        """Records the block as held; True if it was not held before."""
        p = _prefix(digest)
        if p in self._added:
            return False
        if self._in_base(p):
            if p not in self._removed:
                return False
            self._removed.discard(p)
            return True
        self._added.add(p)
        self._maybe_fold()
        return True

    def discard(self, digest: bytes) -> bool:
        """Records the block as gone; True if it was held before."""
        p = _prefix(digest)
        if p in self._added:
            self._added.discard(p)
            return True
        if p in self._removed or not self._in_base(p):
            return False
        self._removed.add(p)
        self._maybe_fold()
        return True

    def _in_base(self, p: int) -> bool:
        i = bisect.bisect_left(self._base, p)
        return i < len(self._base) and self._base[i] == p

    def _maybe_fold(self) -> None:
        if len(self._added) + len(self._removed) > max(self._fold_min, len(self._base) // 8):
            # Merged, not sorted whole: never more than the two arrays in memory.
            kept = (p for p in self._base if p not in self._removed)
            self._base = array("Q", heapq.merge(kept, sorted(self._added)))
            self._added.clear()
            self._removed.clear()
