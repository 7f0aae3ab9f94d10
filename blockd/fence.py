"""blockd's view of metad: which blocks are referenced, the GC fence, damage, revocations.

Owns the grpc.aio channel to metad (TLS when given a protos.tls.Trust) and
turns its answers into plain values. Maintenance calls metad as the
administrator who started the run (for_caller); reporting damaged blocks and
following revocations use blockd's own service token (it holds the drive's
auth key). Request handling never waits on metad.

The channel pings as a mount's does (protos.runtime.LIVE_STREAM_OPTIONS): the
revocation stream has no deadline, and behind a dead path (no RST) or a
stopped metad only an unanswered ping ends it, within ~15 s; follow.py then
reconnects. Its reconnect backoff is a client's (CLIENT_OPTIONS: at most 2 s),
so a metad that is back is found at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from protos import auth, tls
from protos.drive.v1 import metadata_pb2, metadata_pb2_grpc
from protos.runtime import LIVE_STREAM_OPTIONS, client_channel_options

TIMEOUT = 60.0


class MetadataUnavailable(Exception):
    """metad could not be asked; garbage collection must not guess."""


class Fence:
    """Calls metad as the bearer of a token: blockd's own, or an administrator's (for_caller)."""

    def __init__(
        self,
        address: str,
        *,
        trust: tls.Trust | None = None,
        _shared: Fence | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        self.address = address
        if _shared is None:
            self._channel = _channel(address, trust)
            self._stub = metadata_pb2_grpc.MetadataStub(self._channel)
        else:
            self._channel, self._stub = _shared._channel, _shared._stub
        self._token = token

    def for_caller(self, token: str) -> Fence:
        """This fence's channel, calling as the bearer of token."""
        return Fence(self.address, _shared=self, token=lambda: token)

    @property
    def _metadata(self) -> tuple[tuple[str, str]] | None:
        return auth.bearer_metadata(self._token()) if self._token is not None else None

    async def close(self) -> None:
        await self._channel.close()

    async def condemn(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Of hashes, the ones no revision refers to, now refused by commits."""
        req = metadata_pb2.CondemnBlocksRequest(hashes=list(hashes))
        return list((await self._call(self._stub.CondemnBlocks, req)).condemned)

    async def release(self, hashes: Sequence[bytes]) -> None:
        await self._call(self._stub.ReleaseBlocks, metadata_pb2.ReleaseBlocksRequest(hashes=hashes))

    async def condemned(self) -> list[bytes]:
        req = metadata_pb2.ListCondemnedBlocksRequest()
        return list((await self._call(self._stub.ListCondemnedBlocks, req)).hashes)

    async def referenced(self) -> AsyncIterator[list[bytes]]:
        """Pages of every referenced hash, in order."""
        after = b""
        while True:
            req = metadata_pb2.ListReferencedBlocksRequest(after_hash=after)
            page = await self._call(self._stub.ListReferencedBlocks, req)
            if page.hashes:
                yield list(page.hashes)
                after = page.hashes[-1]
            if not page.more:
                return

    async def report_damaged(self, hashes: Sequence[bytes]) -> int:
        """Tells metad these blocks were quarantined; how many files' devices it asked."""
        req = metadata_pb2.ReportDamagedBlocksRequest(hashes=list(hashes))
        return (await self._call(self._stub.ReportDamagedBlocks, req)).files

    async def revocations(self) -> AsyncIterator[list[auth.UserRevocation]]:
        """The whole revocation state, then again whenever it changes (a live stream)."""
        call = self._stub.WatchRevocations(
            metadata_pb2.WatchRevocationsRequest(), metadata=self._metadata
        )
        try:
            async for state in call:
                yield [
                    auth.UserRevocation(
                        u.user_id, u.token_generation, u.grants_not_before_ms, u.disabled
                    )
                    for u in state.users
                ]
        except grpc.aio.AioRpcError as exc:
            raise MetadataUnavailable(
                f"metad at {self.address}: {exc.code().name} {exc.details()}"
            ) from None
        finally:
            call.cancel()

    async def _call(self, method, request):
        try:
            return await method(request, timeout=TIMEOUT, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise MetadataUnavailable(
                f"metad at {self.address}: {exc.code().name} {exc.details()}"
            ) from None


def _channel(address: str, trust: tls.Trust | None) -> grpc.aio.Channel:
    """To metad, or spread over its replicas (address a list or a name: see channel_target)."""
    # Pinged as a live stream's channel: WatchRevocations is one (see the module doc).
    target, options = client_channel_options(address, trust, LIVE_STREAM_OPTIONS)
    if trust is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.channel_credentials(trust), options=options)
