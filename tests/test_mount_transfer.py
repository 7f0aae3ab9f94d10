"""What crosses the wire: dedup, small re-uploads after an insert, lazy reads."""

from __future__ import annotations

import mmap
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from fusefs.chunker import chunk_file
from tests import signin
from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024


def _stats(blockd):
    client = signin.block_client(blockd.address)
    try:
        return client.stats()
    finally:
        client.close()


def _stored_bytes(block_store) -> int:
    return sum(len(data) for data in block_store.blocks().values())


@pytest.mark.both_backends
def test_identical_files_are_stored_once(mount, blockd, block_store) -> None:
    write_random(mount.path / "one", 100 * MiB, seed=42)
    mount.sync()
    before = _stored_bytes(block_store)
    write_random(mount.path / "two", 100 * MiB, seed=42)
    mount.sync()
    after = _stored_bytes(block_store)
    assert 100 * MiB <= before < 101 * MiB
    assert after == before
    assert sha256_of(mount.path / "one") == sha256_of(mount.path / "two")


@pytest.mark.both_backends
def test_one_byte_insert_uploads_a_few_mib(mount, blockd) -> None:
    data = random.Random(1).randbytes(64 * MiB)
    path = mount.path / "big.bin"
    path.write_bytes(data)
    mount.sync()
    received_before = _stats(blockd).bytes_received
    edited = data[: 32 * MiB] + b"!" + data[32 * MiB :]
    path.write_bytes(edited)
    mount.sync()
    uploaded = _stats(blockd).bytes_received - received_before
    assert uploaded <= 6 * MiB, f"uploaded {uploaded / MiB:.1f} MiB for a 1-byte insert"
    assert path.read_bytes() == edited


def test_reading_one_kib_of_a_gib_fetches_a_couple_of_blocks(
    mounts, metad, blockd, tmp_path: Path
) -> None:
    writer = mounts.mount(metad, blockd, "dev-a")
    write_random(writer.path / "huge", 1024 * MiB, seed=3)
    writer.sync()
    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "empty-cache")
    sent_before = _stats(blockd)
    # Unbuffered: Python's buffered read would ask for st_blksize (1 MiB).
    with open(reader.path / "huge", "rb", buffering=0) as f:
        head = f.read(1024)
    time.sleep(0.5)  # let any (unwanted) background prefetch show in the counters
    sent = _stats(blockd)
    assert len(head) == 1024
    assert sent.blocks_sent - sent_before.blocks_sent <= 2
    assert sent.bytes_sent - sent_before.bytes_sent <= 8 * MiB
    with open(writer.path / "huge", "rb") as f:
        assert f.read(1024) == head


@pytest.mark.both_backends
def test_cache_survives_remount(mounts, metad, blockd, tmp_path: Path) -> None:
    writer = mounts.mount(metad, blockd, "dev-a")
    write_random(writer.path / "f", 20 * MiB, seed=5)
    cache = tmp_path / "reader-cache"
    reader = mounts.mount(metad, blockd, "dev-b", cache=cache)
    digest = sha256_of(reader.path / "f")
    reader.unmount()
    sent_before = _stats(blockd).bytes_sent
    again = mounts.mount(metad, blockd, "dev-b", cache=cache)
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=False)
    assert sha256_of(again.path / "f") == digest
    assert _stats(blockd).bytes_sent == sent_before, "a cached block was downloaded again"
    assert os.listdir(cache / "packs"), "the fetched blocks were not kept in a pack"


def _direct_read(path: Path, offset: int, size: int) -> bytes:
    """size bytes at offset with O_DIRECT (both 4 KiB multiples): the page cache is
    bypassed, so the mount serves exactly this read."""
    buf = mmap.mmap(-1, size)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        got = os.preadv(fd, [buf], offset)
    finally:
        os.close(fd)
    return bytes(buf[:got])


def test_reads_across_every_block_boundary_return_the_written_bytes(
    mounts, metad, blockd, tmp_path: Path
) -> None:
    data = random.Random(11).randbytes(6 * MiB + 1234)
    writer = mounts.mount(metad, blockd, "dev-a")
    (writer.path / "f").write_bytes(data)
    writer.sync()
    (tmp_path / "copy").write_bytes(data)
    bounds = [ref.offset for ref in chunk_file(tmp_path / "copy")][1:]
    assert len(bounds) >= 3
    page = 4096
    windows = [(0, page), (len(data) // page * page, page)]
    for bound in bounds:
        below = bound // page * page
        windows += [(below, page), (below - page, 3 * page), (below - 32 * page, 64 * page)]

    def reads_right(root: Path) -> None:
        for offset, size in windows:
            expected = data[offset : offset + size]
            assert _direct_read(root / "f", offset, size) == expected, (offset, size)

    cache = tmp_path / "reader-cache"
    reader = mounts.mount(metad, blockd, "dev-b", cache=cache)
    reads_right(reader.path)  # blocks fetched from blockd
    reader.unmount()
    again = mounts.mount(metad, blockd, "dev-b", cache=cache)
    reads_right(again.path)  # the cache's disk copies, verified at their first read
    reads_right(again.path)  # and then read in part
    assert (again.path / "f").read_bytes() == data


def test_a_damaged_cache_file_is_noticed_and_fetched_again(
    mounts, metad, blockd, tmp_path: Path, allowed_log_patterns
) -> None:
    allowed_log_patterns += [r"corrupt cache file"]
    writer = mounts.mount(metad, blockd, "dev-a")
    digest = write_random(writer.path / "f", 5 * MiB, seed=12)
    writer.sync()
    cache = tmp_path / "reader-cache"
    reader = mounts.mount(metad, blockd, "dev-b", cache=cache)
    assert sha256_of(reader.path / "f") == digest
    reader.unmount()

    # Fetched blocks are kept in packs: (pack, hash, offset, size) lines of packs.log.
    entries = [line.split() for line in (cache / "packs.log").read_text().splitlines()]
    assert len(entries) >= 3
    (flipped, _, flip_at, flip_size), (torn, _, torn_at, torn_size) = entries[:2]
    with open(cache / "packs" / flipped, "r+b") as f:  # one bit rotted
        f.seek(int(flip_at) + int(flip_size) // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0xFF]))
    with open(cache / "packs" / torn, "r+b") as f:  # the second half never written
        f.seek(int(torn_at) + int(torn_size) // 2)
        f.write(bytes(int(torn_size) - int(torn_size) // 2))
    sent_before = _stats(blockd).bytes_sent

    again = mounts.mount(metad, blockd, "dev-b", cache=cache)
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=False)
    assert sha256_of(again.path / "f") == digest
    assert sha256_of(again.path / "f") == digest
    fetched = _stats(blockd).bytes_sent - sent_before
    assert 0 < fetched <= 2 * 4 * MiB + MiB, "only the two damaged blocks are fetched again"
