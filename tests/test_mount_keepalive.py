"""A live change stream over a path that went silent: keepalive pings end it.

A metad SIGSTOPped keeps its socket accepting and answers nothing, as a
dead network path (no RST) looks: nothing else would ever end a quiet
Subscribe stream. The channel's unanswered keepalive ping must, so that the
mount learns it is offline and resumes the stream from its cursor once
metad answers again (here on SIGCONT; behind a real dead path, once the
path is back or another replica is reached).
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from fusefs.clients import MetadataClient
from fusefs.shared import PENDING_XATTR
from protos.runtime import KEEPALIVE_ENV
from tests import signin
from tests.offline import OFFLINE_LOGS, back_online
from tests.waiting import eventually

# Generous: what fails without keepalive is a stream that never ends (and the default
# interval, 10 s + 5 s, would end it too, only slower).
NOTICED_WITHIN = 60.0


def _online(mount) -> bool:
    """What the mount says of itself (answered from memory, asking metad nothing)."""
    return json.loads(os.getxattr(mount.path, PENDING_XATTR))["online"]


def test_a_stopped_metad_ends_the_change_stream_and_changes_arrive_after(
    daemons, mounts, block_store, tmp_path, allowed_log_patterns, monkeypatch: pytest.MonkeyPatch
):
    allowed_log_patterns += OFFLINE_LOGS
    # Daemons and the mount are started with it: the mount pings every second, and
    # metad accepts pings that often.
    monkeypatch.setenv(KEEPALIVE_ENV, "1")
    metad = daemons.start("metad", tmp_path / "metad")
    blockd = daemons.start("blockd", tmp_path / "blockd", extra_args=block_store.blockd_args)
    a = mounts.mount(metad, blockd, "dev-a")
    other = MetadataClient(metad.address, "dev-b", signin.token)
    try:
        root = other.root()
        other.make_directory(root.id, "before", 0o755)
        eventually(lambda: (a.path / "before").is_dir(), timeout=10)
        metad.process.send_signal(signal.SIGSTOP)
        try:
            # Nothing is asked of the mount: only its quiet stream can find metad gone.
            eventually(lambda: "stream interrupted" in a.log_path.read_text(), NOTICED_WITHIN)
            eventually(lambda: not _online(a), timeout=10)
        finally:
            metad.process.send_signal(signal.SIGCONT)
        back_online(a, timeout=20)
        other.make_directory(root.id, "after", 0o755)
        eventually(lambda: (a.path / "after").is_dir(), timeout=20)
    finally:
        other.close()
