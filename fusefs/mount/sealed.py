"""Reading a commit's sealed content, wherever the journal keeps it.

A small file's content sits in its journal row (bytes: one durable write
at close); a larger one in a file of the journal's folder (a Path). The
synchronizer cuts it into blocks, uploads the blocks blockd lacks and keeps
them in the block cache, the same way for both.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from fusefs.cache import BlockCache
from fusefs.chunker import chunk_bytes, chunk_file
from fusefs.models import BlockRef

Sealed = Path | bytes


def blocks_of(content: Sealed) -> list[BlockRef]:
    return chunk_bytes(content) if isinstance(content, bytes) else chunk_file(content)


def read_blocks(parts: Iterable[tuple[Sealed, BlockRef]]) -> Iterator[tuple[bytes, bytes]]:
    """(hash, bytes) of each block, read from the content it was cut from."""
    for content, ref in parts:
        if isinstance(content, bytes):
            yield ref.hash, content[ref.offset : ref.end]
        else:
            with open(content, "rb") as f:
                yield ref.hash, os.pread(f.fileno(), ref.size, ref.offset)


def keep_in_cache(cache: BlockCache, content: Sealed, blocks: list[BlockRef]) -> None:
    """The blocks of content just committed go to the block cache: read back offline."""
    if isinstance(content, bytes):
        cache.keep(read_blocks((content, ref) for ref in blocks))
    else:
        cache.keep_from_file(content, ((ref.hash, ref.offset, ref.size) for ref in blocks))
