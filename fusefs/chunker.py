"""Content-defined chunking of file content into blocks (FastCDC + BLAKE3).

Cut points depend on the bytes around them, not on offsets, so inserting a
byte in the middle of a file changes only the block(s) around the insert and
every other block deduplicates against the previous revision. pyfastcdc is a
maintained Cython FastCDC-2020 implementation (~1.6 GB/s here).

Blocking and CPU-bound: call from a worker thread.
"""

from __future__ import annotations

from pathlib import Path

import blake3
import pyfastcdc

from fusefs.models import BlockRef

# pyfastcdc's real average is avg_size + min_size: 768 + 192 KiB ≈ 1 MiB.
AVG_SIZE = 768 * 1024
MIN_SIZE = 192 * 1024
MAX_SIZE = 4 * 1024 * 1024


def _chunker() -> pyfastcdc.FastCDC:
    # A FastCDC instance is not safe to share between threads: one per call.
    return pyfastcdc.FastCDC(AVG_SIZE, min_size=MIN_SIZE, max_size=MAX_SIZE)


def block_hash(data: bytes | memoryview) -> bytes:
    return blake3.blake3(data).digest()


def chunk_file(path: Path) -> list[BlockRef]:
    """The block list of a file's current content (empty for an empty file).

    Read as a stream (a few blocks' worth of buffer), not mapped whole as
    cut_file does: a 10 GiB file would count 10 GiB against the mount's memory.
    """
    with open(path, "rb", buffering=0) as f:
        return [
            BlockRef(block_hash(chunk.data), chunk.offset, chunk.length)
            for chunk in _chunker().cut_stream(f)
        ]


def chunk_bytes(data: bytes) -> list[BlockRef]:
    if not data:
        return []
    return [
        BlockRef(block_hash(chunk.data), chunk.offset, chunk.length)
        for chunk in _chunker().cut_buf(data)
    ]
