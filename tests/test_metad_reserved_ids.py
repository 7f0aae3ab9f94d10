"""Reserved node ids over real gRPC: a device names nodes before metad sees them.

alice and bob are plain users of a real metad (and blockd) on 127.0.0.1 with
a real SQLite file. A reserved id makes exactly one node, only for the user
it was reserved to; ordinary creates never land in a reserved range, and a
reservation outlives a restart.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from protos.runtime import ERROR_REASON_KEY
from tests import signin
from tests.people import Person, people

TIMEOUT = 10.0
NOT_RESERVED = "node-id-not-reserved"


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def stub(person: Person) -> metadata_pb2_grpc.MetadataStub:
    return metadata_pb2_grpc.MetadataStub(signin.channel(person.metad, person.token))


def reserve(meta: metadata_pb2_grpc.MetadataStub, count: int, request_id: str = "") -> range:
    request = pb.ReserveNodeIdsRequest(count=count, request_id=request_id)
    reply = meta.ReserveNodeIds(request, timeout=TIMEOUT)
    assert reply.count == count
    return range(reply.first, reply.first + reply.count)


def refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    return info.value


def reason(error: grpc.RpcError) -> str:
    return dict(error.trailing_metadata() or ()).get(ERROR_REASON_KEY, "")


def assert_not_reserved(call, request) -> None:
    error = refused(call, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert reason(error) == NOT_RESERVED
    assert "node id not reserved to you" in error.details()


def test_each_kind_of_node_can_be_made_with_a_reserved_id(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    ids = reserve(meta, 10)
    folder = meta.MakeDirectory(
        pb.MakeDirectoryRequest(parent_id=root.id, name="offline", mode=0o755, node_id=ids[0]),
        timeout=TIMEOUT,
    )
    file = meta.CreateFile(
        pb.CreateFileRequest(parent_id=folder.id, name="a.txt", mode=0o644, node_id=ids[1]),
        timeout=TIMEOUT,
    )
    link = meta.CreateSymlink(
        pb.CreateSymlinkRequest(parent_id=folder.id, name="l", target="a.txt", node_id=ids[2]),
        timeout=TIMEOUT,
    )
    fifo = meta.MakeNode(
        pb.MakeNodeRequest(
            parent_id=folder.id, name="p", kind=pb.NODE_KIND_FIFO, mode=0o600, node_id=ids[9]
        ),
        timeout=TIMEOUT,
    )
    assert [folder.id, file.id, link.id, fifo.id] == [ids[0], ids[1], ids[2], ids[9]]
    assert (file.revision, file.owner_id, file.parent_id) == (1, alice.id, ids[0])
    looked_up = meta.Lookup(pb.LookupRequest(parent_id=ids[0], name="a.txt"), timeout=TIMEOUT)
    assert looked_up.id == ids[1]
    listed = meta.ListDirectory(pb.ListDirectoryRequest(node_id=ids[0]), timeout=TIMEOUT)
    assert [e.id for e in listed.entries] == [ids[1], ids[2], ids[9]]


def test_a_node_made_in_a_journal_is_born_when_the_device_made_it(pair) -> None:
    # A device shows a node it made offline with the time it made it: metad keeps that
    # as the node's ctime and moves the folder's times to it (never back, never ahead).
    alice, _ = pair
    meta = stub(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    ids = reserve(meta, 3)
    folder = meta.MakeDirectory(
        pb.MakeDirectoryRequest(parent_id=root.id, name="trip", mode=0o755), timeout=TIMEOUT
    )
    made_at = folder.mtime_ns - 10**12  # offline, well before it arrives
    file = meta.CreateFile(
        pb.CreateFileRequest(
            parent_id=folder.id, name="old.txt", mode=0o644, node_id=ids[0], mtime_ns=made_at
        ),
        timeout=TIMEOUT,
    )
    assert (file.mtime_ns, file.ctime_ns) == (made_at, made_at)
    folder_after = meta.Stat(pb.StatRequest(node_id=folder.id), timeout=TIMEOUT)
    assert folder_after.mtime_ns == folder.mtime_ns  # later already: not moved back
    later = folder.mtime_ns + 1  # after the folder's last change, before now
    meta.CreateFile(
        pb.CreateFileRequest(
            parent_id=folder.id, name="new.txt", mode=0o644, node_id=ids[1], mtime_ns=later
        ),
        timeout=TIMEOUT,
    )
    folder_after = meta.Stat(pb.StatRequest(node_id=folder.id), timeout=TIMEOUT)
    assert (folder_after.mtime_ns, folder_after.ctime_ns) == (later, later)
    future = meta.CreateFile(
        pb.CreateFileRequest(
            parent_id=folder.id, name="ahead.txt", mode=0o644, node_id=ids[2], mtime_ns=2**62
        ),
        timeout=TIMEOUT,
    )
    assert future.ctime_ns < 2**62  # a clock ahead of the server's does not set times ahead
    folder_after = meta.Stat(pb.StatRequest(node_id=folder.id), timeout=TIMEOUT)
    assert folder_after.mtime_ns < 2**62


def test_ids_not_reserved_to_the_caller_are_refused(pair) -> None:
    alice, bob = pair
    meta, other = stub(alice), stub(bob)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    bobs_root = other.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    ids = reserve(meta, 5)
    bobs = reserve(other, 5)

    def create(name: str, node_id: int, parent: int = root.id) -> pb.CreateFileRequest:
        return pb.CreateFileRequest(parent_id=parent, name=name, mode=0o644, node_id=node_id)

    # Outside any reservation: below, just past, far past, nonsense.
    for node_id in (ids[0] - 1, ids[-1] + 1, bobs[-1] + 1, 2**62, 0, -3, root.id):
        assert_not_reserved(meta.CreateFile, create(f"x{node_id}", node_id))
    # Another user's reservation: bob's ids are his alone, even in his own folder.
    assert_not_reserved(meta.CreateFile, create("theirs", bobs[0]))
    assert_not_reserved(other.CreateFile, create("mine", ids[0], bobs_root.id))
    # Used already: an id makes one node.
    made = meta.CreateFile(create("first", ids[0]), timeout=TIMEOUT)
    assert made.id == ids[0]
    assert_not_reserved(meta.CreateFile, create("again", ids[0]))
    assert_not_reserved(
        meta.MakeDirectory,
        pb.MakeDirectoryRequest(parent_id=root.id, name="d", mode=0o755, node_id=ids[0]),
    )
    # The id of a deleted node stays used: ids are never reused.
    meta.Delete(pb.DeleteRequest(parent_id=root.id, name="first"), timeout=TIMEOUT)
    assert_not_reserved(meta.CreateFile, create("first", ids[0]))
    # Nothing refused left a node behind; the rest of the range still works.
    listed = meta.ListDirectory(pb.ListDirectoryRequest(node_id=root.id), timeout=TIMEOUT)
    assert list(listed.entries) == []
    assert meta.CreateFile(create("later", ids[4]), timeout=TIMEOUT).id == ids[4]
    assert other.CreateFile(create("bobs", bobs[1], bobs_root.id), timeout=TIMEOUT).id == bobs[1]


def test_ordinary_creates_never_land_in_a_reserved_range(pair) -> None:
    alice, bob = pair
    meta, other = stub(alice), stub(bob)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    before = meta.CreateFile(
        pb.CreateFileRequest(parent_id=root.id, name="before", mode=0o644), timeout=TIMEOUT
    )
    first = reserve(meta, 1000)
    second = reserve(other, 1000)
    assert before.id < first[0] and first[-1] < second[0]  # ranges never overlap
    made = [
        meta.CreateFile(
            pb.CreateFileRequest(parent_id=root.id, name=f"after{i}", mode=0o644), timeout=TIMEOUT
        ).id
        for i in range(20)
    ]
    assert all(node_id > second[-1] for node_id in made), made
    assert made == sorted(made)


def test_a_reservation_survives_a_restart(pair, drive, daemons) -> None:
    alice, _ = pair
    metad, _ = drive
    ids = reserve(stub(alice), 100)
    daemons.restart(metad)
    meta = stub(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    made = meta.CreateFile(
        pb.CreateFileRequest(parent_id=root.id, name="kept", mode=0o644, node_id=ids[50]),
        timeout=TIMEOUT,
    )
    assert made.id == ids[50]
    ordinary = meta.CreateFile(
        pb.CreateFileRequest(parent_id=root.id, name="next", mode=0o644), timeout=TIMEOUT
    )
    assert ordinary.id > ids[-1]
    assert reserve(meta, 1)[0] > ordinary.id


def test_a_reservation_is_bounded(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    for count in (0, -1, 1_000_001):
        error = refused(meta.ReserveNodeIds, pb.ReserveNodeIdsRequest(count=count))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "1,000,000" in error.details()
    assert len(reserve(meta, 1_000_000)) == 1_000_000


def test_retries_get_the_first_reply(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    ids = reserve(meta, 3, request_id="reserve-1")
    assert reserve(meta, 3, request_id="reserve-1") == ids  # the same range, not a new one
    request = pb.CreateFileRequest(
        parent_id=root.id, name="once", mode=0o644, node_id=ids[1], request_id="create-1"
    )
    made = meta.CreateFile(request, timeout=TIMEOUT)
    assert meta.CreateFile(request, timeout=TIMEOUT) == made  # not "already used"
    assert reserve(meta, 1)[0] > ids[-1]
