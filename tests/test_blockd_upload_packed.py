"""UploadPacked end to end: several blocks per message, each one checked, written and
receipted as Upload does it; a pack over the limits or lying inside is refused as a
single bad block would be; the mount's client packs small blocks, and uses Upload
against a blockd that predates packs (no block lost to an unknown field).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import blake3
import grpc
import pytest

from blockd.backends.base import Backend, BackendError, Bytes, WrappingBackend
from blockd.backends.local import LocalBackend
from blockd.service import MAX_PACK_BLOCKS
from blockd.store import Block, BlockStore
from fusefs.clients import BlockClient
from fusefs.clients.blocks import PACK_BLOCK_BYTES, PACK_BLOCKS, PACK_BYTES, packs
from protos import auth
from protos.drive.v1 import blocks_pb2
from protos.runtime import create_channel
from protos.wire import pack_bytes
from tests import grpcfake, signin

if TYPE_CHECKING:
    from fusefs.daemons import Daemon

MiB = 1024 * 1024
TIMEOUT = 30


def h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def blocks_of(*sizes: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


@pytest.fixture
def packed(blockd: Daemon) -> Iterator:
    """UploadPacked on raw messages (each a serialized UploadPack), as the first user."""
    channel = create_channel(blockd.address)
    call = channel.stream_unary(
        "/drive.v1.Blocks/UploadPacked",
        request_serializer=None,
        response_deserializer=blocks_pb2.UploadResponse.FromString,
    )
    signed = auth.bearer_metadata(signin.token())

    def send(messages: Iterable[bytes]) -> blocks_pb2.UploadResponse:
        return call(iter(messages), metadata=signed, timeout=TIMEOUT)

    yield send
    channel.close()


def pack(*blocks: bytes) -> bytes:
    return pack_bytes([(h(d), d) for d in blocks])


def held(blocks_stub, hashes: list[bytes]) -> list[bytes]:
    """The hashes blockd holds (asked with grants, as a reader would)."""
    request = blocks_pb2.FindMissingRequest(hashes=hashes, grants=signin.grants(hashes))
    absent = set(blocks_stub.FindMissing(request, timeout=TIMEOUT).missing)
    return [digest for digest in hashes if digest not in absent]


def test_packs_store_every_block_with_a_receipt_each(packed, blocks_stub) -> None:
    small = blocks_of(*[1 + n * 97 for n in range(40)], seed=1)
    large = blocks_of(3 * MiB, seed=2)
    reply = packed([pack(*small[:30]), pack(*large), pack(*small[30:], small[0])])
    everything = [*small, *large, small[0]]  # a duplicate is received, written, receipted
    assert (reply.blocks_received, reply.blocks_stored) == (len(everything),) * 2
    assert reply.bytes_stored == sum(map(len, everything))
    # One receipt per block received (in the order they were stored), as Upload gives.
    assert sorted((r.hash, r.size, r.mac) for r in reply.receipts) == sorted(
        (h(d), len(d), signin.receipt(h(d), len(d))) for d in everything
    )
    hashes = [h(d) for d in [*small, *large]]
    assert held(blocks_stub, hashes) == hashes
    assert blocks_stub.GetStats(blocks_pb2.GetStatsRequest()).object_count == len(hashes)
    sent = blocks_stub.Download(signin.download_request(hashes[-3:]), timeout=TIMEOUT)
    assert [b.data for b in sent] == [*small[-2:], *large]


@pytest.mark.parametrize("lie", ["wrong hash", "empty block"])
def test_a_bad_block_inside_a_pack_fails_the_call_and_is_not_stored(
    packed, blocks_stub, lie: str
) -> None:
    before = blocks_of(100, 200, 300, seed=3)
    good, evil = blocks_of(500, 500, seed=4)
    bad = (h(good), evil) if lie == "wrong hash" else (h(b""), b"")
    after = blocks_of(700, seed=5)
    message = pack_bytes([(h(d), d) for d in before[1:]] + [bad] + [(h(after[0]), after[0])])
    with pytest.raises(grpc.RpcError) as info:
        packed([pack(before[0]), message])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad[0].hex() in info.value.details()
    # What came before the bad block is stored (no receipts: the call failed); it and
    # what followed it are not.
    assert held(blocks_stub, [h(d) for d in before]) == [h(d) for d in before]
    assert held(blocks_stub, [h(good), h(evil), h(b""), h(after[0])]) == []


def test_a_pack_over_the_size_limit_is_refused_and_none_of_it_stored(packed, blocks_stub) -> None:
    first = blocks_of(1000, seed=6)
    over = blocks_of(9 * MiB, 8 * MiB, seed=7)  # each a valid block; together over 16 MiB
    with pytest.raises(grpc.RpcError) as info:
        packed([pack(*first), pack(*over)])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert held(blocks_stub, [h(d) for d in over]) == []
    assert held(blocks_stub, [h(first[0])]) == [h(first[0])]


def test_thousands_of_empty_entries_are_refused_before_any_is_read(packed, blocks_stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        packed([pack_bytes([(h(b""), b"")] * 5000)])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(MAX_PACK_BLOCKS) in info.value.details()
    # Within the count, an empty block is what it is in Upload: invalid.
    with pytest.raises(grpc.RpcError) as info:
        packed([pack_bytes([(h(b""), b"")] * MAX_PACK_BLOCKS)])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # And one more than the count, even of good blocks, is refused.
    many = blocks_of(*[10] * (MAX_PACK_BLOCKS + 1), seed=8)
    with pytest.raises(grpc.RpcError) as info:
        packed([pack(*many)])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert held(blocks_stub, [h(d) for d in many]) == []
    assert blocks_stub.GetStats(blocks_pb2.GetStatsRequest()).object_count == 0


def test_a_malformed_pack_is_invalid_argument(packed) -> None:
    with pytest.raises(grpc.RpcError) as info:
        packed([b"\x0a\xff\x7f" + b"short"])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class Methods(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):
    """Records the methods a client calls."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def intercept_unary_unary(self, continuation, details, request):
        self.called.append(details.method)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        self.called.append(details.method)
        return continuation(details, request_iterator)


