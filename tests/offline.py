"""Taking one device offline in a test: a TCP relay between it and the daemons.

The `behind_relays` fixture (conftest.py) starts the relays; mount_behind
mounts a device through them, offline/online cut and restore its network,
kill is a kill -9 of a mount.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from fusefs.shared import PENDING_XATTR
from tests.netcut import Relay
from tests.waiting import eventually

# What a mount cut from the daemons logs, and a test of it expects.
OFFLINE_LOGS = [r"unreachable", r"change stream interrupted", r"not sent yet", r"paused"]


def relays_to(metad, blockd) -> list[Relay]:
    return [Relay(metad.address), Relay(blockd.address)]


def kill(m) -> None:
    """kill -9 of a mount: nothing is saved on the way out."""
    m.process.kill()
    m.process.wait()
    subprocess.run(["fusermount3", "-u", "-z", str(m.path)], check=False)


def mount_behind(mounts, relays, device: str):
    metad, blockd = (SimpleNamespace(address=r.address) for r in relays)
    return mounts.mount(metad, blockd, device)


def offline(relays) -> None:
    for relay in relays:
        relay.cut()


def online(relays) -> None:
    for relay in relays:
        relay.restore()


def back_online(mount, timeout: float = 10.0) -> None:
    """Waits until the mount has noticed the daemons are reachable again."""

    def is_online() -> bool:
        return json.loads(os.getxattr(mount.path, PENDING_XATTR))["online"]

    eventually(is_online, timeout=timeout)


def killed_then_arrives(mounts, relays, a, daemons, shows: Callable[[Path], None]):
    """kill -9 of device a (offline, mounted behind relays), then back online: shows(root)
    must pass on a remounted a and, once that is synced, on a second device mounted
    from daemons (metad, blockd). Returns (a remounted, the second device)."""
    kill(a)
    online(relays)
    again = mount_behind(mounts, relays, "dev-a")
    shows(again.path)
    again.sync()
    b = mounts.mount(*daemons, "dev-b")
    shows(b.path)
    return again, b
