"""The gRPC servicer of drive.v1.Blocks: protobuf ↔ store domain values.

Owns: the translation of requests into store calls and of store results into
responses, and the one table mapping store errors to gRPC status codes.

Must not: verify, dedup or count anything (the store does); touch a backend;
log per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf.message import Message

from blockd import maintenance
from blockd.access import BlockAccess, Grant, NoGrant, Receipt, RevocationsUnknown
from blockd.fence import Fence, MetadataUnavailable
from blockd.store import Block, BlockStore
from blockd.storeerrors import (
    BlockCorrupt,
    BlockNotFound,
    InvalidBlock,
    StoreError,
    StoreFull,
    StoreUnavailable,
    check_hash,
)
from blockd.validblocks import MAX_BLOCK_BYTES
from protos import auth
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from protos.wire import TooManyBlocks, block_bytes, read_block, read_pack

# How long a failed write waits for grpc to deliver the client's cancellation.
_CANCEL_NOTICE_SECONDS = 1.0
# Hashes one FindMissing, Download or Scrub may name (a bound on the work a call causes).
MAX_FIND_HASHES = 100_000
MAX_DOWNLOAD_HASHES = 1_000
MAX_SCRUB_HASHES = 100_000
# Blocks one UploadPack may hold, and their bytes in all (no more than one Upload message).
MAX_PACK_BLOCKS = 256
MAX_PACK_BYTES = MAX_BLOCK_BYTES

_STATUS: dict[type[StoreError], grpc.StatusCode] = {
    InvalidBlock: grpc.StatusCode.INVALID_ARGUMENT,
    BlockNotFound: grpc.StatusCode.NOT_FOUND,
    BlockCorrupt: grpc.StatusCode.DATA_LOSS,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    StoreFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


async def _abort(context: grpc.aio.ServicerContext, exc: StoreError) -> NoReturn:
    code = next(
        (code for cls, code in _STATUS.items() if isinstance(exc, cls)), grpc.StatusCode.INTERNAL
    )
    await context.abort(code, str(exc))
    raise AssertionError("unreachable: abort raises")


async def _send(context: grpc.aio.ServicerContext, message: Message) -> None:
    """context.write, without an ERROR in the log when the client has gone away.

    A write to a stream the client just cancelled fails with grpc's private
    ExecuteBatchError. grpc.aio logs that as an ERROR with a traceback unless
    it has already noticed the cancellation, which races with the write
    (grpc/grpc#31570). The notice follows within milliseconds and cancels
    this task, so wait for it here; a failure that is not a cancellation is
    re-raised (and logged by grpc) after the wait.
    """
    try:
        await context.write(message)
    except Exception:
        await asyncio.sleep(_CANCEL_NOTICE_SECONDS)
        raise


def _grants(grants: Sequence[blocks_pb2.Grant]) -> list[Grant]:
    return [Grant(g.grant, g.issued_ms, g.expires_s) for g in grants]


def _receipts(receipts: Sequence[blocks_pb2.Receipt]) -> list[Receipt]:
    return [Receipt(r.hash, r.size, r.mac) for r in receipts]


async def _checked_hashes(
    context: grpc.aio.ServicerContext, hashes: Sequence[bytes], limit: int
) -> list[bytes]:
    """The hashes, or the call ends INVALID_ARGUMENT (before any access check)."""
    if len(hashes) > limit:
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{len(hashes)} hashes in one call; the limit is {limit}",
        )
    try:
        for digest in hashes:
            check_hash(digest)
    except StoreError as exc:
        await _abort(context, exc)
    return list(hashes)


def _token(context: grpc.aio.ServicerContext) -> str:
    """The caller's own token, which the collector shows metad (an administrator's)."""
    return auth.bearer_token(context.invocation_metadata()) or ""


def _upload_request(raw: bytes) -> Block:
    """An UploadRequest as the store's Block, its data a view of raw (see protos.wire)."""
    return Block(*read_block(raw))


@dataclass(frozen=True, slots=True)
class _PackRefused:
    """An UploadPack over the limits: the call ends with this status.

    Returned by the deserializer rather than raised: protos.guard makes what a
    deserializer raises INVALID_ARGUMENT (as it does a malformed pack), and a
    limit is RESOURCE_EXHAUSTED as for every other request."""

    code: grpc.StatusCode
    message: str