def client_upload(address: str, blocks: list[bytes], methods: Methods) -> BlockClient:
    client = BlockClient(address, signin.token, interceptors=[methods])
    result = client.upload(lambda: [(h(d), d) for d in blocks])
    assert (result.blocks_received, result.blocks_stored) == (len(blocks),) * 2
    return client


def test_the_mount_client_packs_and_keeps_the_receipts(blockd: Daemon, blocks_stub) -> None:
    blocks = blocks_of(*[1 + n * 331 for n in range(150)], 2 * MiB, 5, seed=9)
    methods = Methods()
    client = client_upload(blockd.address, blocks, methods)
    try:
        assert methods.called == ["/drive.v1.Blocks/UploadPacked"]
        assert all(client.grants.receipt(h(d), len(d)) for d in blocks)
        assert held(blocks_stub, [h(d) for d in blocks]) == [h(d) for d in blocks]
    finally:
        client.close()


@pytest.fixture
def old_blockd(blockd: Daemon) -> Iterator[str]:
    """A blockd from before packs: Upload only (relayed to the real one), no UploadPacked."""
    channel = create_channel(blockd.address)
    upload = channel.stream_unary(
        "/drive.v1.Blocks/Upload", request_serializer=None, response_deserializer=None
    )

    def relay(requests, context: grpc.ServicerContext) -> bytes:
        return upload(requests, metadata=context.invocation_metadata(), timeout=TIMEOUT)

    handlers = {
        "Upload": grpc.stream_unary_rpc_method_handler(
            relay, request_deserializer=None, response_serializer=None
        )
    }
    with grpcfake.serving("drive.v1.Blocks", handlers) as address:
        yield address
    channel.close()


def test_against_an_old_blockd_the_client_uploads_one_block_a_message(
    old_blockd: str, blocks_stub
) -> None:
    methods = Methods()
    first, second = blocks_of(*[100] * 20, seed=10), blocks_of(*[200] * 5, seed=11)
    client = client_upload(old_blockd, first, methods)
    try:
        result = client.upload(lambda: [(h(d), d) for d in second])
        assert result.blocks_stored == len(second)
        # Asked once; from then on Upload only.
        assert methods.called == [
            "/drive.v1.Blocks/UploadPacked",
            "/drive.v1.Blocks/Upload",
            "/drive.v1.Blocks/Upload",
        ]
        everything = [h(d) for d in first + second]
        assert all(client.grants.receipt(h(d), len(d)) for d in first + second)
        assert held(blocks_stub, everything) == everything
    finally:
        client.close()


def test_the_client_packs_consecutive_small_blocks_in_order_and_large_ones_alone() -> None:
    sizes = [10] * 70 + [PACK_BLOCK_BYTES] + [20] * 3 + [200 * 1024] * 7 + [5]
    blocks = [(bytes([n % 256]) * 32, b"x" * size) for n, size in enumerate(sizes)]
    made = list(packs(blocks))
    assert [b for p in made for b in p] == blocks  # every block once, in order
    # 64 small; the 6 left before a large one; it alone; small until about 1 MiB; the rest
    assert [len(p) for p in made] == [PACK_BLOCKS, 6, 1, 9, 2]
    assert all(sum(len(d) for _, d in p) <= PACK_BYTES + PACK_BLOCK_BYTES for p in made)


class PutManySizes(WrappingBackend):
    """Records how many blocks each put_many (one group write) carries."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self.sizes: list[int] = []

    async def put_many(self, items: Sequence[tuple[str, Bytes]]) -> list[int | BackendError]:
        self.sizes.append(len(items))
        return await self.backend.put_many(items)


def test_the_small_blocks_of_one_pack_are_written_as_one_group(tmp_path: Path) -> None:
    # In process: the blocks of a pack reach the store in one turn of the loop.
    first, second = blocks_of(*[100] * 40, seed=12), blocks_of(*[100] * 30, seed=13)

    async def packs_arriving() -> AsyncIterator[Block]:
        for pack in (first, second):
            for data in pack:
                yield Block(h(data), data)
            await asyncio.sleep(0.05)  # the next message comes later

    async def main() -> list[int]:
        backend = PutManySizes(await LocalBackend.open(tmp_path))
        store = await BlockStore.open(backend)
        try:
            summary = await store.put_stream(packs_arriving())
            assert summary.blocks_stored == 70
        finally:
            await store.close()
            await backend.close()
        return backend.sizes

    assert asyncio.run(main()) == [40, 30]
