"""Downloaded blocks are read from the wire bytes (protos.wire), so a lying blockd
is caught there: a malformed message is DataLoss, a wrong block never reaches a
reader, and what protobuf itself would read is what we read."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import blake3
import grpc
import pytest
import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient
from protos import auth
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from protos.wire import MalformedMessage, block_bytes, read_block
from tests import grpcfake, signin


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _length(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 1 << 20, 4 << 20])
def test_a_block_reads_as_protobuf_reads_it(size: int) -> None:
    data = random.Random(size).randbytes(size)
    raw = blocks_pb2.Block(hash=blake3.blake3(data).digest(), data=data).SerializeToString()
    digest, view = read_block(raw)
    assert digest == blake3.blake3(data).digest()
    assert bytes(view) == data


def test_field_order_repeats_and_unknown_fields_follow_protobuf() -> None:
    raw = b"".join(
        [
            _length(2, b"first data"),
            _key(9, 0) + _varint(300),  # unknown varint
            _key(10, 1) + bytes(8),  # unknown fixed64
            _key(11, 5) + bytes(4),  # unknown fixed32
            _length(12, b"unknown bytes"),
            _length(1, b"h" * 32),
            _length(2, b"last data wins"),
        ]
    )
    parsed = blocks_pb2.Block.FromString(raw)
    digest, view = read_block(raw)
    assert (digest, bytes(view)) == (parsed.hash, parsed.data) == (b"h" * 32, b"last data wins")


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_384, 1 << 20, (1 << 21) + 3])
def test_what_block_bytes_writes_protobuf_reads(size: int) -> None:
    data = random.Random(size).randbytes(size)
    digest = blake3.blake3(data).digest()
    for message in (blocks_pb2.Block, blocks_pb2.UploadRequest):
        parsed = message.FromString(block_bytes(digest, memoryview(data)))
        assert (parsed.hash, parsed.data) == (digest, data)


@pytest.mark.parametrize(
    "raw",
    [
        _key(1, 2) + _varint(33) + b"h" * 32,  # length past the end
        _key(1, 2),  # length missing
        b"\x80",  # a varint that never ends
        b"\xff" * 11,  # a varint longer than 64 bits
        _key(1, 3),  # group start: not in a Block
        _key(1, 4),
        _key(1, 6),
        _key(9, 1) + bytes(7),  # fixed64 cut short
        _key(9, 5) + bytes(3),  # fixed32 cut short
    ],
)
def test_malformed_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        read_block(raw)


@pytest.fixture
def lying_blockd() -> Iterator[tuple[str, list[bytes]]]:
    """A gRPC server on loopback answering every Download with the raw messages queued."""
    answers: list[bytes] = []

    def download(request: blocks_pb2.DownloadRequest, context: grpc.ServicerContext):
        yield from answers

    handlers = {
        "Download": grpc.unary_stream_rpc_method_handler(
            download,
            request_deserializer=blocks_pb2.DownloadRequest.FromString,
            response_serializer=None,
        )
    }
    with grpcfake.serving("drive.v1.Blocks", handlers) as address:
        yield address, answers


def test_a_malformed_block_from_blockd_is_data_loss(lying_blockd) -> None:
    address, answers = lying_blockd
    answers.append(_key(2, 2) + _varint(1000) + b"short")
    client = BlockClient(address)
    try:
        with pytest.raises(errors.DataLoss, match="malformed"):
            client.download([b"h" * 32])
    finally:
        client.close()


def test_a_wrong_block_from_blockd_never_reaches_a_reader(lying_blockd, tmp_path: Path) -> None:
    address, answers = lying_blockd
    wanted = b"what the file holds"
    digest = blake3.blake3(wanted).digest()
    answers.append(blocks_pb2.Block(hash=digest, data=b"something else").SerializeToString())
    client = BlockClient(address)

    async def read() -> None:
        cache = BlockCache(
            tmp_path, client.download, capacity_bytes=1 << 20, limiter=trio.CapacityLimiter(2)
        )
        with pytest.raises(errors.DataLoss, match="arrived corrupt"):
            await cache.get(digest)
        answers[:] = [blocks_pb2.Block(hash=digest, data=wanted).SerializeToString()]
        assert bytes(await cache.get(digest)) == wanted

    try:
        trio.run(read)
    finally:
        client.close()


def test_blockd_refuses_a_malformed_upload_and_serves_a_good_one(blockd) -> None:
    data = b"a block sent as raw bytes"
    digest = blake3.blake3(data).digest()
    signed = auth.bearer_metadata(signin.token())
    channel = grpc.insecure_channel(blockd.address)
    upload = channel.stream_unary(
        "/drive.v1.Blocks/Upload",
        request_serializer=None,
        response_deserializer=blocks_pb2.UploadResponse.FromString,
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:
            upload(iter([_key(2, 2) + _varint(1000) + b"short"]), metadata=signed, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        answer = upload(iter([block_bytes(digest, data)]), metadata=signed, timeout=10)
        assert answer.blocks_stored == 1
        # What blockd writes itself is a Block as protobuf reads it.
        stub = blocks_pb2_grpc.BlocksStub(channel)
        sent = stub.Download(signin.download_request([digest]), metadata=signed, timeout=10)
        assert [(b.hash, b.data) for b in sent] == [(digest, data)]
    finally:
        channel.close()
