"""A damaged block reaches a program as EIO, never as wrong bytes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests import signin
from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024


@pytest.mark.both_backends
def test_flipped_byte_gives_eio_and_other_files_still_read(
    mounts, daemons, metad, blockd, block_store, tmp_path: Path, allowed_log_patterns: list[str]
) -> None:
    allowed_log_patterns += [r"corrupt", r"DATA_LOSS", r"read: ", r"damaged", r"mismatch"]
    writer = mounts.mount(metad, blockd, "dev-a")
    victim_digest = write_random(writer.path / "victim", 3 * MiB, seed=1)
    other_digest = write_random(writer.path / "other", 3 * MiB, seed=2)
    writer.sync()
    hashes = signin.file_block_hashes(metad.address, "victim")
    assert hashes and set(hashes) <= set(block_store.blocks())
    block_store.corrupt(hashes[len(hashes) // 2])
    # A restart empties blockd's memory, so the damaged object is read from storage.
    blockd = daemons.restart(blockd)

    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "empty-cache")
    with pytest.raises(OSError) as info:
        sha256_of(reader.path / "victim")
    assert info.value.errno == errno.EIO
    assert sha256_of(reader.path / "other") == other_digest
    assert victim_digest != other_digest
