"""What a person writes through the mount is not readable on the server's disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import signin
from tests.filedata import sha256_of, write_random
from tests.storedobjects import LocalObjects

MiB = 1024 * 1024

MARKER = b"drivefs-secret-marker-7f3a9c"


@pytest.mark.both_backends
def test_no_plaintext_at_rest_and_text_is_stored_smaller(
    mount, blockd, block_store, tmp_path: Path
) -> None:
    text = b"".join(b"line %d of a plain text file %s\n" % (i, MARKER) for i in range(60_000))
    (mount.path / "notes.txt").write_bytes(text)
    assert (mount.path / "notes.txt").read_bytes() == text
    mount.sync()
    # The store, and blockd's own directory (keys, log) whatever the backend.
    objects = {**block_store.everything(), **LocalObjects(tmp_path / "blockd").everything()}
    assert block_store.blocks()
    for name, data in objects.items():
        assert MARKER not in data, f"plaintext in {name}"
    stored = sum(len(data) for data in block_store.blocks().values())
    assert stored < len(text) / 2, (stored, len(text))


def _master_key_ids(block_store, metad_address: str, name: str) -> set[bytes]:
    """The ids of the master keys that wrapped the blocks of a file (header bytes 6..14)."""
    stored = block_store.blocks()
    return {stored[h][6:14] for h in signin.file_block_hashes(metad_address, name)}


@pytest.mark.both_backends
def test_files_read_back_after_master_key_rotation(
    mounts, daemons, metad, blockd, block_store, tmp_path: Path
) -> None:
    writer = mounts.mount(metad, blockd, "dev-a")
    old_digest = write_random(writer.path / "old", 3 * MiB, seed=1)
    writer.sync()
    blockd.stop()
    rotated = subprocess.run(
        [sys.executable, "-m", "blockd", "rotate-key", "--data", str(tmp_path / "blockd")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    blockd = daemons.restart(blockd)
    new_digest = write_random(writer.path / "new", 3 * MiB, seed=2)
    writer.sync()

    old_keys = _master_key_ids(block_store, metad.address, "old")
    new_keys = _master_key_ids(block_store, metad.address, "new")
    assert len(old_keys) == 1 and len(new_keys) == 1 and old_keys != new_keys
    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "empty-cache")
    assert sha256_of(reader.path / "old") == old_digest
    assert sha256_of(reader.path / "new") == new_digest
