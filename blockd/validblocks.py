"""A block as uploaded, what makes it valid, and its BLAKE3-256 hash.

Owns the limits a block must keep (a well-formed hash, 1 to MAX_BLOCK_BYTES of
data, data that hashes to it) and where hashing runs: on the event loop for a
small block, in a worker thread (all cores) for a large one.

Must not: store or read blocks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import blake3

from blockd.storeerrors import InvalidBlock, check_hash

MAX_BLOCK_BYTES = 16 * 1024 * 1024
# Below this, hashing (~20 µs) costs less than a hop to a worker thread.
INLINE_HASH_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    hash: bytes  # BLAKE3-256 of data
    data: bytes | memoryview  # uploaded: a view of the request it came in


async def block_hash(data: bytes) -> bytes:
    """BLAKE3-256 of data, computed off the event loop unless data is small."""
    if len(data) < INLINE_HASH_BYTES:
        return blake3.blake3(data).digest()
    return await asyncio.to_thread(_hash_large, data)


def _hash_large(data: bytes) -> bytes:
    return blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest()


def hashed(key: str, data: bytes | memoryview) -> tuple[bytes, bytes]:
    """Thread-side, for get_many_then: an object's bytes and their BLAKE3-256."""
    return bytes(data), blake3.blake3(data).digest()


def check_shape(block: Block) -> None:
    """Raises InvalidBlock for a malformed hash, or data empty or too large."""
    check_hash(block.hash)
    if not block.data:
        raise InvalidBlock(f"block {block.hash.hex()} is empty (an empty file has no blocks)")
    if len(block.data) > MAX_BLOCK_BYTES:
        raise InvalidBlock(
            f"block {block.hash.hex()} is {len(block.data)} bytes; the limit is {MAX_BLOCK_BYTES}"
        )


def check_matches(block: Block, actual: bytes) -> None:
    """Raises InvalidBlock unless block's data hash (to actual) to its hash."""
    if actual != block.hash:
        raise InvalidBlock(
            f"hash mismatch: block {block.hash.hex()} carries data whose hash is {actual.hex()}"
        )
