"""Attacks through the real gRPC API: content by hash, oracles, lied sizes, bad input.

alice and bob are plain users; alice tries to reach what only bob has. Every
test talks to real daemons over sockets, so what is refused here is refused
to any client, whatever language it is written in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import blake3
import grpc
import pytest

from fusefs.clients import MetadataClient
from fusefs.models import BlockRef
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc, metadata_pb2_grpc
from protos.drive.v1 import metadata_pb2 as pb
from protos.runtime import ERROR_REASON_KEY, create_channel
from tests import signin
from tests.people import Person, people

TIMEOUT = 30
MiB = 1024 * 1024


def h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def _metadata(person: Person) -> metadata_pb2_grpc.MetadataStub:
    return metadata_pb2_grpc.MetadataStub(signin.channel(person.metad, person.token))


def _blocks(person: Person) -> blocks_pb2_grpc.BlocksStub:
    return blocks_pb2_grpc.BlocksStub(signin.channel(person.blockd, person.token))


def _refused(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    return info.value


def _reason(error: grpc.RpcError) -> str:
    return dict(error.trailing_metadata() or ()).get(ERROR_REASON_KEY, "")


def _commit_request(node: pb.Node, refs: list[tuple[bytes, int]], receipts=None):
    blocks, offset = [], 0
    for index, (digest, size) in enumerate(refs):
        receipt = receipts[index] if receipts else b""
        blocks.append(pb.BlockRef(hash=digest, offset=offset, size=size, receipt=receipt))
        offset += size
    return pb.CommitRevisionRequest(
        node_id=node.id, base_revision=node.revision, size=offset, blocks=blocks
    )


def test_alice_cannot_commit_bobs_hashes_and_read_his_file(pair, drive, daemons) -> None:
    alice, bob = pair
    secret = os.urandom(3 * MiB)
    bob_file = bob.write("secret.bin", secret[:MiB])  # one block of his file
    bob_refs = [(b.hash, b.size) for b in bob.meta.get_revision(bob_file.id).blocks]
    note = bob.write("note.txt", b"bob's pin is 4321")
    note_hash = bob.meta.get_revision(note.id).blocks[0].hash

    meta = _metadata(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    mine = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="mine"), timeout=TIMEOUT)
    attempts = [
        _commit_request(mine, bob_refs),  # his hashes with their true sizes
        _commit_request(mine, [(note_hash, 1)]),  # one hash and a lied size
        _commit_request(mine, [(note_hash, 17)], receipts=[os.urandom(16)]),  # forged receipt
        # bob's own receipt is his, not hers
        _commit_request(mine, [(note_hash, 17)], receipts=[signin.receipt(note_hash, 17, bob.id)]),
    ]
    for request in attempts:
        error = _refused(meta.CommitRevision, request)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert _reason(error) == "unproven-blocks"
    # Nothing was committed, so no grant exists that blockd would honour.
    assert meta.Stat(pb.StatRequest(node_id=mine.id), timeout=TIMEOUT).revision == mine.revision
    revision = meta.GetRevision(pb.GetRevisionRequest(node_id=mine.id), timeout=TIMEOUT)
    assert not revision.blocks

    # Proofs need no memory: a restarted blockd (and metad) refuse the same.
    metad, blockd = drive
    daemons.restart(blockd)
    daemons.restart(metad)
    meta = _metadata(alice)
    error = _refused(meta.CommitRevision, attempts[0])
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # And blockd tells her none of bob's blocks is held, for all she can prove.
    request = blocks_pb2.FindMissingRequest(hashes=[d for d, _ in bob_refs] + [note_hash])
    missing = _blocks(alice).FindMissing(request, timeout=TIMEOUT).missing
    assert list(missing) == [d for d, _ in bob_refs] + [note_hash]


def test_uploading_content_proves_it_and_storage_keeps_one_copy(pair, drive) -> None:
    alice, bob = pair
    _, blockd = drive
    data = os.urandom(200_000)
    bob.write("shared-content.bin", data)
    # alice has the same bytes: she uploads them, gets her receipt, commits.
    node = alice.write("my-copy.bin", data)
    assert alice.read(node.id) == data
    admin = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address))
    stats = admin.GetStats(blocks_pb2.GetStatsRequest(), timeout=TIMEOUT)
    assert stats.object_count == 1  # one stored copy for both users


def test_upload_answers_the_same_whether_or_not_someone_holds_the_content(
    pair, drive, tmp_path
) -> None:
    alice, bob = pair
    held, fresh = os.urandom(100_000), os.urandom(100_000)
    bob.write("held.bin", held)
    object_path = tmp_path / "blockd" / "blocks" / h(held).hex()[:2] / h(held).hex()
    before = os.stat(object_path)

    stub = _blocks(alice)
    replies = {}
    for name, data in (("held", held), ("fresh", fresh)):
        reply = stub.Upload(
            iter([blocks_pb2.UploadRequest(hash=h(data), data=data)]), timeout=TIMEOUT
        )
        replies[name] = reply
    for reply, data in ((replies["held"], held), (replies["fresh"], fresh)):
        assert (reply.blocks_received, reply.blocks_stored) == (1, 1)
        assert (reply.bytes_received, reply.bytes_stored) == (len(data), len(data))
        (receipt,) = reply.receipts
        assert (receipt.hash, receipt.size) == (h(data), len(data))
        assert receipt.mac == signin.receipt(h(data), len(data), alice.id)
    # Same work for both: the held object was written again (a new file in its place).
    after = os.stat(object_path)
    assert after.st_ino != before.st_ino


def test_sizes_and_counts_are_checked(pair, drive) -> None:
    alice, _ = pair
    meta = _metadata(alice)
    usage = meta.GetUsage(pb.GetUsageRequest(), timeout=TIMEOUT)
    data = b"thirty-five bytes of real content!!"
    node = alice.write("small.txt", data)
    digest, receipt = h(data), alice.blocks.grants.receipt(h(data), len(data))
    assert receipt
    cases = [
        # A 35-byte block claimed as 9 GiB: past the block limit.
        (_commit_request(node, [(digest, 9 * 1024**3)], [receipt]), "INVALID_ARGUMENT"),
        # Its true receipt, but another size: the receipt does not vouch for it.
        (_commit_request(node, [(digest, 36)], [receipt]), "PERMISSION_DENIED"),
        # A size that would overflow every sum.
        (
            pb.CommitRevisionRequest(
                node_id=node.id,
                base_revision=node.revision,
                size=2**63 - 1,
                blocks=[pb.BlockRef(hash=digest, offset=0, size=2**63 - 1, receipt=receipt)],
            ),
            "RESOURCE_EXHAUSTED",
        ),
        # Offsets that do not tile the file.
        (
            pb.CommitRevisionRequest(
                node_id=node.id,
                base_revision=node.revision,
                size=70,
                blocks=[
                    pb.BlockRef(hash=digest, offset=0, size=35, receipt=receipt),
                    pb.BlockRef(hash=digest, offset=40, size=35, receipt=receipt),
                ],
            ),
            "INVALID_ARGUMENT",
        ),
    ]
    for request, code in cases:
        assert _refused(meta.CommitRevision, request).code().name == code
    # Too many blocks: refused before anything is looked at.
    many = [(os.urandom(32), 1) for _ in range(600_000)]
    started = time.monotonic()
    error = _refused(meta.CommitRevision, _commit_request(node, many))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "524288" in error.details()
    # Made-up blocks within the count: refused at the first one.
    made_up = many[:500_000]
    error = _refused(meta.CommitRevision, _commit_request(node, made_up))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert time.monotonic() - started < TIMEOUT
    # Nothing broke: usage still adds up, the file is as it was.
    after = meta.GetUsage(pb.GetUsageRequest(), timeout=TIMEOUT)
    assert after.used_bytes == usage.used_bytes + len(data)
    assert alice.read(node.id) == data


@pytest.mark.parametrize("daemon", ["metad", "blockd"])
def test_malformed_requests_are_invalid_argument_without_a_traceback(drive, daemon) -> None:
    metad, blockd = drive
    address = metad.address if daemon == "metad" else blockd.address
    channel = signin.channel(address)
    garbage = b"\xff\xff\xff\xff\x0f"
    method = "/drive.v1.Metadata/Stat" if daemon == "metad" else "/drive.v1.Blocks/FindMissing"
    call = channel.unary_unary(method)
    with pytest.raises(grpc.RpcError) as info:
        call(garbage, timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed" in info.value.details()
    if daemon == "blockd":
        upload = channel.stream_unary("/drive.v1.Blocks/Upload")
        with pytest.raises(grpc.RpcError) as info:
            upload(iter([garbage]), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The daemon logs no traceback (the fixture checks the log) and still serves.
    assert signin.metadata_client(metad.address).root().id > 0


def test_condemned_blocks_are_told_only_to_admins_and_receipt_holders(pair) -> None:
    alice, bob = pair
    bob.write("x.bin", b"some content of bob")
    digest = h(b"some content of bob")
    meta = _metadata(alice)
    error = _refused(meta.ListCondemnedBlocks, pb.ListCondemnedBlocksRequest(hashes=[digest]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    no_receipt = pb.ListCondemnedBlocksRequest(blocks=[pb.BlockRef(hash=digest, size=19)])
    assert (
        _refused(meta.ListCondemnedBlocks, no_receipt).code() == grpc.StatusCode.PERMISSION_DENIED
    )
    # With a receipt of her own (she uploaded those bytes), she may ask.
    alice.write("y.bin", b"some content of bob")
    receipt = alice.blocks.grants.receipt(digest, 19)
    mine = pb.ListCondemnedBlocksRequest(
        blocks=[pb.BlockRef(hash=digest, size=19, receipt=receipt)]
    )
    assert list(meta.ListCondemnedBlocks(mine, timeout=TIMEOUT).hashes) == []
    admin = metadata_pb2_grpc.MetadataStub(signin.channel(alice.metad))
    everything = admin.ListCondemnedBlocks(pb.ListCondemnedBlocksRequest(), timeout=TIMEOUT)
    assert list(everything.hashes) == []


# --- retries -------------------------------------------------------------------------------


class _Lost(grpc.RpcError, grpc.Call):
    """What the client sees when a reply is lost on its way back."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection reset (the reply was lost)"

    def trailing_metadata(self):
        return ()

    def initial_metadata(self):
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self):
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback) -> bool:
        return False


