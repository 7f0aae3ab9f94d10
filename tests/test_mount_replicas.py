"""Mounts on two metad replicas sharing one PostgreSQL database.

What a user of a replicated drive relies on: a change made on one device
reaches another whose metad is a different replica, as it would through one
metad; and when a replica dies in the middle of a storm of writes, every
file whose close returned is kept, the mounts carry on through the replica
left, and every follower of the journal (a mount's change stream, a
`drive watch`) resumes there from its cursor: each change once, in order.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from fusefs.cli.watch import Stopper, follow
from fusefs.cli.where import with_port
from fusefs.clients import MetadataClient
from fusefs.daemons import Daemon
from fusefs.errors import InvalidArgument
from fusefs.models import Change
from tests import signin
from tests.waiting import eventually

pytestmark = pytest.mark.postgresql

STORM_FILES = 300
# Files closed before each crash: the storm is well under way, and goes on after.
KILL_FIRST_AT, RESTART_FIRST_AT, KILL_SECOND_AT = 60, 130, 200


@pytest.fixture
def replicas(daemons, tmp_path: Path, pg_database: str, block_store) -> SimpleNamespace:
    """Two metad on one database, and one blockd that knows both."""
    args = ["--database", pg_database]
    first = daemons.start("metad", tmp_path / "r1", extra_args=args)
    second = daemons.start("metad", tmp_path / "r2", extra_args=args)
    both = f"{first.address},{second.address}"
    blockd = daemons.start(
        "blockd", tmp_path / "blockd", extra_args=[*block_store.blockd_args, "--metad", both]
    )
    return SimpleNamespace(first=first, second=second, blockd=blockd, both=both)


def _at(address: str) -> SimpleNamespace:
    return SimpleNamespace(address=address)


def test_a_change_on_a_device_of_one_replica_reaches_a_device_of_the_other(
    mounts, replicas
) -> None:
    a = mounts.mount(replicas.first, replicas.blockd, "dev-a").path
    b = mounts.mount(replicas.second, replicas.blockd, "dev-b").path
    assert os.listdir(b) == []  # b's kernel holds "empty" to invalidate
    data = os.urandom(300_000)
    (a / "note.bin").write_bytes(data)
    eventually(lambda: (b / "note.bin").read_bytes() == data, timeout=2)

    (a / "folder").mkdir()
    os.rename(a / "note.bin", a / "folder" / "moved.bin")
    eventually(lambda: (b / "folder" / "moved.bin").read_bytes() == data, timeout=2)
    eventually(lambda: not (b / "note.bin").exists(), timeout=2)  # invalidated

    os.unlink(a / "folder" / "moved.bin")
    eventually(lambda: os.listdir(b / "folder") == [], timeout=2)
    os.rmdir(a / "folder")
    eventually(lambda: os.listdir(b) == [], timeout=2)


def test_concurrent_edits_through_two_replicas_keep_both_versions(mounts, replicas) -> None:
    a = mounts.mount(replicas.first, replicas.blockd, "dev-a")
    b = mounts.mount(replicas.second, replicas.blockd, "dev-b")
    (a.path / "doc.txt").write_text("base")
    eventually(lambda: (b.path / "doc.txt").read_text() == "base", timeout=2)
    fa = open(a.path / "doc.txt", "r+")  # noqa: SIM115
    fb = open(b.path / "doc.txt", "r+")  # noqa: SIM115
    fa.write("from a")
    fb.write("from b")
    fa.close()
    a.sync()  # a commits first, through the first replica
    fb.close()  # b's base is stale on the second replica too: a conflicted copy
    eventually(lambda: len(os.listdir(a.path)) == 2, timeout=5)
    entries = sorted(os.listdir(a.path))
    copy = [n for n in entries if "conflicted copy" in n]
    assert len(copy) == 1 and "dev-b" in copy[0], entries
    assert (a.path / "doc.txt").read_text() == "from a"
    # The copy is made, then filled: its content may follow its name by a moment.
    eventually(lambda: (a.path / copy[0]).read_text() == "from b", timeout=2)
    eventually(lambda: (b.path / "doc.txt").read_text() == "from a", timeout=2)


class _Watcher:
    """`drive watch` through the replica list, in a thread: every change it is handed."""

    def __init__(self, address: str, after: int) -> None:
        self.changes: list[Change] = []
        self.lost: list[int] = []
        self._stopper = Stopper()
        self._meta = MetadataClient(address, "watcher", signin.token)
        self._thread = threading.Thread(
            target=follow,
            args=(self._meta, after, self.changes.append, None, self.lost.append, self._stopper),
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopper.stop()
        self._thread.join(10)
        self._meta.close()
        assert not self._thread.is_alive()


def test_killing_one_replica_mid_storm_loses_no_closed_file_and_everyone_carries_on(
    mounts, daemons, replicas
) -> None:
    """A rolling crash: the first replica is killed, started again, then the second is
    killed, so every stream (whichever replica round_robin gave it) loses its replica
    once and must resume on the other."""
    first, second = replicas.first, replicas.second
    a = mounts.mount(_at(replicas.both), replicas.blockd, "dev-a")
    b = mounts.mount(_at(f"{second.address},{first.address}"), replicas.blockd, "dev-b")
    start = _head(second.address)
    watcher = _Watcher(replicas.both, start)
    (a.path / "storm").mkdir()
    eventually(lambda: (b.path / "storm").is_dir(), timeout=2)

    closed: dict[str, bytes] = {}
    failed: dict[str, OSError] = {}
    survivor: list[Daemon] = []

    def crashes(done: int) -> None:
        if done == KILL_FIRST_AT:
            first.kill()
        elif done == RESTART_FIRST_AT:
            survivor.append(daemons.restart(first))
            # Everyone's channel is back on it before the second goes (else none is left).
            port = int(first.address.rpartition(":")[2])
            pids = (a.process.pid, b.process.pid, os.getpid())
            eventually(lambda: all(_connected(pid, port) for pid in pids), timeout=10)
        elif done == KILL_SECOND_AT:
            second.kill()

    # In this thread: a daemon's parent-death signal follows the thread that started it.
    for i in range(STORM_FILES):
        name, data = f"f{i:03}", f"file {i} ".encode() * (i % 7 + 1)
        try:
            (a.path / "storm" / name).write_bytes(data)
        except OSError as exc:  # a close that did not return is not promised
            failed[name] = exc
            continue
        closed[name] = data
        crashes(len(closed))
    assert first.process.returncode == second.process.returncode == -9
    assert not failed, failed  # the mount works offline-first: every close returns
    a.sync()

    # Every closed file is on the drive: b (following through the survivor) shows it.
    def all_on_b() -> bool:
        return sorted(os.listdir(b.path / "storm")) == sorted(closed)

    eventually(all_on_b, timeout=20)
    for name, data in closed.items():
        assert (b.path / "storm" / name).read_bytes() == data, name
    # And a device mounted afresh, through the survivor alone, reads the same.
    fresh = mounts.mount(survivor[0], replicas.blockd, "dev-c")
    assert sorted(os.listdir(fresh.path / "storm")) == sorted(closed)
    for name, data in closed.items():
        assert (fresh.path / "storm" / name).read_bytes() == data, name

    # The watcher saw what the journal holds after its start: once each, in order.
    head = _head(survivor[0].address)
    journal = [c.sequence for c in _take(survivor[0].address, start, head)]
    eventually(lambda: bool(watcher.changes) and watcher.changes[-1].sequence == head, timeout=10)
    watcher.stop()
    assert watcher.lost, "the watcher's stream never broke: the test did not test resuming"
    assert [c.sequence for c in watcher.changes] == journal
    names = {c.name for c in watcher.changes if c.name.startswith("f")}
    assert names >= set(closed)

    for m in (a, b):
        log = m.log_path.read_text(errors="replace")
        assert "change stream interrupted" in log  # it resumed, and (above) missed nothing
        # Neither went offline (a WARNING fails the test too), nor lost or put off anything.
        assert not re.search(r"(?i)unreachable|data.?loss|lost|gave up|discard|not sent", log)


def _connected(pid: int, port: int) -> bool:
    """Whether process pid holds an established TCP connection to port on this machine."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if remote_port == port and fields[3] == "01" and f"socket:[{fields[9]}]" in sockets:
                return True
    return False


def _head(address: str) -> int:
    meta = MetadataClient(address, "probe", signin.token)
    try:
        return meta.journal_head()
    finally:
        meta.close()


def _take(address: str, after: int, head: int) -> list[Change]:
    """The journal from after to head, read in one stream."""
    taken: list[Change] = []
    meta = MetadataClient(address, "probe", signin.token)
    stream = meta.subscribe(after)
    try:
        for change in stream:
            taken.append(change)
            if change.sequence >= head:
                break
    finally:
        stream.cancel()
        meta.close()
    return taken


def test_a_replica_list_is_taken_as_typed_and_a_malformed_one_refused() -> None:
    assert with_port("10.0.0.1,10.0.0.2:7500 , [::1]") == "10.0.0.1:7401,10.0.0.2:7500,[::1]:7401"
    for bad in ("10.0.0.1,", ",10.0.0.1", "a:1,,b:2", "a:1,b:99999"):
        with pytest.raises(InvalidArgument):
            with_port(bad)