def _upload_pack(raw: bytes) -> list[Block] | _PackRefused:
    """An UploadPack as the store's Blocks (views of raw), or why it is refused.

    Raises MalformedMessage (see _PackRefused)."""
    try:
        blocks = [Block(*b) for b in read_pack(raw, MAX_PACK_BLOCKS)]
    except TooManyBlocks as exc:
        return _PackRefused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    total = sum(len(b.data) for b in blocks)
    if total > MAX_PACK_BYTES:
        return _PackRefused(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{total} bytes of blocks in one pack; the limit is {MAX_PACK_BYTES}",
        )
    return blocks


def add_to_server(service: BlocksService, server: grpc.aio.Server) -> None:
    """What the generated add_BlocksServicer_to_server does, with the two methods that
    carry blocks on raw bytes: an Upload's block arrives without a copy, a Download's
    leaves with one (protos.wire)."""
    pb = blocks_pb2
    handlers = {
        "FindMissing": grpc.unary_unary_rpc_method_handler(
            service.FindMissing,
            request_deserializer=pb.FindMissingRequest.FromString,
            response_serializer=pb.FindMissingResponse.SerializeToString,
        ),
        "Upload": grpc.stream_unary_rpc_method_handler(
            service.Upload,
            request_deserializer=_upload_request,
            response_serializer=pb.UploadResponse.SerializeToString,
        ),
        "UploadPacked": grpc.stream_unary_rpc_method_handler(
            service.UploadPacked,
            request_deserializer=_upload_pack,
            response_serializer=pb.UploadResponse.SerializeToString,
        ),
        "Download": grpc.unary_stream_rpc_method_handler(
            service.Download,
            request_deserializer=pb.DownloadRequest.FromString,
            response_serializer=None,  # Download writes serialized Blocks itself
        ),
        "GetStats": grpc.unary_unary_rpc_method_handler(
            service.GetStats,
            request_deserializer=pb.GetStatsRequest.FromString,
            response_serializer=pb.StoreStats.SerializeToString,
        ),
        "CollectGarbage": grpc.unary_stream_rpc_method_handler(
            service.CollectGarbage,
            request_deserializer=pb.CollectGarbageRequest.FromString,
            response_serializer=pb.GarbageProgress.SerializeToString,
        ),
        "Scrub": grpc.unary_stream_rpc_method_handler(
            service.Scrub,
            request_deserializer=pb.ScrubRequest.FromString,
            response_serializer=pb.ScrubProgress.SerializeToString,
        ),
    }
    name = pb.DESCRIPTOR.services_by_name["Blocks"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)


