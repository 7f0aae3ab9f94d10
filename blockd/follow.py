"""What blockd keeps telling metad and hearing from it while it runs.

Owns two long-running tasks beside the server: following metad's revocations
(so a grant of an unshared file or a token of a changed password stops
working here within a moment), and reporting quarantined blocks to metad (so
the devices holding their content are asked to upload it again). Both
survive metad restarts: they retry with a growing pause, keeping the last
known state meanwhile.

Must not: handle requests, or decide what a revocation means (protos.auth's
Revocations does).
"""

from __future__ import annotations

import asyncio
import logging

from blockd.fence import Fence, MetadataUnavailable
from protos import auth

log = logging.getLogger(__name__)

RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
REPORT_BATCH = 1000
MAX_QUEUED_REPORTS = 100_000


async def follow_revocations(fence: Fence, revocations: auth.Revocations) -> None:
    """Keeps revocations equal to metad's, for as long as blockd runs."""
    pause = RETRY_MIN_SECONDS
    connected_once = False
    while True:
        try:
            async for state in fence.revocations():
                revocations.replace(state)
                if not connected_once:
                    log.info("following metad's revocations (%d users)", len(state))
                    connected_once = True
                pause = RETRY_MIN_SECONDS
        except MetadataUnavailable as exc:
            log.info("revocations: %s; retrying", exc)
        await asyncio.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_SECONDS)


class DamageReports:
    """Quarantined blocks on their way to metad (ReportDamagedBlocks), in batches.

    `add` is the store's on_damaged callback: it never blocks or fails; run()
    delivers what was added, retrying while metad is away.
    """

    def __init__(self, fence: Fence) -> None:
        self._fence = fence
        self._pending: dict[bytes, None] = {}
        self._wake = asyncio.Event()

    def add(self, digest: bytes) -> None:
        if len(self._pending) < MAX_QUEUED_REPORTS:
            self._pending[digest] = None
        self._wake.set()

    async def run(self) -> None:
        pause = RETRY_MIN_SECONDS
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = list(self._pending)[:REPORT_BATCH]
                try:
                    files = await self._fence.report_damaged(batch)
                except MetadataUnavailable as exc:
                    log.info("reporting damaged blocks: %s; retrying", exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, RETRY_MAX_SECONDS)
                    continue
                pause = RETRY_MIN_SECONDS
                for digest in batch:
                    self._pending.pop(digest, None)
                log.info(
                    "reported %d damaged blocks to metad: devices of %d files asked for them",
                    len(batch),
                    files,
                )
