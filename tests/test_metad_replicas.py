"""Two metad replicas on one PostgreSQL database, over real gRPC.

What several replicas must keep as one metad does: a name is taken once, a
base revision is built on once, and every subscriber, on either replica, sees
every change exactly once and in journal order, however the writers' commits
interleave; a commit made through one replica reaches a subscriber on the
other within a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest

from fusefs.clients import AccountsClient
from fusefs.daemons import Daemon
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from tests import signin
from tests.conftest import assert_log_clean
from tests.metad_drive import Drive, connect, subscribe
from tests.running import drive_cli

pytestmark = pytest.mark.postgresql

WRITERS_PER_REPLICA = 3
CREATES_PER_WRITER = 15
SUBSCRIBERS_PER_REPLICA = 2


@pytest.fixture
def replicas(daemons, tmp_path: Path, pg_database: str) -> tuple[Daemon, Daemon]:
    """Two metad on one database: each its own data directory, one auth key (conftest's)."""
    args = ["--database", pg_database]
    first = daemons.start("metad", tmp_path / "a", extra_args=args)
    second = daemons.start("metad", tmp_path / "b", extra_args=args)
    return first, second


@pytest.fixture
def drives(replicas: tuple[Daemon, Daemon]) -> Iterator[tuple[Drive, Drive]]:
    with connect(replicas[0]) as a, connect(replicas[1]) as b:
        yield a, b


def _outcome(call) -> pb.Node | grpc.StatusCode:
    try:
        return call()
    except grpc.RpcError as exc:
        return exc.code()


def test_a_subscriber_on_one_replica_sees_a_commit_made_through_the_other_within_a_second(
    drives: tuple[Drive, Drive],
) -> None:
    a, b = drives
    root = a.root()
    with subscribe(a.stub, a.journal_head()) as on_a, subscribe(b.stub, b.journal_head()) as on_b:
        made = b.mkdir(root.id, "from-b")
        assert on_a.next(timeout=1.0).node_id == made.id
        assert on_b.next().node_id == made.id
        made = a.mkdir(root.id, "from-a")
        assert on_b.next(timeout=1.0).node_id == made.id
        assert on_a.next().node_id == made.id
        # Both replicas read one tree.
        assert b.lookup(root.id, "from-a").id == a.lookup(root.id, "from-a").id


def test_concurrent_writers_on_two_replicas_keep_names_revisions_and_one_journal_order(
    drives: tuple[Drive, Drive],
) -> None:
    a, b = drives
    root = a.root()
    contested = a.create(root.id, "contested")  # revision 1
    start = a.journal_head()
    subscriptions = [
        subscribe(drive.stub, start) for drive in (a, b) for _ in range(SUBSCRIBERS_PER_REPLICA)
    ]
    streams = [s.__enter__() for s in subscriptions]
    try:
        go = threading.Barrier(2 * WRITERS_PER_REPLICA)

        def writer(drive: Drive, number: int) -> tuple[list[int], object, object]:
            go.wait()
            made = [drive.mkdir(root.id, f"w{number}-{i}").id for i in range(CREATES_PER_WRITER)]
            # Every writer tries the same name, and to build on the same revision.
            name = _outcome(lambda: drive.mkdir(root.id, "everyone"))
            edit = _outcome(lambda: drive.commit(contested.id, 1, [10], first_hash=number + 1))
            return made, name, edit

        with ThreadPoolExecutor(2 * WRITERS_PER_REPLICA) as pool:
            results = list(
                pool.map(
                    lambda n: writer((a, b)[n % 2], n),
                    range(2 * WRITERS_PER_REPLICA),
                )
            )
        created = {node for made, _, _ in results for node in made}
        names = [name for _, name, _ in results]
        edits = [edit for _, _, edit in results]
        won_name = [n for n in names if isinstance(n, pb.Node)]
        won_edit = [e for e in edits if isinstance(e, pb.Node)]
        assert len(won_name) == 1, names
        assert {n for n in names if not isinstance(n, pb.Node)} == {grpc.StatusCode.ALREADY_EXISTS}
        assert len(won_edit) == 1 and won_edit[0].revision == 2, edits
        assert all(e == grpc.StatusCode.ABORTED or isinstance(e, pb.Node) for e in edits), edits
        expected = len(created) + 2  # each directory, the one "everyone", the one edit
        assert len(created) == 2 * WRITERS_PER_REPLICA * CREATES_PER_WRITER
        head = a.journal_head()
        assert b.journal_head() == head

        seen = []
        for stream in streams:
            events = stream.take(expected)
            sequences = [e.sequence for e in events]
            assert sequences == sorted(set(sequences)), "out of order or twice"
            assert sequences[-1] == head
            assert {e.node_id for e in events if e.kind == pb.CHANGE_KIND_CREATED} == created | {
                won_name[0].id
            }
            stream.assert_quiet(0.2)
            seen.append(sequences)
        assert all(sequences == seen[0] for sequences in seen)  # one order for everyone
    finally:
        for subscription in subscriptions:
            subscription.__exit__(None, None, None)


def test_an_account_disabled_through_one_replica_is_refused_by_the_other(
    replicas: tuple[Daemon, Daemon],
) -> None:
    a, b = replicas
    admin_a = AccountsClient(a.address, signin.token)
    admin_b = AccountsClient(b.address, signin.token)
    try:
        carol = admin_a.create_user("carol", "carol's long password")
        token = admin_a.sign_in("carol", "carol's long password").token
        assert _root_status(a, token) == grpc.StatusCode.OK
        admin_b.set_disabled("carol", True)
        assert _root_status(b, token) == grpc.StatusCode.UNAUTHENTICATED  # at once
        _eventually(lambda: _root_status(a, token) == grpc.StatusCode.UNAUTHENTICATED)
        admin_b.set_disabled("carol", False)
        assert carol.name == "carol"
    finally:
        admin_a.close()
        admin_b.close()


def _root_status(daemon: Daemon, token: str) -> grpc.StatusCode:
    with signin.channel(daemon.address, token) as channel:
        try:
            metadata_pb2_grpc.MetadataStub(channel).GetRoot(pb.GetRootRequest(), timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _eventually(check, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_drive_serve_keeps_the_metadata_in_the_postgresql_database_it_is_given(
    tmp_path: Path, pg_database: str
) -> None:
    data = tmp_path / "data"
    started = drive_cli(
        "serve", "--data", str(data), "--background", "--metadata", pg_database,
        "--metad", "127.0.0.1:0", "--blockd", "127.0.0.1:0",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
    finally:
        stopped = drive_cli("stop", "--data", str(data))
    assert stopped.returncode == 0, stopped.stderr
    assert not (data / "metad" / "metadata.db").exists()
    with psycopg.connect(pg_database) as conn:
        (users,) = conn.execute("SELECT COUNT(*) FROM users").fetchone()
    assert users == 1  # the drive's first user, made at the first start
    assert_log_clean(data / "metad" / "metad.log", [])


def test_replicas_tell_clients_one_drive_id(replicas: tuple[Daemon, Daemon]) -> None:
    ids = []
    for daemon in replicas:
        client = AccountsClient(daemon.address)
        try:
            ids.append(client.drive_info().drive_id)
        finally:
            client.close()
        # The drive command on a replica's machine reads it there.
        assert daemon.data_dir is not None
        assert (daemon.data_dir / "drive.id").read_text().strip() == ids[-1]
    assert ids[0] == ids[1] and len(ids[0]) == 32
