"""The blockd API (drive.v1.Blocks) as blocking calls: proofs in, receipts out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from fusefs import errors
from fusefs.clients.proofs import Grant, GrantBook
from fusefs.clients.rpc import (
    FIND_BATCH,
    RETRY_WINDOW,
    STREAM_TIMEOUT,
    Stall,
    Token,
    batches,
    rpc,
    signed_channel,
    timeout,
    translate,
)
from protos.drive.v1 import (
    blocks_pb2,
    blocks_pb2_grpc,
)
from protos.tls import Trust
from protos.wire import MalformedMessage, block_bytes, pack_bytes, read_block

# Consecutive blocks below PACK_BLOCK_BYTES go to blockd several per message (UploadPacked),
# at most PACK_BLOCKS or about PACK_BYTES a message: gRPC's cost is per message.
PACK_BLOCK_BYTES = 256 * 1024
PACK_BLOCKS = 64
PACK_BYTES = 1024 * 1024


def packs(blocks: Iterable[tuple[bytes, bytes]]) -> Iterator[list[tuple[bytes, bytes]]]:
    """The blocks in order, consecutive small ones together; a large one alone."""
    pack: list[tuple[bytes, bytes]] = []
    size = 0
    for digest, data in blocks:
        if len(data) >= PACK_BLOCK_BYTES:
            if pack:
                yield pack
                pack, size = [], 0
            yield [(digest, data)]
            continue
        pack.append((digest, data))
        size += len(data)
        if len(pack) >= PACK_BLOCKS or size >= PACK_BYTES:
            yield pack
            pack, size = [], 0
    if pack:
        yield pack


@dataclass(frozen=True, slots=True)
class GarbageProgress:
    scanned: int
    total: int
    deleted: int
    bytes_reclaimed: int
    done: bool


@dataclass(frozen=True, slots=True)
class BlockProblem:
    hash: bytes
    problem: str
    repaired: bool


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    checked: int
    total: int
    referenced_checked: int
    problems: tuple[BlockProblem, ...]
    done: bool


@dataclass(frozen=True, slots=True)
class UploadResult:
    blocks_received: int
    blocks_stored: int
    bytes_received: int
    bytes_stored: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    object_count: int
    stored_bytes: int
    bytes_received: int
    blocks_received: int
    bytes_sent: int
    blocks_sent: int


def _grant_messages(grants: Sequence[Grant]) -> list[blocks_pb2.Grant]:
    return [
        blocks_pb2.Grant(grant=g.grant, issued_ms=g.issued_ms, expires_s=g.expires_s)
        for g in grants
    ]


class BlockClient:
    """The blockd API as blocking calls. Safe to use from many threads.

    Downloads carry the grants of `grants` (shared with the MetadataClient
    that received them).
    """

    def __init__(
        self,
        address: str,
        token: Token | None = None,
        grants: GrantBook | None = None,
        *,
        trust: Trust | None = None,
        interceptors: Sequence[object] = (),
        retry_window: float = RETRY_WINDOW,
    ) -> None:
        self.address = address
        self.retry_window = retry_window  # how long a call retries a blockd not answering
        # A Download's blocks are read by the thread that called (no spin thread of the
        # channel receiving each message and waking that thread): half the handoffs.
        single = (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)
        self._channel = signed_channel(address, token, trust, interceptors, (single,))
        self._stub = blocks_pb2_grpc.BlocksStub(self._channel)
        # Blocks go out and come in as wire bytes (protos.wire): one copy out, none in.
        self._upload = self._channel.stream_unary(
            "/drive.v1.Blocks/Upload",
            request_serializer=None,
            response_deserializer=blocks_pb2.UploadResponse.FromString,
        )
        self._upload_packed = self._channel.stream_unary(
            "/drive.v1.Blocks/UploadPacked",
            request_serializer=None,
            response_deserializer=blocks_pb2.UploadResponse.FromString,
        )
        # False once a blockd answered UploadPacked with UNIMPLEMENTED (it predates
        # packs): Upload, one block a message, from then on for this client's life.
        self._packs = True
        self._download = self._channel.unary_stream(
            "/drive.v1.Blocks/Download",
            request_serializer=blocks_pb2.DownloadRequest.SerializeToString,
            response_deserializer=None,
        )
        self.grants = grants or GrantBook()

    def close(self) -> None:
        self._channel.close()

    @rpc
    def find_missing(self, hashes: list[bytes]) -> set[bytes]:
        """Which blocks to upload: those blockd lacks or will not say it holds (no proof)."""
        missing: set[bytes] = set()
        for batch in batches(hashes, FIND_BATCH):
            grants = _grant_messages(self.grants.known(batch))
            receipts = [
                blocks_pb2.Receipt(hash=h, size=size, mac=mac)
                for h, (size, mac) in zip(batch, self.grants.receipts(batch), strict=True)
            ]
            req = blocks_pb2.FindMissingRequest(hashes=batch, grants=grants, receipts=receipts)
            missing.update(self._stub.FindMissing(req, timeout=timeout()).missing)
        return missing

    @rpc
    def check(self) -> None:
        """One call that needs a valid token: is blockd there and does it accept us?"""
        self._stub.FindMissing(blocks_pb2.FindMissingRequest(), timeout=timeout())

    @rpc
    def upload(self, blocks: Callable[[], Iterable[tuple[bytes, bytes]]]) -> UploadResult:
        """Uploads what blocks() yields; a factory, so a retry can start over."""
        if self._packs:
            try:
                resp = self._send(self._upload_packed, blocks, packed=True)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._packs = False  # a blockd from before packs; it stored nothing
        if not self._packs:
            resp = self._send(self._upload, blocks, packed=False)
        self.grants.add_receipts((r.hash, r.size, r.mac) for r in resp.receipts)
        return UploadResult(
            resp.blocks_received, resp.blocks_stored, resp.bytes_received, resp.bytes_stored
        )

    def _send(
        self,
        method: grpc.StreamUnaryMultiCallable,
        blocks: Callable[[], Iterable[tuple[bytes, bytes]]],
        packed: bool,
    ) -> blocks_pb2.UploadResponse:
        """One upload stream of blocks(), several a message if packed."""
        stall = Stall()

        def requests() -> Iterator[bytes]:
            if not packed:
                for h, d in blocks():
                    stall.moved()  # (pulled by gRPC as blockd takes what went before)
                    yield block_bytes(h, d)
                return
            for pack in packs(blocks()):
                stall.moved()
                yield pack_bytes(pack)

        call = method.future(requests(), timeout=timeout(STREAM_TIMEOUT))
        with stall.watching(call):
            result: blocks_pb2.UploadResponse = call.result()
        return result

    @rpc
    def download(self, hashes: list[bytes]) -> list[tuple[bytes, memoryview]]:
        """The blocks, in request order (each one's data a view of the bytes received).

        Grants blockd refuses (revoked: a share was taken away, the password
        changed) are asked for again once; what metad still lets us read
        comes with fresh ones.
        """
        for renew in (False, True):
            grants = _grant_messages(self.grants.for_download(hashes, renew=renew))
            req = blocks_pb2.DownloadRequest(hashes=hashes, grants=grants)
            try:
                call = self._download(req, timeout=STREAM_TIMEOUT)
                found = []
                stall = Stall()
                with stall.watching(call):
                    for raw in call:
                        stall.moved()
                        found.append(read_block(raw))
                return found
            except MalformedMessage as exc:
                raise errors.DataLoss(f"blockd sent a malformed block: {exc}") from None
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.PERMISSION_DENIED or renew:
                    raise
        raise AssertionError("unreachable")

    @rpc
    def stats(self) -> StoreStats:
        msg = self._stub.GetStats(blocks_pb2.GetStatsRequest(), timeout=timeout())
        return StoreStats(
            msg.object_count,
            msg.stored_bytes,
            msg.bytes_received,
            msg.blocks_received,
            msg.bytes_sent,
            msg.blocks_sent,
        )

    def collect_garbage(self, grace_seconds: int, dry_run: bool) -> Iterator[GarbageProgress]:
        """Runs a garbage collection in blockd, yielding its progress."""
        req = blocks_pb2.CollectGarbageRequest(grace_seconds=grace_seconds, dry_run=dry_run)
        try:
            for m in self._stub.CollectGarbage(req, timeout=STREAM_TIMEOUT):
                yield GarbageProgress(m.scanned, m.total, m.deleted, m.bytes_reclaimed, m.done)
        except grpc.RpcError as exc:
            raise translate(exc) from None

    def scrub(self, only: Sequence[bytes] = ()) -> Iterator[ScrubProgress]:
        """Verifies the whole store (or only those blocks) in blockd: progress and problems."""
        req = blocks_pb2.ScrubRequest(hashes=list(only))
        try:
            for m in self._stub.Scrub(req, timeout=STREAM_TIMEOUT):
                problems = tuple(BlockProblem(p.hash, p.problem, p.repaired) for p in m.problems)
                yield ScrubProgress(m.checked, m.total, m.referenced_checked, problems, m.done)
        except grpc.RpcError as exc:
            raise translate(exc) from None
