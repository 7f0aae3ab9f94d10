"""The mount's metadata replica: names and attributes answered locally, also offline.

Real daemons, real mounts: a remount with the daemons stopped still lists,
stats and reads what the replica and the block cache hold; changes another
device made while this mount was away arrive when it mounts again.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from tests.filedata import sha256_of, write_random
from tests.offline import OFFLINE_LOGS, mount_behind
from tests.waiting import eventually


def _tree(root: Path) -> dict[str, str]:
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "empty").mkdir()
    digests = {
        "docs/a.txt": write_random(root / "docs" / "a.txt", 5000, seed=1),
        "docs/deep/b.bin": write_random(root / "docs" / "deep" / "b.bin", 2 * 1024 * 1024, seed=2),
    }
    os.symlink("a.txt", root / "docs" / "link")
    os.chmod(root / "docs" / "a.txt", 0o640)
    return digests


def _listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below root with its mode, size and mtime (what `ls -lR` shows)."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = os.lstat(path)
            seen[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def test_remount_offline_lists_stats_and_reads_what_it_had(
    mounts, metad, blockd, allowed_log_patterns
) -> None:
    allowed_log_patterns += [r"unreachable", r"change stream interrupted", r"cannot reach"]
    m = mounts.mount(metad, blockd, "dev-a")
    digests = _tree(m.path)
    before = _listing(m.path)
    for name, digest in digests.items():
        assert sha256_of(m.path / name) == digest  # now in the block cache
    m.unmount()

    metad.stop()
    blockd.stop()
    offline = mounts.mount(metad, blockd, "dev-a", cache=m.cache)
    started = time.monotonic()
    assert _listing(offline.path) == before
    assert os.readlink(offline.path / "docs" / "link") == "a.txt"
    for name, digest in digests.items():
        assert sha256_of(offline.path / name) == digest
    with pytest.raises(FileNotFoundError):
        os.stat(offline.path / "docs" / "missing")
    assert time.monotonic() - started < 10, "offline answers must not wait on the network"
    os.statvfs(offline.path)


def test_a_folder_never_seen_fails_fast_offline(mounts, metad, blockd, allowed_log_patterns):
    allowed_log_patterns += [r"unreachable", r"change stream interrupted", r"cannot reach"]
    m = mounts.mount(metad, blockd, "dev-a")
    (m.path / "seen").mkdir()
    (m.path / "seen" / "f").write_bytes(b"x")
    os.listdir(m.path)
    m.unmount()
    other = mounts.mount(metad, blockd, "dev-b")
    (other.path / "seen" / "later").mkdir()  # never listed by dev-a
    other.unmount()

    metad.stop()
    blockd.stop()
    offline = mounts.mount(metad, blockd, "dev-a", cache=m.cache)
    assert sorted(os.listdir(offline.path)) == ["seen"]
    with pytest.raises(OSError) as failure:
        os.listdir(offline.path / "seen" / "later")
    assert failure.value.errno in (errno.EIO, errno.ENOENT)


def test_content_not_cached_fails_fast_while_blockd_is_away(
    mounts, metad, blockd, behind_relays, allowed_log_patterns
) -> None:
    allowed_log_patterns += [*OFFLINE_LOGS, r"blockd", r"Unavailable", r"read failed"]
    a = mounts.mount(metad, blockd, "dev-a")
    digest = write_random(a.path / "report.bin", 300_000, seed=4)
    a.sync()
    b = mount_behind(mounts, behind_relays, "dev-b")
    assert os.stat(b.path / "report.bin").st_size == 300_000  # known, never read
    behind_relays[1].cut()  # blockd only: metad still answers
    started = time.monotonic()
    with pytest.raises(OSError) as failure:
        (b.path / "report.bin").read_bytes()
    assert failure.value.errno == errno.EIO
    assert time.monotonic() - started < 2.5, "a read must not wait long for an absent blockd"
    behind_relays[1].restore()
    eventually(lambda: sha256_of(b.path / "report.bin") == digest, timeout=10)


def test_changes_made_while_away_arrive_at_the_next_mount(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "docs").mkdir()
    (a.path / "docs" / "kept.txt").write_bytes(b"kept")
    (a.path / "docs" / "gone.txt").write_bytes(b"gone")
    (a.path / "docs" / "moved.txt").write_bytes(b"moved")
    assert sorted(os.listdir(a.path / "docs")) == ["gone.txt", "kept.txt", "moved.txt"]
    a.unmount()

    b = mounts.mount(metad, blockd, "dev-b")
    (b.path / "docs" / "gone.txt").unlink()
    (b.path / "docs" / "moved.txt").rename(b.path / "docs" / "renamed.txt")
    (b.path / "docs" / "kept.txt").write_bytes(b"kept, edited")
    (b.path / "docs" / "new.txt").write_bytes(b"new")
    b.unmount()

    again = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
    docs = again.path / "docs"
    eventually(
        lambda: sorted(os.listdir(docs)) == ["kept.txt", "new.txt", "renamed.txt"], timeout=10
    )
    assert (docs / "kept.txt").read_bytes() == b"kept, edited"
    assert (docs / "renamed.txt").read_bytes() == b"moved"
    assert not (docs / "gone.txt").exists()


def test_live_changes_keep_a_listed_folder_exact(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "shared").mkdir()
    eventually(lambda: (b.path / "shared").is_dir(), timeout=10)
    assert os.listdir(b.path / "shared") == []  # listed (and so complete) on b
    (a.path / "shared" / "one").write_bytes(b"1")
    eventually(lambda: os.listdir(b.path / "shared") == ["one"], timeout=10)
    eventually(lambda: (b.path / "shared" / "one").read_bytes() == b"1", timeout=10)
    (a.path / "shared" / "one").rename(a.path / "shared" / "two")
    eventually(lambda: os.listdir(b.path / "shared") == ["two"], timeout=10)
    # The kernel forgets the old name when the invalidation reaches it, a moment
    # after the listing (answered by the replica) shows the new one.
    eventually(lambda: not os.path.exists(b.path / "shared" / "one"), timeout=2)
    os.unlink(a.path / "shared" / "two")
    eventually(lambda: os.listdir(b.path / "shared") == [], timeout=10)


def test_content_never_fetched_fails_at_once_offline(mounts, metad, blockd, allowed_log_patterns):
    allowed_log_patterns += [r"unreachable", r"change stream interrupted", r"cannot reach"]
    a = mounts.mount(metad, blockd, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    write_random(b.path / "never-read.bin", 3 * 1024 * 1024, seed=5)
    b.sync()
    eventually(lambda: os.path.getsize(a.path / "never-read.bin") == 3 * 1024 * 1024, timeout=10)
    assert os.listdir(a.path) == ["never-read.bin"]  # listed, never read
    a.unmount()
    b.unmount()

    metad.stop()
    blockd.stop()
    offline = mounts.mount(metad, blockd, "dev-a", cache=a.cache)
    assert os.listdir(offline.path) == ["never-read.bin"]
    started = time.monotonic()
    with pytest.raises(OSError) as failure:
        (offline.path / "never-read.bin").read_bytes()
    assert failure.value.errno == errno.EIO
    assert time.monotonic() - started < 2, "a read that needs the network fails at once"
