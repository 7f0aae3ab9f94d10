"""Reading a commit's sealed content, wherever the journal keeps it.

A small file's content sits in its journal row (bytes: one durable write
at close); a larger one in a file of the journal's folder (a Path). The
synchronizer cuts it into blocks, uploads the blocks blockd lacks and keeps
them in the block cache, the same way for both.

Blocking: call from a worker thread.
"""

from __future__ import annotations

import errno
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


def keep_all_in_cache(
    cache: BlockCache, contents: list[tuple[Sealed, list[BlockRef]]], scratch: Path
) -> None:
    """keep_in_cache of a batch. The small contents (bytes) are written one after the
    other into one new file, kept as one pack of the cache (keep_from_file): a file
    per batch rather than one per block (an untar's batch is hundreds of small files,
    and on ext4 a new inode costs more than a MiB of copying). scratch: a path on the
    cache's file system for that file, gone when this returns."""
    small: list[tuple[bytes, list[BlockRef]]] = []
    for content, blocks in contents:
        if isinstance(content, bytes):
            small.append((content, blocks))
        else:
            keep_in_cache(cache, content, blocks)
    if len(small) < 2:
        for content, blocks in small:
            keep_in_cache(cache, content, blocks)
        return
    entries: list[tuple[bytes, int, int]] = []
    at = 0
    try:
        with open(scratch, "xb") as pack:
            for content, blocks in small:
                pack.write(content)
                entries += [(ref.hash, at + ref.offset, ref.size) for ref in blocks]
                at += len(content)
        cache.keep_from_file(scratch, entries)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # The local disk is full: they are read from blockd when wanted (the cache's
        # own copies give way to what programs write anyway).
    finally:
        scratch.unlink(missing_ok=True)
