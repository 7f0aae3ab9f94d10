"""A look at blockd's objects where the backend keeps them: a directory or a bucket.

Tests that check what is at rest (no plaintext, dedup, damage) use this so
they run unchanged on both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.s3server import REGION, S3Server


class StoredObjects(Protocol):
    blockd_args: list[str]

    def blocks(self) -> dict[str, bytes]:
        """Every stored block object by its hex hash."""

    def everything(self) -> dict[str, bytes]:
        """Every object the backend holds, blocks, format marker and keys alike."""

    def corrupt(self, block_hash: str) -> None:
        """Flips one bit in the middle of a block's object."""


def _flip_middle_bit(data: bytes) -> bytes:
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0x01
    return bytes(raw)


class LocalObjects:
    """blockd's DATA directory: blocks under blocks/ab/abcd…"""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.blockd_args: list[str] = []

    def _path(self, block_hash: str) -> Path:
        return self.data_dir / "blocks" / block_hash[:2] / block_hash

    def blocks(self) -> dict[str, bytes]:
        files = (self.data_dir / "blocks").rglob("*")
        return {f.name: f.read_bytes() for f in files if f.is_file() and len(f.name) == 64}

    def everything(self) -> dict[str, bytes]:
        files = self.data_dir.rglob("*")
        return {str(f): f.read_bytes() for f in files if f.is_file()}

    def corrupt(self, block_hash: str) -> None:
        path = self._path(block_hash)
        path.write_bytes(_flip_middle_bit(path.read_bytes()))


class S3Objects:
    """A bucket of the test S3 server, objects under a prefix as an operator would
    set one; the key file stays in blockd's DATA."""

    prefix = "drive/"

    def __init__(self, server: S3Server, bucket: str) -> None:
        self.server = server
        self.bucket = bucket
        self.blockd_args = [
            "--backend", "s3", "--s3-endpoint", server.endpoint,
            "--s3-bucket", bucket, "--s3-region", REGION, "--s3-prefix", self.prefix,
        ]  # fmt: skip

    def blocks(self) -> dict[str, bytes]:
        objects = self.server.objects(self.bucket, self.prefix)
        cut = len(self.prefix)
        return {key[cut:]: data for key, data in objects.items() if len(key) == cut + 64}

    def everything(self) -> dict[str, bytes]:
        return self.server.objects(self.bucket)

    def corrupt(self, block_hash: str) -> None:
        key = self.prefix + block_hash
        self.server.put(self.bucket, key, _flip_middle_bit(self.server.get(self.bucket, key)))
