"""Test data helpers: reproducible random content and digests of large files, and
the file operations Python's os module lacks."""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
from pathlib import Path

MiB = 1024 * 1024


def write_random(path: Path, size: int, seed: int = 0) -> str:
    """Writes size pseudo-random bytes in 4 MiB pieces; returns their sha256."""
    digest = hashlib.sha256()
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            piece = rng.randbytes(min(left, 4 * MiB))
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(4 * MiB):
            digest.update(piece)
    return digest.hexdigest()


def exchange(first: Path, second: Path) -> None:
    """renameat2(RENAME_EXCHANGE): the two entries swap (AssertionError with the errno's
    text if refused)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    result = libc.renameat2(
        at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange
    )
    assert result == 0, os.strerror(ctypes.get_errno())
