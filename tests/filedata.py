"""Test data helpers: reproducible random content and digests of large files."""

from __future__ import annotations

import hashlib
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
