"""Hot blocks: a bounded in-memory LRU of recently read or written blocks.

Owns: which verified plaintext blocks stay in memory (least recently used
goes first once the byte budget is spent), so that a block many devices
download at once, or one just uploaded and fetched by the other devices of
its owner, costs one backend read and one decryption, not one per request.

Must not: hold anything that was not verified against its hash (the store
adds only verified data); hold a block larger than the whole budget; lock
(it lives on the store's event loop); copy data (it keeps the bytes objects).
"""

from __future__ import annotations

from collections import OrderedDict


class HotBlocks:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self._blocks: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._blocks  # (not counted as a hit or a miss)

    def get(self, digest: bytes) -> bytes | None:
        data = self._blocks.get(digest)
        if data is None:
            self.misses += 1
            return None
        self._blocks.move_to_end(digest)
        self.hits += 1
        return data

    def add(self, digest: bytes, data: bytes) -> None:
        if digest in self._blocks:
            self._blocks.move_to_end(digest)
            return
        if len(data) > self.capacity_bytes:
            return
        self._blocks[digest] = data
        self.size_bytes += len(data)
        while self.size_bytes > self.capacity_bytes:
            _, evicted = self._blocks.popitem(last=False)
            self.size_bytes -= len(evicted)

    def discard(self, digest: bytes) -> None:
        """Forgets a block (it was deleted from the store)."""
        data = self._blocks.pop(digest, None)
        if data is not None:
            self.size_bytes -= len(data)