class LoseFirstReply(grpc.UnaryUnaryClientInterceptor):
    """Lets the first call of each named method reach metad, then loses its reply."""

    def __init__(self, *methods: str) -> None:
        self.pending = set(methods)
        self.lost: list[str] = []

    def intercept_unary_unary(self, continuation, details, request):
        outcome = continuation(details, request)
        name = details.method.rsplit("/", 1)[-1]
        if name in self.pending:
            outcome.result()  # metad applied it
            self.pending.discard(name)
            self.lost.append(name)
            raise _Lost()
        return outcome


def test_a_change_whose_reply_was_lost_is_applied_once(pair) -> None:
    alice, _ = pair
    losing = LoseFirstReply("CreateFile", "CommitRevision", "Rename", "MakeDirectory")
    meta = MetadataClient(
        alice.metad, "flaky-laptop", lambda: alice.token, alice.blocks.grants, interceptors=[losing]
    )
    try:
        root = meta.root()
        folder = meta.make_directory(root.id, "docs", 0o755)
        node = meta.create_file(folder.id, "plan.txt", 0o644)  # no ALREADY_EXISTS on the retry
        data = b"the plan, first version"
        digest = h(data)
        alice.blocks.upload(lambda: [(digest, data)])
        committed = meta.commit_revision(
            node.id, node.revision, len(data), time.time_ns(), [BlockRef(digest, 0, len(data))]
        )  # no stale revision, so no conflicted copy, on the retry
        moved = meta.rename(folder.id, "plan.txt", folder.id, "plan-v1.txt", False).node
    finally:
        meta.close()
    assert sorted(losing.lost) == ["CommitRevision", "CreateFile", "MakeDirectory", "Rename"]
    assert committed.revision == node.revision + 1
    assert moved.id == node.id
    entries, _ = alice.meta.list_directory(folder.id)
    assert [e.name for e in entries] == ["plan-v1.txt"]  # one file, no conflicted copy
    # One revision: the commit (the empty revision 1 gives way to the first content).
    assert [r.number for r in alice.meta.list_revisions(node.id)] == [2]
    assert alice.read(node.id) == data


