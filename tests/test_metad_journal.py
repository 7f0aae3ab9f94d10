"""metad over real gRPC: the change journal stream (Subscribe), its cursor and its subscribers.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file, or PostgreSQL with
DRIVEFS_TEST_METADATA=postgresql; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log. The Drive helper and its
`drive` fixture: tests/metad_drive.py.
"""

from __future__ import annotations

import threading
import time

from fusefs.daemons import Daemon
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from tests.metad_drive import (
    DEVICE,
    TIMEOUT,
    Drive,
    drive_fixture,  # noqa: F401 - the fixture "drive"
    subscribe,
)

# -- the change journal ------------------------------------------------------------------------


def test_subscribe_delivers_each_change_with_its_fields(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    with subscribe(metadata_stub, 0) as events:
        before = time.time_ns()
        a = drive.mkdir(root.id, "a")
        b = drive.mkdir(root.id, "b")
        f = drive.create(a.id, "f")
        edited = drive.commit(f.id, 1, [10])
        victim = drive.symlink(b.id, "g", "x")  # (a file over a file would be a save)
        moved = drive.rename(a.id, "f", b.id, "g")
        drive.set_attributes(moved.node.id, mode=0o600)
        drive.delete(b.id, "g")
        after = time.time_ns()
        received = events.take(8)
        events.assert_quiet(0.2)

    assert [e.sequence for e in received] == list(range(1, 9))
    assert [e.kind for e in received] == [
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_EDITED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_MOVED,
        pb.CHANGE_KIND_ATTRIBUTES,
        pb.CHANGE_KIND_DELETED,
    ]
    for event in received:
        assert (event.actor_id, event.device) == (1, DEVICE)
        assert before <= event.time_ns <= after
    mkdir_a, _, create_f, edit_f, _, move_f, attrs_f, delete_f = received
    assert (mkdir_a.node_id, mkdir_a.node_kind, mkdir_a.parent_id, mkdir_a.name) == (
        a.id,
        pb.NODE_KIND_DIRECTORY,
        root.id,
        "a",
    )
    assert (create_f.node_id, create_f.node_kind, create_f.parent_id, create_f.name) == (
        f.id,
        pb.NODE_KIND_FILE,
        a.id,
        "f",
    )
    assert (edit_f.node_id, edit_f.revision, edit_f.parent_id, edit_f.name) == (f.id, 2, a.id, "f")
    assert edit_f.sequence == edited.change_sequence
    assert (move_f.node_id, move_f.parent_id, move_f.name) == (f.id, b.id, "g")
    assert (move_f.old_parent_id, move_f.old_name) == (a.id, "f")
    assert move_f.replaced_node_id == victim.id
    assert move_f.sequence == moved.node.change_sequence
    assert (attrs_f.node_id, attrs_f.parent_id, attrs_f.name) == (f.id, b.id, "g")
    assert (delete_f.node_id, delete_f.node_kind, delete_f.parent_id, delete_f.name) == (
        f.id,
        pb.NODE_KIND_FILE,
        b.id,
        "g",
    )
    assert (delete_f.old_parent_id, delete_f.old_name, delete_f.replaced_node_id) == (0, "", 0)


def test_subscribe_resumes_from_a_cursor_without_gap_or_duplicate(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    for i in range(30):
        drive.mkdir(root.id, f"d{i}")
    with subscribe(metadata_stub, 12) as events:
        backlog = events.take(18)
        assert [e.sequence for e in backlog] == list(range(13, 31))
        assert [e.name for e in backlog] == [f"d{i}" for i in range(12, 30)]
        events.assert_quiet(0.2)
        live = drive.mkdir(root.id, "live")
        event = events.next()
        assert (event.sequence, event.node_id, event.name) == (31, live.id, "live")
        events.assert_quiet(0.2)
    with subscribe(metadata_stub, 0) as events:
        assert [e.sequence for e in events.take(31)] == list(range(1, 32))
        events.assert_quiet(0.2)


def test_subscribe_from_beyond_the_end_waits(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    first = drive.mkdir(root.id, "first")  # sequence 1
    with subscribe(metadata_stub, first.change_sequence + 3) as events:
        for name in ("a", "b", "c"):  # sequences 2..4
            drive.mkdir(root.id, name)
        events.assert_quiet(0.3)
        drive.mkdir(root.id, "d")
        assert events.next().sequence == 5


def test_subscribing_from_the_journal_head_gets_only_future_changes(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    assert drive.journal_head() == 0
    root = drive.root()
    for name in ("a", "b", "c"):
        last = drive.mkdir(root.id, name)
    head = drive.journal_head()
    assert head == last.change_sequence == 3
    drive.set_attributes(root.id, mode=0o700)  # a change to the root is journaled too
    assert drive.journal_head() == 4
    with subscribe(metadata_stub, drive.journal_head()) as events:
        events.assert_quiet(0.2)
        d = drive.mkdir(root.id, "d")
        event = events.next()
        assert (event.sequence, event.node_id) == (5, d.id)
    assert drive.journal_head() == 5


def test_a_batched_subscription_gets_the_same_events_a_page_per_message(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    """batched: the backlog comes several events to a message, the same events in the
    same order as one per message; live changes come too."""
    root = drive.root()
    for i in range(30):
        drive.create(root.id, f"f{i}")
    with subscribe(metadata_stub, 0) as one_each:
        expected = one_each.take(30)
    call = metadata_stub.Subscribe(
        pb.SubscribeRequest(from_sequence=0, batched=True), timeout=TIMEOUT
    )
    try:
        messages, received = 0, []
        while len(received) < 30:
            message = next(call)
            messages += 1
            received += [message, *message.following]
        assert messages < 30
        assert all(not event.following for event in received[1:])
        flat = [pb.ChangeEvent(**{f.name: v for f, v in e.ListFields() if f.name != "following"})
                for e in received]  # fmt: skip
        assert flat == expected
        live = drive.create(root.id, "live")
        message = next(call)
        assert (message.name, message.node_id, len(message.following)) == ("live", live.id, 0)
    finally:
        call.cancel()


def test_concurrent_subscribers_each_get_everything(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    drive.mkdir(root.id, "before")
    writers, per_writer = 4, 25
    with subscribe(metadata_stub, 0) as one, subscribe(metadata_stub, 0) as two:

        def write(w: int) -> None:
            for i in range(per_writer):
                drive.create(root.id, f"w{w}-{i}")

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        total = 1 + writers * per_writer
        first, second = one.take(total), two.take(total)
        one.assert_quiet(0.2)
        two.assert_quiet(0.0)
    assert [e.sequence for e in first] == list(range(1, total + 1))
    assert first == second
    assert {e.name for e in first} == {"before"} | {
        f"w{w}-{i}" for w in range(writers) for i in range(per_writer)
    }


def test_stopping_metad_ends_open_subscriptions_cleanly(
    metad: Daemon, drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    drive.mkdir(drive.root().id, "x")
    with subscribe(metadata_stub, 0) as events:
        assert events.next().name == "x"
        assert metad.stop() == 0
        item = events.events.get(timeout=TIMEOUT)
        assert not isinstance(item, pb.ChangeEvent)
    # The fixture checks the log: no ERROR or Traceback at shutdown.
