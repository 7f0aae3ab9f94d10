"""Garbage collection and scrub through the real daemons, mount and drive command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from fusefs.credentials import TOKEN_ENV
from tests import signin
from tests.filedata import sha256_of, write_random
from tests.people import add_person, run_drive
from tests.running import drive_cli
from tests.waiting import eventually

MiB = 1024 * 1024


def drive_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    # as the first user, an administrator
    return drive_cli(*args, env={**os.environ, TOKEN_ENV: signin.token()}, timeout=300)


def object_count(blockd) -> int:
    client = signin.block_client(blockd.address)
    try:
        return client.stats().object_count
    finally:
        client.close()


def stored_files(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "blockd" / "blocks").rglob("*") if p.is_file()}


def test_gc_reclaims_deleted_files_and_keeps_shared_blocks(drive, mounts, tmp_path: Path) -> None:
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "dev-a")
    shared = write_random(m.path / "x", 3 * MiB, seed=1)
    assert write_random(m.path / "y", 3 * MiB, seed=1) == shared  # same blocks as x
    write_random(m.path / "z", 3 * MiB, seed=2)
    m.sync()
    before = object_count(blockd)
    (m.path / "x").unlink()
    (m.path / "z").unlink()

    result = drive_cmd("gc", "--blockd", blockd.address, "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert object_count(blockd) == before, "deleted files still in trash keep their blocks"

    result = drive_cmd("trash", "empty", "--metad", metad.address)
    assert result.returncode == 0, result.stderr
    dry = drive_cmd("gc", "--blockd", blockd.address, "--grace", "0", "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stdout + dry.stderr
    assert object_count(blockd) == before
    result = drive_cmd("gc", "--blockd", blockd.address, "--grace", "0")
    assert result.returncode == 0, result.stderr
    assert "reclaimed" in result.stdout
    after = object_count(blockd)
    assert 0 < after < before  # z's blocks went, x/y's stayed (y refers to them)
    assert len(stored_files(tmp_path)) == after

    fresh = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "fresh-cache")
    assert sha256_of(fresh.path / "y") == shared


def test_gc_during_a_write_storm_loses_nothing(drive, mounts, tmp_path: Path) -> None:
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "dev-a")
    # Leftover blocks nothing refers to: the storm writes the same contents
    # again, so its commits deduplicate against blocks being collected.
    for i in range(12):
        write_random(m.path / f"old{i}", 512 * 1024, seed=100 + i)
        m.sync()  # its blocks reach blockd before the file goes
        (m.path / f"old{i}").unlink()
    assert drive_cmd("trash", "empty", "--metad", metad.address).returncode == 0
    grace = 2
    time.sleep(grace + 0.5)

    written: dict[str, str] = {}
    errors: list[BaseException] = []

    def storm() -> None:
        try:
            for round_ in range(3):
                for i in range(12):
                    name = f"new{round_}-{i}"
                    written[name] = write_random(m.path / name, 512 * 1024, seed=100 + i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=storm)
    writer.start()
    runs = 0
    while writer.is_alive() or runs < 2:
        result = drive_cmd("gc", "--blockd", blockd.address, "--grace", str(grace))
        assert result.returncode == 0, result.stderr
        runs += 1
    writer.join()
    assert not errors, errors
    m.sync()

    fresh = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "fresh-cache")
    for name, digest in written.items():
        assert sha256_of(fresh.path / name) == digest, name
    scrub = drive_cmd("scrub", "--blockd", blockd.address)
    assert scrub.returncode == 0, scrub.stdout + scrub.stderr


def test_scrub_names_a_damaged_block_and_fails(
    drive, mounts, daemons, tmp_path: Path, allowed_log_patterns: list[str]
) -> None:
    allowed_log_patterns += [r"corrupt", r"unreadable"]
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "dev-a")
    write_random(m.path / "f", 2 * MiB, seed=3)
    clean = drive_cmd("scrub", "--blockd", blockd.address)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problems" in clean.stdout

    victim = sorted((tmp_path / "blockd" / "blocks").rglob("*"))[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    damaged = drive_cmd("scrub", "--blockd", blockd.address, "--metad", metad.address)
    assert damaged.returncode == 1
    assert victim.name in damaged.stdout + damaged.stderr
    assert "1 problem" in damaged.stdout
    assert "quarantined" in damaged.stderr
    # It names the file the block is in, and whose it is.
    assert f"damaged block {victim.name[:16]}… is in:" in damaged.stdout
    assert re.search(r"^  owner: f \[r2, current\]$", damaged.stdout, re.MULTILINE)

    # Quarantined: moved aside, so from now on it is a missing block.
    assert not victim.exists()
    assert (tmp_path / "blockd" / "quarantine").iterdir()
    missing = drive_cmd("scrub", "--blockd", blockd.address)
    assert missing.returncode == 1
    assert "missing" in missing.stdout + missing.stderr and victim.name in missing.stderr


def test_status_reports_use_and_storage(drive, mounts) -> None:
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "dev-a")
    (m.path / "notes.txt").write_text("hello drive " * 10_000)
    result = drive_cmd("status", "--metad", metad.address, "--blockd", blockd.address)
    assert result.returncode == 0, result.stderr
    assert "your files" in result.stdout and "stored" in result.stdout
    m.sync()
    shown = json.loads(
        drive_cmd("status", "--json", "--metad", metad.address, "--blockd", blockd.address).stdout
    )
    assert shown["you"]["used_bytes"] == 120_000 and shown["store"]["stored_objects"] >= 1
    (here,) = [d for d in shown["this_device"] if d["mountpoint"] == str(m.path)]
    assert here["changes"] == 0 and here["online"]


def test_status_shows_a_user_their_own_space_only(drive) -> None:
    metad, blockd = drive
    bob = add_person(metad.address, blockd.address, "bob")
    bob.write("mine.txt", b"bob's")
    addresses = ("--metad", metad.address, "--blockd", blockd.address)
    try:
        done = run_drive("status", "--json", *addresses, token=bob.token)
        assert done.returncode == 0, done.stderr
        shown = json.loads(done.stdout)
        assert shown["you"]["used_bytes"] == 5 and shown["store"] is None
        text = run_drive("status", *addresses, token=bob.token)
        assert text.returncode == 0, text.stderr
        assert "your files" in text.stdout and "stored" not in text.stdout
    finally:
        bob.close()


def test_gc_without_metad_is_a_clear_error(daemons, tmp_path: Path) -> None:
    blockd = daemons.start("blockd", tmp_path / "lonely")
    result = drive_cmd("gc", "--blockd", blockd.address)
    assert result.returncode == 1
    error = result.stderr.strip()  # rich may leave a blank line where its bar was
    assert error.startswith("drive: error: ") and "--metad" in error
    assert len(error.splitlines()) == 1


def test_a_second_gc_while_one_runs_is_refused_and_the_first_finishes(
    drive, mounts, tmp_path: Path
) -> None:
    """Two collections at once would lose blocks (the second lifts the fence the first
    deletes behind): the second is refused with a clear error, the first goes on."""
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "dev-a")
    kept = write_random(m.path / "kept", 2 * MiB, seed=5)
    m.sync()
    m.unmount()
    os.kill(metad.process.pid, signal.SIGSTOP)  # the first run waits on metad
    try:
        first = subprocess.Popen(
            [sys.executable, "-m", "fusefs.cli", "gc", "--blockd", blockd.address, "--grace", "0"],
            env={**os.environ, TOKEN_ENV: signin.token()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = "garbage collection started"
        eventually(lambda: started in blockd.log_path.read_text(), timeout=60)
        second = drive_cmd("gc", "--blockd", blockd.address, "--grace", "0")
        assert second.returncode == 1
        assert "already running" in second.stderr, second.stderr
    finally:
        os.kill(metad.process.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "reclaimed" in out
    fresh = mounts.mount(metad, blockd, "dev-b", cache=tmp_path / "fresh-cache")
    assert sha256_of(fresh.path / "kept") == kept
