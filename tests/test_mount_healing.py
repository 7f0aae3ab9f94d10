"""A damaged block heals: EIO (never wrong bytes) until its content comes back.

Through real mounts, on the local and the S3 backend. blockd quarantines a
block it finds damaged, so it counts as missing: the next upload of its
content replaces it (whoever writes it), a device holding a verified copy in
its cache is asked for it through the journal, and `drive scrub --repair`
heals from the caches on this machine. Each scenario ends with a clean scrub.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from fusefs.daemons import Daemon
from tests import signin
from tests.filedata import sha256_of, write_random
from tests.test_maintenance import drive_cmd
from tests.waiting import eventually

MiB = 1024 * 1024
DAMAGE_LOG = [r"corrupt", r"unreadable", r"DATA_LOSS", r"read: ", r"damaged", r"mismatch"]


@pytest.fixture
def healing_drive(daemons, tmp_path: Path, block_store) -> tuple[Daemon, Daemon]:
    """metad, and blockd on the test's backend, told where metad is (as drive up runs them)."""
    metad = daemons.start("metad", tmp_path / "metad")
    blockd = daemons.start(
        "blockd",
        tmp_path / "blockd",
        extra_args=[*block_store.blockd_args, "--metad", metad.address],
    )
    return metad, blockd


def _damage(metad: Daemon, block_store, name: str) -> str:
    """Flips a bit in the middle block of /name; returns that block's hash."""
    hashes = signin.file_block_hashes(metad.address, name)
    victim = hashes[len(hashes) // 2]
    block_store.corrupt(victim)
    return victim


def _scrub(metad: Daemon, blockd: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    return drive_cmd("scrub", "--metad", metad.address, "--blockd", blockd.address, *extra)


def _eio(path: Path) -> bool:
    try:
        sha256_of(path)
    except OSError as exc:
        assert exc.errno == errno.EIO, exc
        return True
    return False


@pytest.mark.both_backends
def test_writing_the_same_content_again_heals_it(
    healing_drive, daemons, mounts, block_store, tmp_path: Path, allowed_log_patterns
) -> None:
    allowed_log_patterns += DAMAGE_LOG
    metad, blockd = healing_drive
    writer = mounts.mount(metad, blockd, "dev-a", cache=tmp_path / "cache-a")
    original = tmp_path / "original.bin"
    digest = write_random(original, 3 * MiB, seed=7)
    shutil.copyfile(original, writer.path / "report.bin")
    writer.unmount()
    victim = _damage(metad, block_store, "report.bin")
    blockd = daemons.restart(blockd)  # its memory held the block intact

    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "cache-b")
    assert _eio(reader.path / "report.bin")  # never wrong bytes
    damaged = _scrub(metad, blockd)
    assert damaged.returncode == 1
    assert victim in damaged.stderr and "missing" in damaged.stderr  # quarantined by the read
    assert "owner: report.bin" in damaged.stdout

    # Someone writes the same content again, from a device that never saw it.
    other = mounts.mount(metad, blockd, "dev-c", cache=tmp_path / "cache-c")
    shutil.copyfile(original, other.path / "copy.bin")
    other.sync()
    assert sha256_of(reader.path / "report.bin") == digest
    clean = _scrub(metad, blockd)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problems" in clean.stdout


@pytest.mark.both_backends
def test_a_device_holding_the_block_gives_it_back(
    healing_drive, daemons, mounts, block_store, tmp_path: Path, allowed_log_patterns
) -> None:
    allowed_log_patterns += DAMAGE_LOG
    metad, blockd = healing_drive
    writer = mounts.mount(metad, blockd, "dev-a", cache=tmp_path / "cache-a")
    digest = write_random(writer.path / "photo.raw", 3 * MiB, seed=8)
    writer.unmount()
    holder = mounts.mount(metad, blockd, "dev-a", cache=tmp_path / "cache-a")
    assert sha256_of(holder.path / "photo.raw") == digest  # now in dev-a's cache, verified
    victim = _damage(metad, block_store, "photo.raw")
    blockd = daemons.restart(blockd)

    # The first read finds the damage; blockd quarantines the block and tells
    # metad; dev-a is asked through the journal and uploads its copy. That can
    # be quick enough for the reader's own retry (the kernel's readahead) to
    # succeed, so the reader may or may not see one EIO first: never wrong bytes.
    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "cache-b")
    _eio(reader.path / "photo.raw")
    eventually(lambda: sha256_of(reader.path / "photo.raw") == digest, timeout=15)
    assert f"quarantined corrupt block {victim}" in blockd.log_path.read_text()
    # (Logged once the upload returned to dev-a: the reader may be served first.)
    eventually(lambda: "gave storage back 1 lost block(s)" in holder.log_path.read_text(), 10)
    clean = _scrub(metad, blockd)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_scrub_repair_heals_from_a_cache_on_this_machine(
    healing_drive, daemons, mounts, block_store, tmp_path: Path, allowed_log_patterns
) -> None:
    allowed_log_patterns += DAMAGE_LOG
    metad, blockd = healing_drive
    cache = tmp_path / "cache-a"
    writer = mounts.mount(metad, blockd, "dev-a", cache=cache)
    digest = write_random(writer.path / "thesis.pdf", 3 * MiB, seed=9)
    writer.unmount()
    again = mounts.mount(metad, blockd, "dev-a", cache=cache)
    assert sha256_of(again.path / "thesis.pdf") == digest
    again.unmount()  # no device is running: only the cache folder is left
    victim = _damage(metad, block_store, "thesis.pdf")
    blockd = daemons.restart(blockd)

    found = _scrub(metad, blockd)
    assert found.returncode == 1
    assert victim in found.stderr and "quarantined" in found.stderr
    assert "owner: thesis.pdf [r2, current]" in found.stdout
    repaired = _scrub(metad, blockd, "--repair", "--cache", str(cache))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "restored 1 block(s) from the caches on this machine" in repaired.stdout

    reader = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "cache-b")
    assert sha256_of(reader.path / "thesis.pdf") == digest
    clean = _scrub(metad, blockd)
    assert clean.returncode == 0, clean.stdout + clean.stderr
