"""Stopping a mount that waits for the servers: a second SIGTERM or Ctrl-C (or a first
one after an unmount from outside) stops the waiting. The mount unmounts cleanly and
exits 0; what was not sent stays in the journal and goes at the next start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024
# What is not sent is said; the connections it closes look like servers gone away.
STOPPED_LOGS = [r"kept in the journal for the next mount", r"unreachable"]


def _wait_for_log(m, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in m.log_path.read_text():
        assert time.monotonic() < deadline, m.log_path.read_text()[-2000:]
        time.sleep(0.05)


def _stops_without_waiting(mounts, metad, blockd, how_it_stops) -> None:
    """A file written while blockd hangs; how_it_stops(mount) then must end the mount
    promptly and cleanly, the file sent by the next mount."""
    m = mounts.mount(metad, blockd, "dev-a")
    os.kill(blockd.process.pid, signal.SIGSTOP)  # the upload waits on a blockd that hangs
    try:
        digest = write_random(m.path / "kept.bin", 2 * MiB, seed=1)
        how_it_stops(m)
        assert m.process.wait(20) == 0, m.log_path.read_text()[-2000:]
        assert not os.path.ismount(m.path), "a stale mountpoint was left"
        said = r"stopped without waiting for the servers: [1-9]\d* change"
        assert re.search(said, m.log_path.read_text()), m.log_path.read_text()[-2000:]
    finally:
        os.kill(blockd.process.pid, signal.SIGCONT)
    again = mounts.mount(metad, blockd, "dev-a")
    again.sync()
    other = mounts.mount(metad, blockd, "dev-b")
    assert sha256_of(other.path / "kept.bin") == digest  # the journal kept it


def test_a_second_signal_stops_waiting_for_the_servers_and_unmounts_cleanly(
    mounts, metad, blockd, allowed_log_patterns
) -> None:
    allowed_log_patterns += STOPPED_LOGS

    def twice(m) -> None:
        m.process.send_signal(signal.SIGTERM)
        _wait_for_log(m, "before unmounting")
        m.process.send_signal(signal.SIGINT)  # Ctrl-C: the user does not want to wait

    _stops_without_waiting(mounts, metad, blockd, twice)


def test_a_signal_after_an_unmount_from_outside_stops_waiting_for_the_servers(
    mounts, metad, blockd, allowed_log_patterns
) -> None:
    allowed_log_patterns += STOPPED_LOGS

    def unmounted_then_signalled(m) -> None:
        subprocess.run(["fusermount3", "-u", str(m.path)], check=True)
        _wait_for_log(m, "before unmounting")
        m.process.send_signal(signal.SIGTERM)

    _stops_without_waiting(mounts, metad, blockd, unmounted_then_signalled)
