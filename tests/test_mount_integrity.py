"""A damaged block reaches a program as EIO, never as wrong bytes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fusefs.clients import MetadataClient
from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024


def _block_paths(blockd_dir: Path, metad_address: str, name: str) -> list[Path]:
    meta = MetadataClient(metad_address, "test")
    try:
        node = meta.lookup(meta.root().id, name)
        hashes = [b.hash.hex() for b in meta.get_revision(node.id).blocks]
    finally:
        meta.close()
    return [blockd_dir / "blocks" / h[:2] / h for h in hashes]


def test_flipped_byte_gives_eio_and_other_files_still_read(
    mounts, daemons, metad, blockd, tmp_path: Path, allowed_log_patterns: list[str]
) -> None:
    allowed_log_patterns += [r"corrupt", r"DATA_LOSS", r"read: ", r"damaged", r"mismatch"]
    writer = mounts.mount(metad, blockd, "dev-a")
    victim_digest = write_random(writer.path / "victim", 3 * MiB, seed=1)
    other_digest = write_random(writer.path / "other", 3 * MiB, seed=2)
    blocks = _block_paths(tmp_path / "blockd", metad.address, "victim")
    assert blocks and all(p.exists() for p in blocks)
    damaged = blocks[len(blocks) // 2]
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    damaged.write_bytes(bytes(raw))
    # A restart empties blockd's memory, so the damaged object is read from disk.
    blockd.stop()
    blockd = daemons.start("blockd", tmp_path / "blockd", listen=blockd.address)

    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "empty-cache")
    with pytest.raises(OSError) as info:
        sha256_of(reader.path / "victim")
    assert info.value.errno == errno.EIO
    assert sha256_of(reader.path / "other") == other_digest
    assert victim_digest != other_digest
