"""Content-defined chunking: blocks cover the file exactly and survive inserts."""

import random
from pathlib import Path

from fusefs.chunker import MAX_SIZE, MIN_SIZE, block_hash, chunk_bytes, chunk_file

MiB = 1024 * 1024


def test_blocks_cover_the_content_contiguously(tmp_path: Path) -> None:
    data = random.Random(0).randbytes(20 * MiB + 17)
    (tmp_path / "f").write_bytes(data)
    refs = chunk_file(tmp_path / "f")
    assert refs == chunk_bytes(data)
    offset = 0
    for ref in refs:
        assert ref.offset == offset
        assert ref.size <= MAX_SIZE
        assert ref.hash == block_hash(data[ref.offset : ref.end])
        offset = ref.end
    assert offset == len(data)
    assert all(r.size >= MIN_SIZE for r in refs[:-1])
    assert 0.5 * MiB < len(data) / len(refs) < 2 * MiB  # "around 1 MiB"


def test_insert_changes_only_nearby_blocks() -> None:
    data = random.Random(1).randbytes(64 * MiB)
    edited = data[: 32 * MiB] + b"!" + data[32 * MiB :]
    before = {r.hash for r in chunk_bytes(data)}
    new = [r for r in chunk_bytes(edited) if r.hash not in before]
    assert 1 <= len(new) <= 2
    assert sum(r.size for r in new) <= 2 * MAX_SIZE


def test_empty_content_has_no_blocks(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    assert chunk_file(tmp_path / "e") == []
    assert chunk_bytes(b"") == []
