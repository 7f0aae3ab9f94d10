"""Raw I/O on the block cache's files: the pack log's lines, pack writes, holes, copies.

Owns the byte-level formats and system calls the cache (fusefs/cache.py) runs
in its worker threads: a pack log line ("PACK HASH OFFSET SIZE"), the
page-aligned buffer a fetched batch of blocks is gathered in (gather) and
written into a pack from (O_DIRECT where the file system allows), a punched
hole, a kernel copy between files; and the one reader of a cache directory
that needs no running cache (cached_copy, for `drive scrub --repair`).

Must not: know the cache's index, its locks or its eviction order.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
from pathlib import Path

from fusefs.chunker import block_hash
from protos.runtime import uninitialized_bytearray

log = logging.getLogger(__name__)

ALIGN = 4096  # of O_DIRECT writes: offsets, lengths and buffer addresses
O_DIRECT = getattr(os, "O_DIRECT", 0)
_IOV_MAX = 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE

# A block's bytes: bytes, or a view of the message they arrived in.
Data = bytes | memoryview

# The cache directory's layout (see fusefs/cache.py): packs, and the log of their blocks.
PACKS = "packs"
PACK_LOG = "packs.log"


def pack_entries(log_path: Path) -> list[tuple[str, bytes, int, int]]:
    """(pack, hash, offset, size) of every well-formed line of a pack log (none if absent)."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) != 4 or "/" in parts[0] or not parts[0].startswith("p-"):
            continue  # torn by a crash, or not ours
        try:
            digest, offset, size = bytes.fromhex(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if len(digest) == 32 and offset >= 0 and size > 0:
            entries.append((parts[0], digest, offset, size))
    return entries


def punch(pack: Path, offset: int, size: int) -> None:
    """Frees an evicted block's range of a pack, unless the journal still links the file
    (its bytes are the journal's then) or the file system cannot (the space waits for
    the pack to go)."""
    try:
        fd = os.open(pack, os.O_WRONLY)
    except OSError:
        return  # gone meanwhile
    try:
        if os.fstat(fd).st_nlink == 1 and _libc.fallocate(fd, _PUNCH_HOLE, offset, size):
            log.debug("no hole punched in %s: %s", pack, os.strerror(ctypes.get_errno()))
    finally:
        os.close(fd)


def write_all(fd: int, parts: list[Data], offset: int) -> None:
    """parts written one after the other at offset of fd: one pwritev mostly."""
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], offset)
        if n == 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]


class NotDirect(Exception):
    """The file system refused an aligned O_DIRECT write: write through the page cache."""


def aligned_buffer(size: int) -> memoryview:
    """A writable buffer of size bytes rounded up to whole 4 KiB pages, at a page-aligned
    address (as O_DIRECT needs): its first size bytes are the caller's to fill (left
    as malloc gave them), the rest zeros.

    A bytearray from malloc, not an mmap: the mount lets glibc keep freed megabytes in
    its heap (protos.runtime.reuse_freed_blocks), so a new buffer mostly reuses pages
    already faulted in, and it lives as long as any view of it (the memory LRU keeps
    views of fetched blocks in it). Not zero-filled first, as bytearray(n) would:
    that was 2 % of the mount's CPU on a cold read, for bytes overwritten at once.
    """
    padded = -(-size // ALIGN) * ALIGN
    raw = uninitialized_bytearray(padded + ALIGN)
    skip = -ctypes.addressof(ctypes.c_char.from_buffer(raw)) % ALIGN
    view = memoryview(raw)[skip : skip + padded]
    view[size:] = bytes(padded - size)
    return view


def write_direct(fd: int, view: memoryview, offset: int) -> None:
    """An aligned_buffer written whole at offset (aligned) of fd, opened with O_DIRECT."""
    done = 0
    while done < len(view):
        try:
            n = os.pwritev(fd, [view[done:]], offset + done)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NotDirect from None
            raise
        if n <= 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        done += n


def log_line(h: bytes, pack: str, offset: int, size: int) -> str:
    return f"{pack} {h.hex()} {offset} {size}\n"


def copy_range(source: int, target: int, offset: int, size: int) -> None:
    """size bytes of source from offset to the start of target, copied by the kernel."""
    done = 0
    while done < size:
        n = os.copy_file_range(source, target, size - done, offset + done, done)
        if n == 0:
            raise OSError(errno.EIO, "source file shorter than its blocks")
        done += n


def gather(blocks: list[tuple[bytes, Data]]) -> tuple[memoryview, list[tuple[bytes, int, int]]]:
    """Fetched blocks copied side by side, in the order given, into one page-aligned
    buffer: the one copy they get in the mount. The cache writes the buffer as it is
    (O_DIRECT), and memory keeps views of it, so a read across two of its blocks is a
    view too (read_span). A block given twice is kept once."""
    unique = dict(blocks)
    entries: list[tuple[bytes, int, int]] = []
    at = 0
    for h, data in unique.items():
        entries.append((h, at, len(data)))
        at += len(data)
    buf = aligned_buffer(at)
    for h, at, n in entries:
        buf[at : at + n] = unique[h]
    return buf.toreadonly(), entries


def cached_copy(directory: Path, h: bytes) -> bytes | None:
    """A verified copy of block h in the cache directory of a mount (running or not), or None.

    For `drive scrub --repair`, which heals storage from the caches on this machine.
    """
    hexh = h.hex()
    with contextlib.suppress(OSError):
        data = (directory / "blocks" / hexh[:2] / hexh).read_bytes()
        if block_hash(data) == h:
            return data
    for name, digest, offset, size in pack_entries(directory / PACK_LOG):
        if digest == h:
            with contextlib.suppress(OSError), open(directory / PACKS / name, "rb") as f:
                data = os.pread(f.fileno(), size, offset)
                if block_hash(data) == h:
                    return data
    return None
