"""ApplyBatch over real gRPC: a journal of changes in one round trip and one transaction.

Real metad and blockd on 127.0.0.1 with real SQLite files; alice and bob are
plain users. Each operation must behave exactly as its own RPC (checks,
journal events, request ids), fail alone, and land with the others in one
commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import blake3
import grpc
import pytest

from fusefs.clients import AccountsClient
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc, metadata_pb2_grpc
from protos.drive.v1 import metadata_pb2 as pb
from tests import signin
from tests.metad_drive import subscribe
from tests.people import Person, add_person, people

TIMEOUT = 30.0
OK = grpc.StatusCode.OK.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]
ABORTED = grpc.StatusCode.ABORTED.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def stub(person: Person) -> metadata_pb2_grpc.MetadataStub:
    return metadata_pb2_grpc.MetadataStub(signin.channel(person.metad, person.token))


def op(request_id: str = "", **change) -> pb.BatchOperation:
    """One operation: op(make_directory=pb.MakeDirectoryRequest(...))."""
    return pb.BatchOperation(request_id=request_id, **change)


def apply(meta: metadata_pb2_grpc.MetadataStub, *operations: pb.BatchOperation) -> list:
    reply = meta.ApplyBatch(pb.ApplyBatchRequest(operations=operations), timeout=TIMEOUT)
    assert len(reply.results) == len(operations)
    return list(reply.results)


def codes(results: list) -> list[int]:
    return [r.code for r in results]


def reserve(meta: metadata_pb2_grpc.MetadataStub, count: int) -> range:
    reply = meta.ReserveNodeIds(pb.ReserveNodeIdsRequest(count=count), timeout=TIMEOUT)
    return range(reply.first, reply.first + reply.count)


def root_of(meta: metadata_pb2_grpc.MetadataStub) -> pb.Node:
    return meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)


def names(meta: metadata_pb2_grpc.MetadataStub, folder: int) -> list[str]:
    listed = meta.ListDirectory(pb.ListDirectoryRequest(node_id=folder), timeout=TIMEOUT)
    return sorted(e.name for e in listed.entries)


def mkdir(parent: int, name: str) -> pb.BatchOperation:
    return op(make_directory=pb.MakeDirectoryRequest(parent_id=parent, name=name, mode=0o755))


def commit(node_id: int, base: int, data: bytes, user_id: int, receipt: bytes = b"") -> dict:
    """A commit of data as one block, with a receipt as blockd gives (forged when not given)."""
    digest = blake3.blake3(data).digest()
    block = pb.BlockRef(
        hash=digest,
        offset=0,
        size=len(data),
        receipt=receipt or signin.receipt(digest, len(data), user_id),
    )
    return {
        "commit_revision": pb.CommitRevisionRequest(
            node_id=node_id, base_revision=base, size=len(data), blocks=[block], device="laptop"
        )
    }


def test_500_small_files_created_and_committed_in_one_batch(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    blocks = blocks_pb2_grpc.BlocksStub(signin.channel(alice.blockd, alice.token))
    folder = meta.MakeDirectory(
        pb.MakeDirectoryRequest(parent_id=root_of(meta).id, name="journal", mode=0o755),
        timeout=TIMEOUT,
    )
    contents = [f"small file {i}\n".encode() * (1 + i % 7) for i in range(500)]
    uploaded = blocks.Upload(
        (blocks_pb2.UploadRequest(hash=blake3.blake3(d).digest(), data=d) for d in contents),
        timeout=TIMEOUT,
    )
    receipts = {r.hash: r.mac for r in uploaded.receipts}
    ids = reserve(meta, 500)
    operations = []
    for i, data in enumerate(contents):
        create = pb.CreateFileRequest(
            parent_id=folder.id, name=f"f{i:03}", mode=0o644, node_id=ids[i], device="laptop"
        )
        operations.append(op(f"create-{i}", create_file=create))
        receipt = receipts[blake3.blake3(data).digest()]
        operations.append(op(f"commit-{i}", **commit(ids[i], 1, data, alice.id, receipt)))
    head = meta.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence
    with subscribe(meta, head) as subscription:
        started = time.perf_counter()
        results = apply(meta, *operations)
        took = time.perf_counter() - started
        assert codes(results) == [OK] * 1000, [r.message for r in results if r.code][:3]
        events = subscription.take(1000)
    print(f"\nApplyBatch: 500 creates + 500 commits in {took * 1000:.0f} ms")
    for i in range(500):
        created, committed = results[2 * i].node, results[2 * i + 1].node
        assert (created.id, created.name, created.revision) == (ids[i], f"f{i:03}", 1)
        assert (committed.id, committed.revision, committed.size) == (ids[i], 2, len(contents[i]))
    # The journal has every change, in the batch's order, without gap.
    assert [(e.kind, e.node_id) for e in events] == [
        (kind, ids[i])
        for i in range(500)
        for kind in (pb.CHANGE_KIND_CREATED, pb.CHANGE_KIND_EDITED)
    ]
    assert [e.sequence for e in events] == list(range(head + 1, head + 1001))
    assert {e.device for e in events} == {"laptop"}
    assert names(meta, folder.id) == [f"f{i:03}" for i in range(500)]
    for i in (0, 123, 499):  # the content is the uploaded one, read back from blockd
        assert alice.read(ids[i]) == contents[i]


def test_a_stale_commit_fails_alone_with_the_current_revision(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    file = meta.CreateFile(
        pb.CreateFileRequest(parent_id=root.id, name="doc", mode=0o644), timeout=TIMEOUT
    )
    meta.CommitRevision(
        pb.CommitRevisionRequest(node_id=file.id, base_revision=1, size=0), timeout=TIMEOUT
    )
    results = apply(
        meta,
        mkdir(root.id, "before"),
        op(**commit(file.id, 1, b"edited offline", alice.id)),  # the file is at 2 by now
        op(**commit(file.id, 2, b"edited online", alice.id)),
        mkdir(root.id, "after"),
    )
    assert codes(results) == [OK, ABORTED, OK, OK]
    stale = results[1]
    assert (stale.reason, stale.current_revision) == ("stale-revision", 2)
    assert "revision 2" in stale.message
    assert results[2].node.revision == 3
    assert names(meta, root.id) == ["after", "before", "doc"]


def test_a_rename_onto_a_taken_name_with_no_replace_fails_alone(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    for name in ("x", "y"):
        meta.CreateFile(
            pb.CreateFileRequest(parent_id=root.id, name=name, mode=0o644), timeout=TIMEOUT
        )
    rename = pb.RenameRequest(
        parent_id=root.id, name="x", new_parent_id=root.id, new_name="y", no_replace=True
    )
    move = pb.RenameRequest(parent_id=root.id, name="x", new_parent_id=root.id, new_name="z")
    results = apply(meta, op(rename=rename), mkdir(root.id, "d"), op(rename=move))
    assert codes(results) == [ALREADY_EXISTS, OK, OK]
    assert results[0].reason == "already-exists"
    assert results[2].rename.node.name == "z"
    assert names(meta, root.id) == ["d", "y", "z"]


def test_a_change_made_offline_never_touches_a_node_that_took_its_name_meanwhile(pair) -> None:
    """A device that deleted or moved node N offline sends N's id: another node that
    holds the name by then is left alone (NOT_FOUND for that operation only)."""
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    old = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="a", mode=0o644))
    meta.Delete(pb.DeleteRequest(parent_id=root.id, name="a"), timeout=TIMEOUT)
    newer = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="a", mode=0o644))
    delete = pb.DeleteRequest(parent_id=root.id, name="a", node_id=old.id)
    move = pb.RenameRequest(
        parent_id=root.id, name="a", new_parent_id=root.id, new_name="b", node_id=old.id
    )
    moved = pb.RenameRequest(
        parent_id=root.id, name="a", new_parent_id=root.id, new_name="c", node_id=newer.id
    )
    results = apply(meta, op(delete=delete), op(rename=move), op(rename=moved))
    assert codes(results) == [NOT_FOUND, NOT_FOUND, OK]
    assert names(meta, root.id) == ["c"]
    assert meta.Lookup(pb.LookupRequest(parent_id=root.id, name="c")).id == newer.id


def test_a_swap_made_offline_is_not_made_with_a_node_that_took_its_name_meanwhile(
    pair,
) -> None:
    """RENAME_EXCHANGE sent later with the node it meant at name: NOT_FOUND when another
    node holds the name by then (both stay where they are); made when it is still there."""
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    old = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="a", mode=0o644))
    other = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="b", mode=0o644))
    meta.Delete(pb.DeleteRequest(parent_id=root.id, name="a"), timeout=TIMEOUT)
    newer = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="a", mode=0o644))

    def swap(node_id: int) -> pb.BatchOperation:
        return op(
            rename=pb.RenameRequest(
                parent_id=root.id, name="a", new_parent_id=root.id, new_name="b",
                exchange=True, node_id=node_id,
            )
        )  # fmt: skip

    results = apply(meta, swap(old.id))
    assert codes(results) == [NOT_FOUND]
    lookup = meta.Lookup
    assert lookup(pb.LookupRequest(parent_id=root.id, name="a")).id == newer.id
    assert lookup(pb.LookupRequest(parent_id=root.id, name="b")).id == other.id
    results = apply(meta, swap(newer.id))
    assert codes(results) == [OK]
    assert lookup(pb.LookupRequest(parent_id=root.id, name="a")).id == other.id
    assert lookup(pb.LookupRequest(parent_id=root.id, name="b")).id == newer.id


def test_every_kind_of_operation_runs_as_its_rpc(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    ids = reserve(meta, 4)
    results = apply(
        meta,
        op(make_directory=pb.MakeDirectoryRequest(parent_id=root.id, name="d", node_id=ids[0])),
        op(create_file=pb.CreateFileRequest(parent_id=ids[0], name="f", node_id=ids[1])),
        op(create_symlink=pb.CreateSymlinkRequest(parent_id=ids[0], name="s", target="f")),
        op(make_node=pb.MakeNodeRequest(parent_id=ids[0], name="p", kind=pb.NODE_KIND_FIFO)),
        op(**commit(ids[1], 1, b"content", alice.id)),
        op(link=pb.LinkRequest(node_id=ids[1], new_parent_id=root.id, new_name="hard")),
        op(set_attributes=pb.SetAttributesRequest(node_id=ids[1], mode=0o600)),
        op(set_xattr=pb.SetXattrRequest(node_id=ids[1], name="user.a", value=b"1")),
        op(set_xattr=pb.SetXattrRequest(node_id=ids[1], name="user.b", value=b"2")),
        op(remove_xattr=pb.RemoveXattrRequest(node_id=ids[1], name="user.a")),
        op(
            rename=pb.RenameRequest(
                parent_id=ids[0], name="s", new_parent_id=ids[0], new_name="p", exchange=True
            )
        ),
        op(delete=pb.DeleteRequest(parent_id=root.id, name="hard")),
        op(make_node=pb.MakeNodeRequest(parent_id=ids[0], name="q", kind=pb.NODE_KIND_FILE)),
        op(),
    )
    assert codes(results) == [OK] * 12 + [INVALID_ARGUMENT] * 2, [r.message for r in results]
    assert [r.WhichOneof("value") for r in results[:12]] == ["node"] * 10 + ["rename", "delete"]
    assert results[4].node.size == 7 and results[5].node.nlink == 2
    assert results[6].node.mode == 0o600 and results[9].node.xattrs == 1
    assert results[10].rename.node.name == "p" and results[10].rename.replaced_remains
    assert (results[11].delete.node_id, results[11].delete.remains) == (ids[1], True)
    assert "names no change" in results[13].message
    assert names(meta, ids[0]) == ["f", "p", "s"]
    assert apply(meta) == []  # an empty batch is no transaction at all


def test_a_retried_batch_applies_nothing_twice(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    ids = reserve(meta, 1)
    create = pb.CreateFileRequest(parent_id=root.id, name="f", node_id=ids[0])
    move = pb.RenameRequest(parent_id=root.id, name="f", new_parent_id=root.id, new_name="g")
    batch = (
        op("r-mkdir", make_directory=pb.MakeDirectoryRequest(parent_id=root.id, name="d")),
        op("r-create", create_file=create),
        op("r-commit", **commit(ids[0], 1, b"v2", alice.id)),
        op("r-move", rename=move),
        op("r-gone", delete=pb.DeleteRequest(parent_id=root.id, name="nothing-here")),
    )
    first = apply(meta, *batch)
    assert codes(first) == [OK, OK, OK, OK, NOT_FOUND]
    head = meta.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence
    again = apply(meta, *batch)  # the reply was lost: the client sends it again
    assert again == first  # the same replies, byte for byte
    assert meta.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence == head
    assert names(meta, root.id) == ["d", "g"]
    revisions = meta.ListRevisions(pb.ListRevisionsRequest(node_id=ids[0]), timeout=TIMEOUT)
    assert [r.number for r in revisions.revisions] == [2]
    # An operation is its RPC: retried on its own it gets the same first reply...
    alone = pb.MakeDirectoryRequest(parent_id=root.id, name="d", request_id="r-mkdir")
    assert meta.MakeDirectory(alone, timeout=TIMEOUT) == first[0].node
    # ...and a change applied by its RPC is not applied again by a batch.
    single = pb.MakeDirectoryRequest(parent_id=root.id, name="e", request_id="r-single")
    made = meta.MakeDirectory(single, timeout=TIMEOUT)
    later = apply(
        meta,
        op("r-single", make_directory=pb.MakeDirectoryRequest(parent_id=root.id, name="e")),
        op("r-mkdir", make_directory=pb.MakeDirectoryRequest(parent_id=root.id, name="other")),
        op("r-x", make_directory=pb.MakeDirectoryRequest(parent_id=root.id, request_id="r-y")),
    )
    assert later[0].node == made
    assert (later[1].code, later[1].reason) == (INVALID_ARGUMENT, "request-id-reused")
    assert later[2].code == INVALID_ARGUMENT and "request_id" in later[2].message
    assert names(meta, root.id) == ["d", "e", "g"]


def test_nodes_the_caller_may_not_see_are_not_found_for_their_operation_only(pair) -> None:
    alice, bob = pair
    meta, other = stub(alice), stub(bob)
    bobs_root = root_of(other)
    secret = other.CreateFile(
        pb.CreateFileRequest(parent_id=bobs_root.id, name="secret", mode=0o600), timeout=TIMEOUT
    )
    root = root_of(meta)
    results = apply(
        meta,
        op(set_attributes=pb.SetAttributesRequest(node_id=secret.id, mode=0o777)),
        mkdir(root.id, "mine"),
        op(create_file=pb.CreateFileRequest(parent_id=bobs_root.id, name="planted")),
        op(**commit(secret.id, 1, b"overwritten", alice.id)),
        op(delete=pb.DeleteRequest(parent_id=bobs_root.id, name="secret")),
        op(set_xattr=pb.SetXattrRequest(node_id=secret.id, name="user.x", value=b"y")),
    )
    assert codes(results) == [NOT_FOUND, OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND]
    assert names(meta, root.id) == ["mine"]
    assert names(other, bobs_root.id) == ["secret"]
    untouched = other.Stat(pb.StatRequest(node_id=secret.id), timeout=TIMEOUT)
    assert (untouched.mode, untouched.revision, untouched.xattrs) == (0o600, 1, 0)


def test_a_batch_past_its_limits_is_refused_whole(pair) -> None:
    alice, _ = pair
    meta = stub(alice)
    root = root_of(meta)
    with pytest.raises(grpc.RpcError) as info:
        apply(meta, *(mkdir(root.id, f"d{i}") for i in range(1001)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1,000" in info.value.details()
    value = b"v" * 60_000  # 300 of them: past 16 MiB
    big = [
        op(set_xattr=pb.SetXattrRequest(node_id=root.id, name=f"user.{i}", value=value))
        for i in range(300)
    ]
    with pytest.raises(grpc.RpcError) as info:
        apply(meta, *big)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "16,777,216 bytes" in info.value.details()
    assert names(meta, root.id) == []
    assert len(apply(meta, *(mkdir(root.id, f"d{i}") for i in range(1000)))) == 1000
    stranger = metadata_pb2_grpc.MetadataStub(signin.channel(alice.metad, "not-a-token"))
    with pytest.raises(grpc.RpcError) as info:
        apply(stranger, mkdir(root.id, "intruder"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_quota_exceeded_mid_batch_fails_the_operations_that_need_space(drive) -> None:
    metad, blockd = drive
    carol = add_person(metad.address, blockd.address, "carol")
    try:
        accounts = AccountsClient(metad.address, signin.token)
        try:
            accounts.set_quota("carol", 100)
        finally:
            accounts.close()
        meta = stub(carol)
        root = root_of(meta)
        ids = reserve(meta, 4)
        creates = [
            op(create_file=pb.CreateFileRequest(parent_id=root.id, name=f"f{i}", node_id=ids[i]))
            for i in range(4)
        ]
        results = apply(
            meta,
            *creates,
            op(**commit(ids[0], 1, b"a" * 40, carol.id)),  # 40 of 100
            op(**commit(ids[1], 1, b"b" * 40, carol.id)),  # 80
            op(**commit(ids[2], 1, b"c" * 40, carol.id)),  # 120: over
            mkdir(root.id, "d"),  # needs no space
            op(**commit(ids[3], 1, b"d" * 30, carol.id)),  # 110: over
            op(**commit(ids[3], 1, b"e" * 20, carol.id)),  # 100: fits
            op(**commit(ids[0], 2, b"f" * 50, carol.id)),  # 110: over
        )
        over = RESOURCE_EXHAUSTED
        assert codes(results) == [OK, OK, OK, OK, OK, OK, over, OK, over, OK, over]
        assert results[6].reason == "quota-exceeded"
        usage = meta.GetUsage(pb.GetUsageRequest(), timeout=TIMEOUT)
        assert (usage.used_bytes, usage.quota_bytes) == (100, 100)
    finally:
        carol.close()
