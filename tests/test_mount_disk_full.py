"""A full local disk: cached blocks give way to what programs write; beyond that, ENOSPC
and nothing partial reaches the drive.

The mount's cache folder sits on a small tmpfs (root mounts it; CI runs as
root), filled by reading files another device wrote. Real daemons, real
mounts, the other device checks what arrived.
"""

from __future__ import annotations

import errno
import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusefs.clients import MetadataClient
from fusefs.models import AttributeChange, Ownership
from fusefs.mount.journal import Journal
from tests import signin
from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024
DISK_MIB = 80


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path = tmp_path / "small-disk"
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(path)], check=True
    )
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_cache_disk_evicts_cached_blocks_then_refuses_whole(
    mounts, metad, blockd, small_disk, allowed_log_patterns
):
    allowed_log_patterns += [r"local disk", r"cache disk full"]
    a = mounts.mount(metad, blockd, "dev-a")
    digests = {
        f"movie{i}.bin": write_random(a.path / f"movie{i}.bin", 16 * MiB, seed=i) for i in range(4)
    }
    a.sync()

    c = mounts.mount(metad, blockd, "dev-c", cache=small_disk / "cache")
    for name, digest in digests.items():
        assert sha256_of(c.path / name) == digest  # 64 MiB of cached blocks on an 80 MiB disk
    # Room for new content is made by evicting cached copies.
    written = write_random(c.path / "new.bin", 40 * MiB, seed=9)
    c.sync()
    assert sha256_of(a.path / "new.bin") == written

    # More than the whole disk: the write fails, and close says so too.
    too_big = c.path / "too-big.bin"
    with pytest.raises(OSError) as failed, open(too_big, "wb") as f:
        for _ in range(DISK_MIB + 20):
            f.write(os.urandom(MiB))
    assert failed.value.errno == errno.ENOSPC
    c.sync()
    meta = MetadataClient(metad.address, "test", signin.token)
    try:
        on_drive = meta.lookup(meta.root().id, "too-big.bin")
        assert on_drive.size == 0, "a partial file reached the drive"
    finally:
        meta.close()
    # The mount carries on: small edits and reads work.
    (c.path / "note.txt").write_bytes(b"still working")
    c.sync()
    assert (a.path / "note.txt").read_bytes() == b"still working"
    assert sha256_of(c.path / "new.bin") == written


def test_outcomes_the_journal_cannot_record_leave_its_rows_to_be_sent_again(small_disk):
    """Landings that cannot commit (the disk full) must not lose rows or crash: the rows
    stay pending and in the indexes, and are recorded once there is room."""
    journal = Journal(small_disk / "journal")
    journal.add_ids(1000, 100)
    made = []
    for _ in range(20):
        node_id = journal.take_id()
        assert node_id is not None
        journal.record_create(
            node_id=node_id, parent_id=1, name=f"f{node_id}", mode=0o644,
            owner=Ownership(0, 0), mtime_ns=1,
        )  # fmt: skip
        made.append(node_id)
    sent = journal.take(100, 1 << 30)
    assert [row.node_id for row in sent] == made
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * MiB)
    with pytest.raises(OSError) as full, journal.together():
        for row in sent:
            journal.created(row)  # what a landing does: the row is done
    assert full.value.errno == errno.ENOSPC
    assert [row.node_id for row in journal.pending()] == made
    assert all(journal.creating(node_id) for node_id in made)
    filler.unlink()
    again = journal.take(100, 1 << 30)
    assert [row.node_id for row in again] == made  # sent again (request ids: harmless)
    with journal.together():
        for row in again:
            journal.created(row)
    assert journal.pending() == [] and not any(journal.creating(n) for n in made)
    journal.close()


def test_a_close_the_disk_refuses_keeps_the_made_files_row_for_the_next(small_disk):
    """A file's row waits for its close (record_create later): a seal the full disk
    refuses leaves it waiting, written by the next commit that succeeds."""
    journal = Journal(small_disk / "journal")
    journal.add_ids(1000, 10)
    node_id = journal.take_id()
    assert node_id is not None
    journal.record_create(
        node_id=node_id, parent_id=1, name="a", mode=0o644, owner=Ownership(0, 0),
        mtime_ns=1, later=True,
    )  # fmt: skip
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * MiB)
    seal = functools.partial(
        journal.seal, node_id=node_id, parent_id=1, name="a", mine=True, base_revision=0,
        size=60_000, mtime_ns=2, held=AttributeChange(), data=b"x" * 60_000,
    )  # fmt: skip
    with pytest.raises(OSError) as full:
        seal()
    assert full.value.errno == errno.ENOSPC
    assert journal.creating(node_id) and journal.pending() == []
    filler.unlink()
    seal()
    assert [row.kind for row in journal.pending()] == ["create", "commit"]
    journal.close()
