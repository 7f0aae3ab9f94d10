"""The handlers of drive.v1.Metadata that storage maintenance uses.

Garbage collection's fence (CondemnBlocks, ReleaseBlocks, ListCondemnedBlocks),
scrub (ListReferencedBlocks, ListBlockReferences), damage (ReportDamagedBlocks),
revocations for blockd (WatchRevocations) and `drive status`
(GetStorageSummary). A mixin of MetadataService: it finds the store, the
auth key and the revocation board on self.

Who may call: administrators; ReportDamagedBlocks also blockd (its service
token), WatchRevocations only blockd; ListCondemnedBlocks anyone, about the
blocks they show receipts for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from metad import rules
from metad.errors import InvalidArgument, PermissionDenied, TooLarge
from metad.handlers import admin_caller, maps_errors
from metad.security import RevocationBoard
from metad.store import Store
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb

REFERENCED_PAGE = 10_000
REFERENCED_PAGE_MAX = 50_000
MAX_HASHES = 10_000  # per ListBlockReferences, ReportDamagedBlocks, ListCondemnedBlocks


def _bounded(hashes: list[bytes]) -> list[bytes]:
    if len(hashes) > MAX_HASHES:
        raise TooLarge(f"{len(hashes)} hashes in one call; the limit is {MAX_HASHES}")
    rules.check_hashes(hashes)
    return hashes


class StorageHandlers:
    _store: Store
    _key: auth.AuthKey
    _board: RevocationBoard

    async def _admin_or_service(self) -> None:
        if not auth.caller().service:
            await admin_caller(self._store)

    @maps_errors
    async def CondemnBlocks(
        self, request: pb.CondemnBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.CondemnBlocksResponse:
        await admin_caller(self._store)
        rules.check_hashes(request.hashes)
        return pb.CondemnBlocksResponse(
            condemned=await self._store.condemn_blocks(list(request.hashes))
        )

    @maps_errors
    async def ReleaseBlocks(
        self, request: pb.ReleaseBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseBlocksResponse:
        await admin_caller(self._store)
        rules.check_hashes(request.hashes)
        await self._store.release_blocks(list(request.hashes))
        return pb.ReleaseBlocksResponse()

    @maps_errors
    async def ListCondemnedBlocks(
        self, request: pb.ListCondemnedBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCondemnedBlocksResponse:
        """Administrators by hash; others only about blocks they hold a receipt for.

        Otherwise anyone could learn that some content is stored (unreferenced,
        about to be collected) without having it.
        """
        if request.hashes or not request.blocks:
            await admin_caller(self._store)
            asked = _bounded(list(request.hashes))
        else:
            user_id = auth.caller().user_id
            check = self._key.check_receipt
            if len(request.blocks) > MAX_HASHES:
                raise TooLarge(f"{len(request.blocks)} blocks; the limit is {MAX_HASHES}")
            if not all(check(user_id, b.hash, b.size, b.receipt) for b in request.blocks):
                raise PermissionDenied("ask only about blocks you uploaded (valid receipts)")
            asked = _bounded([b.hash for b in request.blocks])
        condemned = await self._store.list_condemned_blocks(asked)
        return pb.ListCondemnedBlocksResponse(hashes=condemned)

    @maps_errors
    async def ListReferencedBlocks(
        self, request: pb.ListReferencedBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReferencedBlocksResponse:
        await admin_caller(self._store)
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        limit = min(request.page_size or REFERENCED_PAGE, REFERENCED_PAGE_MAX)
        hashes, more = await self._store.referenced_blocks(request.after_hash, limit)
        return pb.ListReferencedBlocksResponse(hashes=hashes, more=more)

    @maps_errors
    async def ListBlockReferences(
        self, request: pb.ListBlockReferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBlockReferencesResponse:
        await admin_caller(self._store)
        found = await self._store.block_references(_bounded(list(request.hashes)))
        return pb.ListBlockReferencesResponse(
            references=[
                pb.BlockReference(
                    hash=r.hash,
                    node_id=r.node_id,
                    owner_id=r.owner_id,
                    owner_name=r.owner_name,
                    path=r.path,
                    revisions=r.revisions,
                    current=r.current,
                    deleted=r.deleted,
                )
                for r in found
            ]
        )

    @maps_errors
    async def ReportDamagedBlocks(
        self, request: pb.ReportDamagedBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportDamagedBlocksResponse:
        await self._admin_or_service()
        files = await self._store.report_damaged(_bounded(list(request.hashes)))
        return pb.ReportDamagedBlocksResponse(files=files)

    @maps_errors
    async def GetStorageSummary(
        self, request: pb.GetStorageSummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.StorageSummary:
        await admin_caller(self._store)
        summary = await self._store.storage_summary()
        return pb.StorageSummary(
            logical_bytes=summary.logical_bytes,
            referenced_blocks=summary.referenced_blocks,
            referenced_bytes=summary.referenced_bytes,
        )

    async def WatchRevocations(
        self, request: pb.WatchRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Revocations]:
        await auth.require_service(context)
        async for users in self._board.follow():
            yield pb.Revocations(
                users=[
                    pb.UserRevocation(
                        user_id=u.user_id,
                        token_generation=u.token_generation,
                        grants_not_before_ms=u.grants_not_before_ms,
                        disabled=u.disabled,
                    )
                    for u in users
                ]
            )
