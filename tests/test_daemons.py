"""Daemons started by `drive up` (or the tests) never outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fusefs.daemons import start_daemon

    daemon = start_daemon("metad", Path(sys.argv[1]), "127.0.0.1:0")
    print(daemon.process.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; it waits only for init to reap it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.timeout(60)
def test_daemon_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "metad")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        daemon_pid = int(parent.stdout.readline())
        assert _alive(daemon_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while _alive(daemon_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(daemon_pid), "metad outlived the process that started it"
    finally:
        parent.kill()
        parent.wait()