class BlocksService(blocks_pb2_grpc.BlocksServicer):
    """Every handler runs for a caller whose token protos.auth has verified."""

    def __init__(self, store: BlockStore, access: BlockAccess, fence: Fence | None = None) -> None:
        self._store = store
        self._access = access
        self._fence = fence
        # One garbage collection at a time: a second run would take the blocks the
        # first has condemned for leftovers of a dead run and lift their fence while
        # the first still deletes them (a block uploaded and committed again
        # meanwhile would be lost). Replicas: see the README (one replica collects).
        self._collecting = False

    async def FindMissing(
        self, request: blocks_pb2.FindMissingRequest, context: grpc.aio.ServicerContext
    ) -> blocks_pb2.FindMissingResponse:
        hashes = await _checked_hashes(context, request.hashes, MAX_FIND_HASHES)
        for proofs, what in ((request.grants, "grant"), (request.receipts, "receipt")):
            if proofs and len(proofs) != len(hashes):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"one {what} per hash, or none"
                )
        caller = auth.caller()
        if caller.admin:
            proven = [True] * len(hashes)  # scrub and repair: administrators see every hash
        else:
            proven = self._access.proven(
                caller.user_id, hashes, _grants(request.grants), _receipts(request.receipts)
            )
        asked = [digest for digest, known in zip(hashes, proven, strict=True) if known]
        try:
            absent = set(await self._store.find_missing(asked)) if asked else set()
        except StoreError as exc:
            await _abort(context, exc)
        missing = [
            digest
            for digest, known in zip(hashes, proven, strict=True)
            if not known or digest in absent
        ]
        return blocks_pb2.FindMissingResponse(missing=missing)

    async def Upload(
        self, request_iterator: AsyncIterable[Block], context: grpc.aio.ServicerContext
    ) -> blocks_pb2.UploadResponse:
        blocks = (block async for block in request_iterator)  # see add_to_server
        return await self._upload(blocks, context)

    async def UploadPacked(
        self,
        request_iterator: AsyncIterable[list[Block] | _PackRefused],
        context: grpc.aio.ServicerContext,
    ) -> blocks_pb2.UploadResponse:
        """Upload, its blocks several to a message: one stream of blocks for the store."""
        refused: _PackRefused | None = None

        async def blocks() -> AsyncIterator[Block]:
            nonlocal refused
            async for pack in request_iterator:
                if isinstance(pack, _PackRefused):
                    refused = pack  # the blocks before it are finished, as after a bad block
                    return
                for block in pack:
                    yield block

        return await self._upload(blocks(), context, lambda: refused)

    async def _upload(
        self,
        blocks: AsyncIterator[Block],
        context: grpc.aio.ServicerContext,
        refused: Callable[[], _PackRefused | None] = lambda: None,
    ) -> blocks_pb2.UploadResponse:
        """Stores the blocks; receipts for them all, or the error of the first bad one."""
        held: list[tuple[bytes, int]] = []  # verified and stored: the caller had these bytes
        try:
            summary = await self._store.put_stream(blocks, held)
        except StoreError as exc:
            await _abort(context, exc)
        if (refusal := refused()) is not None:
            await context.abort(refusal.code, refusal.message)
        receipts = self._access.receipts(auth.caller().user_id, held)
        return blocks_pb2.UploadResponse(
            blocks_received=summary.blocks_received,
            blocks_stored=summary.blocks_stored,
            bytes_received=summary.bytes_received,
            bytes_stored=summary.bytes_stored,
            receipts=[blocks_pb2.Receipt(hash=r.hash, size=r.size, mac=r.mac) for r in receipts],
        )

    async def Download(
        self, request: blocks_pb2.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> None:
        # The writer API rather than an async generator: see _send.
        hashes = await _checked_hashes(context, request.hashes, MAX_DOWNLOAD_HASHES)
        try:
            self._access.check_download(auth.caller().user_id, hashes, _grants(request.grants))
        except NoGrant as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except RevocationsUnknown as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            async with contextlib.aclosing(self._store.get_stream(hashes)) as blocks:
                async for block in blocks:
                    await _send(context, block_bytes(block.hash, block.data))
        except StoreError as exc:
            await _abort(context, exc)

    async def GetStats(
        self, request: blocks_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> blocks_pb2.StoreStats:
        await auth.require_admin(context)
        stats = self._store.stats()
        return blocks_pb2.StoreStats(
            object_count=stats.object_count,
            stored_bytes=stats.stored_bytes,
            bytes_received=stats.bytes_received,
            blocks_received=stats.blocks_received,
            bytes_sent=stats.bytes_sent,
            blocks_sent=stats.blocks_sent,
        )

    async def CollectGarbage(
        self, request: blocks_pb2.CollectGarbageRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await auth.require_admin(context)
        if self._fence is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "blockd was started without --metad: it cannot tell which blocks are in use",
            )
        if request.grace_seconds < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "grace_seconds must be >= 0")
        if self._collecting:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "a garbage collection is already running on this blockd: wait for it to end",
            )
        fence = self._fence.for_caller(_token(context))
        run = maintenance.collect_garbage(
            self._store, fence, request.grace_seconds, dry_run=request.dry_run
        )
        self._collecting = True
        try:
            async with contextlib.aclosing(run) as progress:
                async for p in progress:
                    await _send(
                        context,
                        blocks_pb2.GarbageProgress(
                            scanned=p.scanned,
                            total=p.total,
                            deleted=p.deleted,
                            bytes_reclaimed=p.bytes_reclaimed,
                            done=p.done,
                        ),
                    )
        except MetadataUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except StoreError as exc:
            await _abort(context, exc)
        finally:
            self._collecting = False

    async def Scrub(
        self, request: blocks_pb2.ScrubRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await auth.require_admin(context)
        only = await _checked_hashes(context, request.hashes, MAX_SCRUB_HASHES)
        fence = self._fence.for_caller(_token(context)) if self._fence else None
        run = maintenance.scrub(self._store, fence, only)
        try:
            async with contextlib.aclosing(run) as progress:
                async for p in progress:
                    await _send(
                        context,
                        blocks_pb2.ScrubProgress(
                            checked=p.checked,
                            total=p.total,
                            referenced_checked=p.referenced_checked,
                            problems=[
                                blocks_pb2.BlockProblem(
                                    hash=x.hash, problem=x.problem, repaired=x.repaired
                                )
                                for x in p.problems
                            ],
                            done=p.done,
                        ),
                    )
        except MetadataUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except StoreError as exc:
            await _abort(context, exc)
