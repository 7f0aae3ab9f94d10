"""metad over real gRPC: durability across restarts and SIGKILL, startup refusals, the RPC contract.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file, or PostgreSQL with
DRIVEFS_TEST_METADATA=postgresql; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log. The Drive helper and its
`drive` fixture: tests/metad_drive.py.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from fusefs.daemons import Daemon, DaemonError
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from tests.metad_drive import (
    NOT_FOUND,
    TIMEOUT,
    Drive,
    connect,
    drive_fixture,  # noqa: F401 - the fixture "drive"
    expect_error,
    subscribe,
)

# -- durability and startup --------------------------------------------------------------------


def test_data_survives_a_restart(metad: Daemon, daemons, drive: Drive) -> None:
    root = drive.root()
    d = drive.mkdir(root.id, "d")
    f = drive.create(d.id, "f")
    drive.commit(f.id, 1, [7, 8])
    drive.delete(d.id, "f")
    g = drive.create(d.id, "f")
    assert metad.stop() == 0

    restarted = daemons.start("metad", metad.log_path.parent)
    with connect(restarted) as again:
        assert again.root().id == root.id
        assert again.lookup(root.id, "d").id == d.id
        assert again.lookup(d.id, "f").id == g.id
        expect_error(NOT_FOUND, "not-found", again.stat, f.id)
        # The journal continues where it was, and ids are not reused.
        h2 = again.create(d.id, "h")
        assert h2.id > g.id
        assert h2.change_sequence == g.change_sequence + 1
        with subscribe(again.stub, 0) as events:
            assert [e.sequence for e in events.take(h2.change_sequence)] == list(
                range(1, h2.change_sequence + 1)
            )


def test_every_returned_commit_survives_sigkill(metad: Daemon, daemons, drive: Drive) -> None:
    root = drive.root()
    acknowledged: list[tuple[int, int]] = []  # (node id, revision) whose RPC returned
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                file = drive.create(root.id, f"f{i}")
                acknowledged.append((file.id, 1))
                committed = drive.commit(file.id, 1, [100 + i])
                acknowledged.append((file.id, committed.revision))
                i += 1
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 40:
        time.sleep(0.01)
    metad.kill()
    stop.set()
    thread.join(TIMEOUT)
    assert not failures

    restarted = daemons.start("metad", metad.log_path.parent)
    with connect(restarted) as again:
        for node_id, revision in acknowledged:
            assert again.stat(node_id).revision >= revision
        # The last change acknowledged may have been followed by one applied whose
        # reply was lost (a first commit replaces the empty revision 1): read what is.
        last_node, _ = acknowledged[-1]
        current = again.stat(last_node).revision
        assert again.revision(last_node, current).number == current


def run_metad(data: Path, listen: str = "127.0.0.1:0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metad", "--data", str(data), "--listen", listen],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("metad: error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]
    assert result.stderr.splitlines()[-1] == errors[0]


def test_a_second_metad_on_a_taken_port_exits_2(metad: Daemon, daemons, tmp_path: Path) -> None:
    with pytest.raises(DaemonError) as info:
        daemons.start("metad", tmp_path / "second", listen=metad.address)
    assert str(info.value).startswith(f"metad: error: cannot listen on {metad.address}")
    assert_one_error_line(run_metad(tmp_path / "third", metad.address), "cannot listen on")


@pytest.mark.skipif(
    os.environ.get("DRIVEFS_TEST_METADATA") == "postgresql",
    reason="about a SQLite file; test_metad_postgres.py refuses a newer PostgreSQL database",
)
def test_a_database_from_a_newer_metad_is_refused(daemons, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(data / "metadata.db")) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DaemonError, match=r"^metad: error: .*schema version 99"):
        daemons.start("metad", data)
    assert_one_error_line(run_metad(data), "schema version 99")


def test_unusable_data_directories_are_refused(metad: Daemon, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert_one_error_line(run_metad(not_a_dir), "cannot create data directory")
    # A second metad on the same data directory would not wake the first one's subscribers.
    assert_one_error_line(run_metad(metad.log_path.parent), "in use by another metad")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "ro"
    data.mkdir(mode=0o500)
    assert_one_error_line(run_metad(data), "not writable")


def test_bad_command_lines_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "metad", "--data", "/tmp/x", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "not a HOST:PORT address" in result.stderr


def test_every_rpc_of_the_contract_is_implemented() -> None:
    from metad.service import MetadataService

    service = pb.DESCRIPTOR.services_by_name["Metadata"]
    missing = [
        method.name
        for method in service.methods
        if getattr(MetadataService, method.name)
        is getattr(metadata_pb2_grpc.MetadataServicer, method.name)
    ]
    assert not missing
