"""What blockd keeps telling metad and hearing from it while it runs.

Owns two long-running tasks beside the server: following metad's revocations
(so a grant of an unshared file or a token of a changed password stops
working here within a moment), and reporting quarantined blocks to metad (so
the devices holding their content are asked to upload it again). Both
survive metad restarts: they retry with a growing pause, keeping the last
known state meanwhile (revocations are believed only a while: below).

Revocations last heard are believed only while that can still be true: while
their stream is open (its channel's keepalive ends it within ~15 s of the path
dying: blockd.fence), then for BELIEVED_AFTER_LOSS, which a restart of metad
fits in, and never before the first state arrives. Otherwise a grant could
be revoked unseen (metad reachable by the devices, not by blockd), so
`FollowedRevocations.current` turns false and blockd refuses grants (asked to
retry) rather than serve what may be revoked, until the stream is back and
the whole state is read again.

Must not: handle requests, or decide what a revocation means (protos.auth's
Revocations does).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from blockd.fence import Fence, MetadataUnavailable
from protos import auth
from protos.runtime import LIVE_KEEPALIVE_MS, LIVE_PING_TIMEOUT_MS

log = logging.getLogger(__name__)

RETRY_MIN_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
# Grants wait on the revocation stream once BELIEVED_AFTER_LOSS is over: retried more
# often (one call every 2 s to an absent metad is nothing), so blockd serves again
# about as soon as its channel reconnects (CLIENT_OPTIONS' max reconnect backoff).
REVOCATIONS_RETRY_MAX_SECONDS = 2.0
# As long again as a dead stream takes to be noticed (10 s ping + 5 s answer, or
# 1.5 times DRIVEFS_KEEPALIVE_SECONDS): a revocation is enforced within ~30 s whatever
# the network does, and a metad restart (seconds) interrupts no download.
BELIEVED_AFTER_LOSS = (LIVE_KEEPALIVE_MS + LIVE_PING_TIMEOUT_MS) / 1000
REPORT_BATCH = 1000
MAX_QUEUED_REPORTS = 100_000


class FollowedRevocations:
    """metad's revocations as blockd last heard them, and whether they may still be believed.

    `revocations` is what the interceptor and BlockAccess check against;
    `current` is read by every download (never waits, never fails).
    """

    def __init__(
        self,
        fence: Fence,
        *,
        believed_after_loss: float = BELIEVED_AFTER_LOSS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fence = fence
        self._believed_after_loss = believed_after_loss
        self._clock = clock
        self.revocations = auth.Revocations()
        self._believed_until = -math.inf  # nothing heard yet: nothing to believe
        self._lost_at: float | None = None
        self._warned = False

    def current(self) -> bool:
        """May grants be checked against `revocations` now?"""
        if self._clock() < self._believed_until:
            return True
        if self._lost_at is not None and not self._warned:
            self._warned = True
            log.warning(
                "refusing grants until metad's revocations are heard again "
                "(their stream broke %.0f s ago)",
                self._clock() - self._lost_at,
            )
        return False

    async def run(self) -> None:
        """Keeps revocations equal to metad's, for as long as blockd runs."""
        pause = RETRY_MIN_SECONDS
        failures = 0
        while True:
            try:
                async for state in self._fence.revocations():
                    self.revocations.replace(state)
                    if self._believed_until != math.inf:
                        log.info("following metad's revocations (%d users)", len(state))
                        self._believed_until = math.inf
                        self._lost_at, self._warned = None, False
                    pause, failures = RETRY_MIN_SECONDS, 0
            except MetadataUnavailable as exc:
                failures += 1
                # An absent metad is asked every 2 s: say so once, not all night.
                level = logging.INFO if failures == 1 else logging.DEBUG
                log.log(level, "revocations: %s; retrying", exc)
            finally:
                self._lost()
            await asyncio.sleep(pause)
            pause = min(pause * 2, REVOCATIONS_RETRY_MAX_SECONDS)

    def _lost(self) -> None:
        """The stream ended: what it said is believed a while longer (see the module doc)."""
        if self._believed_until == math.inf:
            self._lost_at = self._clock()
            self._believed_until = self._lost_at + self._believed_after_loss


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
