"""Stopping a mount: a second SIGTERM (or Ctrl-C) while it sends what it journaled."""

from __future__ import annotations

import os
import re
import signal
import time

from tests.filedata import sha256_of, write_random

MiB = 1024 * 1024


def _wait_for_log(m, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in m.log_path.read_text():
        assert time.monotonic() < deadline, m.log_path.read_text()[-2000:]
        time.sleep(0.05)


def test_a_second_signal_stops_waiting_for_the_servers_and_unmounts_cleanly(
    mounts, metad, blockd, allowed_log_patterns
) -> None:
    # What is not sent is said; the connections it closes look like servers gone away.
    allowed_log_patterns += [r"kept in the journal for the next mount", r"unreachable"]
    m = mounts.mount(metad, blockd, "dev-a")
    os.kill(blockd.process.pid, signal.SIGSTOP)  # the upload waits on a blockd that hangs
    try:
        digest = write_random(m.path / "kept.bin", 2 * MiB, seed=1)
        m.process.send_signal(signal.SIGTERM)
        _wait_for_log(m, "before unmounting")
        m.process.send_signal(signal.SIGINT)  # Ctrl-C: the user does not want to wait
        assert m.process.wait(20) == 0, m.log_path.read_text()[-2000:]
        assert not os.path.ismount(m.path), "a stale mountpoint was left"
        log = m.log_path.read_text()
        said = r"stopped without waiting for the servers: [1-9]\d* change"
        assert re.search(said, log), log[-2000:]
    finally:
        os.kill(blockd.process.pid, signal.SIGCONT)
    again = mounts.mount(metad, blockd, "dev-a")
    again.sync()
    other = mounts.mount(metad, blockd, "dev-b")
    assert sha256_of(other.path / "kept.bin") == digest  # the journal kept it