def test_a_request_id_reused_for_another_change_is_refused(pair) -> None:
    alice, _ = pair
    meta = _metadata(alice)
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    first = pb.MakeDirectoryRequest(parent_id=root.id, name="a", request_id="same-id")
    made = meta.MakeDirectory(first, timeout=TIMEOUT)
    assert meta.MakeDirectory(first, timeout=TIMEOUT).id == made.id  # a retry: the same answer
    other = pb.MakeDirectoryRequest(parent_id=root.id, name="b", request_id="same-id")
    error = _refused(meta.MakeDirectory, other)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(error) == "request-id-reused"
    too_long = pb.MakeDirectoryRequest(parent_id=root.id, name="c", request_id="x" * 200)
    assert _refused(meta.MakeDirectory, too_long).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_plain_channel_without_token_gets_nothing(drive) -> None:
    metad, _ = drive
    stub = metadata_pb2_grpc.MetadataStub(create_channel(metad.address))
    error = _refused(stub.GetRoot, pb.GetRootRequest())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_maintenance_calls_are_for_administrators_and_the_daemons(pair, drive) -> None:
    alice, _ = pair
    meta = _metadata(alice)
    digest = h(b"anything")
    for call, request in (
        (meta.ListBlockReferences, pb.ListBlockReferencesRequest(hashes=[digest])),
        (meta.ReportDamagedBlocks, pb.ReportDamagedBlocksRequest(hashes=[digest])),
        (meta.ListReferencedBlocks, pb.ListReferencedBlocksRequest()),
        (meta.CondemnBlocks, pb.CondemnBlocksRequest(hashes=[digest])),
    ):
        assert _refused(call, request).code() == grpc.StatusCode.PERMISSION_DENIED
    # Revocations are for blockd alone: not even an administrator's token will do.
    for token in (alice.token, signin.token()):
        stub = metadata_pb2_grpc.MetadataStub(signin.channel(alice.metad, token))
        with pytest.raises(grpc.RpcError) as info:
            list(stub.WatchRevocations(pb.WatchRevocationsRequest(), timeout=TIMEOUT))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nor can a user pass off another user's receipt at blockd.
    bob_receipt = blocks_pb2.Receipt(hash=digest, size=8, mac=signin.receipt(digest, 8, 99))
    request = blocks_pb2.FindMissingRequest(hashes=[digest], receipts=[bob_receipt])
    assert list(_blocks(alice).FindMissing(request, timeout=TIMEOUT).missing) == [digest]


def test_long_hash_lists_are_bounded_and_the_client_splits_them(pair) -> None:
    alice, _ = pair
    hashes = [os.urandom(32) for _ in range(150_000)]
    request = blocks_pb2.FindMissingRequest(hashes=hashes)
    error = _refused(_blocks(alice).FindMissing, request)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "100000" in error.details()
    # The client asks in batches the daemon accepts (a file of ~150 GB has that many).
    assert alice.blocks.find_missing(hashes) == set(hashes)
