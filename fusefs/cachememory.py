"""The block cache's memory: recently used blocks, fetched batches held whole.

Owns the in-memory LRU of the block cache (fusefs/cache.py): which verified
blocks stay in memory within a byte budget, least recently used going first.
Blocks fetched together arrive side by side in one buffer (a Batch, gathered
in file order), and memory keeps views of it: a read across two of them is one
view of the buffer (span), not a join. Such a buffer lives while any of its
blocks is kept, so a batch's blocks age together: a block used moves its whole
batch to the newest end. Aged one by one, a reader coming back to one block of
each of many batches would keep all their buffers, up to a batch's size for
each block counted.

Must not: verify, fetch or touch the disk (the cache does, and hands in only
verified blocks); be used from more than one thread (the cache's trio thread).
"""

from __future__ import annotations

from collections import OrderedDict

# A block's bytes: those read or made here, or a view of the buffer they arrived in.
Data = bytes | memoryview
# Blocks fetched together, side by side in one page-aligned buffer (read-only view):
# the buffer and each block's (hash, offset in it, size), in the order fetched.
Batch = tuple[memoryview, list[tuple[bytes, int, int]]]


class MemoryBlocks:
    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._blocks: OrderedDict[bytes, Data] = OrderedDict()
        self._bytes = 0  # the blocks' own sizes (see held_bytes for the buffers')
        # Blocks held in a batch's buffer: (that buffer, offset in it, the batch's hashes).
        self._in_batch: dict[bytes, tuple[memoryview, int, list[bytes]]] = {}

    def __contains__(self, h: bytes) -> bool:
        return h in self._blocks

    def get(self, h: bytes) -> Data | None:
        """Block h if kept (it and its batch become the newest), else None."""
        data = self._blocks.get(h)
        if data is not None:
            self._touch(h)
        return data

    def peek(self, h: bytes) -> Data | None:
        """Block h if kept, its age unchanged."""
        return self._blocks.get(h)

    def span(self, spans: list[tuple[bytes, int, int]]) -> memoryview | None:
        """The parts (block, start, length) of consecutive blocks of a file as one view,
        when one batch holds them side by side; else None."""
        held = self._in_batch.get(spans[0][0])
        if held is None:
            return None
        buf, at, _ = held
        start = end = at + spans[0][1]
        for h, lo, n in spans:
            held = self._in_batch.get(h)
            if held is None or held[0] is not buf or held[1] + lo != end:
                return None
            end += n
        self._touch(spans[0][0])
        return buf[start:end]

    def add(self, h: bytes, data: Data) -> None:
        """Keeps block h (verified) as the newest; a block kept already keeps its copy."""
        if h in self._blocks:
            return
        self._blocks[h] = data
        self._bytes += len(data)
        while self._bytes > self._capacity and len(self._blocks) > 1:
            gone, old = self._blocks.popitem(last=False)
            self._in_batch.pop(gone, None)
            self._bytes -= len(old)

    def add_batch(self, batch: Batch, blocks: dict[bytes, Data]) -> None:
        """Keeps the blocks of a batch (verified; blocks: each one's view of its buffer)."""
        buf, entries = batch
        hashes = [h for h, _, _ in entries]
        for h in hashes:
            self.add(h, blocks[h])
        for h, at, _ in entries:
            if self._blocks.get(h) is blocks[h]:  # (not a copy kept before, nor evicted)
                self._in_batch[h] = (buf, at, hashes)

    @property
    def held_bytes(self) -> int:
        """What memory holds: the buffer of a batch any block of which it keeps counted whole."""
        held = 0
        buffers: dict[int, int] = {}
        for h, data in self._blocks.items():
            batch = self._in_batch.get(h)
            if batch is None:
                held += len(data)
            else:
                buffers[id(batch[0])] = len(batch[0])
        return held + sum(buffers.values())

    def _touch(self, h: bytes) -> None:
        """Block h was used: it, and the rest of its batch, are the newest now."""
        held = self._in_batch.get(h)
        if held is None:
            self._blocks.move_to_end(h)
            return
        buf, _, hashes = held
        for sibling in hashes:
            if (other := self._in_batch.get(sibling)) is not None and other[0] is buf:
                self._blocks.move_to_end(sibling)
