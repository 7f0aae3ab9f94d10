"""Raw I/O on the block cache's files: the pack log's lines, pack writes, holes, copies.

Owns the byte-level formats and system calls the cache (fusefs/cache.py) runs
in its worker threads: a pack log line ("PACK HASH OFFSET SIZE"), a batch of
blocks written into a pack (O_DIRECT from reused page-aligned buffers where the
file system allows), a punched hole, a kernel copy between files.

Must not: know the cache's index, its locks or its eviction order.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ALIGN = 4096  # of O_DIRECT writes: offsets, lengths and buffer addresses
_BUFFERS_KEPT = 8  # aligned buffers kept for reuse (a new one costs a page fault a page)
# A buffer holds one fetch batch (8 blocks of about 1 MiB, up to 4 MiB each): made this
# large so that most batches fit the one they are given, up to twice that size if kept.
_BUFFER_BYTES = 12 * 1024 * 1024
_BUFFER_KEPT_BYTES = 24 * 1024 * 1024
O_DIRECT = getattr(os, "O_DIRECT", 0)
_IOV_MAX = 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE

# A block's bytes: bytes, or a view of the message they arrived in.
Data = bytes | memoryview


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


_IOV_MAX = 1024


class NotDirect(Exception):
    """The file system refused an aligned O_DIRECT write: write through the page cache."""


_buffers: list[mmap.mmap] = []
_buffers_lock = threading.Lock()


def write_direct(fd: int, parts: list[Data], offset: int, size: int) -> None:
    """parts at offset (aligned) of fd, opened with O_DIRECT: copied into an aligned
    buffer, zero-padded to a whole number of 4 KiB pages, written in one go."""
    padded = -(-size // ALIGN) * ALIGN
    with _buffers_lock:
        # The smallest kept buffer that fits (a larger one stays for a larger batch).
        fits = [b for b in _buffers if len(b) >= padded]
        buf = min(fits, key=len) if fits else None
        if buf is not None:
            _buffers.remove(buf)
    if buf is None:
        buf = mmap.mmap(-1, max(padded, _BUFFER_BYTES))
    try:
        view = memoryview(buf)
        at = 0
        for part in parts:
            view[at : at + len(part)] = part
            at += len(part)
        view[at:padded] = bytes(padded - at)
        done = 0
        while done < padded:
            try:
                n = os.pwritev(fd, [view[done:padded]], offset + done)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise NotDirect from None
                raise
            if n <= 0:
                raise OSError(errno.EIO, "pwritev wrote nothing")
            done += n
        view.release()
    finally:
        if len(buf) <= _BUFFER_KEPT_BYTES:
            with _buffers_lock:
                if len(_buffers) < _BUFFERS_KEPT:
                    _buffers.append(buf)


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
