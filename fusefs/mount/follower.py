"""Following metad's change journal and applying it to the mount.

The Subscribe stream is read in a worker thread (blocking gRPC) and each
event handed to trio; a broken stream is resumed from the last sequence
applied, so no change is missed or applied twice. A stream cut because metad
cannot be reached turns the mount offline (the first change made after a
network cut then need not find out by waiting on a call), unless streams
resumed at once for RESUME_GRACE find one: with several metad replicas, one
that dies cuts only the streams it served, and the channel sends the resumed
stream to another once it has noticed which one died.

A stream that goes quiet because its path died (no RST) or metad stopped is
ended by its channel's keepalive (protos.runtime.LIVE_KEEPALIVE_MS) and then
handled as any other cut; failures in a row are retried less and less often.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import trio

from fusefs import errors
from fusefs.clients import ChangeStream, MetadataClient
from fusefs.models import Change
from fusefs.mount.reachability import Reachability

log = logging.getLogger(__name__)

RECONNECT_DELAY = 0.5
# Failures in a row wait longer each time, up to this: a mount offline for hours asks
# (and logs) little, and once metad is back the stream resumes within about as long as
# the channel itself takes to reconnect (gRPC's max_reconnect_backoff_ms, protos.runtime).
RECONNECT_MAX = 2.0
# From a stream's first failure to reach metad, how long streams are resumed at once
# (every RESUME_STEP) before the mount turns offline.
RESUME_GRACE = 0.3
RESUME_STEP = 0.05


class ChangeFollower:
    def __init__(
        self,
        meta: MetadataClient,
        start_sequence: int,
        apply: Callable[[Change], Awaitable[None]],
        reachability: Reachability | None = None,
    ) -> None:
        self._meta = meta
        self._reachability = reachability
        self.sequence = start_sequence
        self._apply = apply
        self._stream: ChangeStream | None = None
        self._stopping = threading.Event()

    async def run(self) -> None:
        """Runs until cancelled; the reading thread is stopped on the way out."""
        handoff = _Handoff(trio.lowlevel.current_trio_token(), self._stopping)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._consume, handoff)
            try:
                await trio.to_thread.run_sync(self._read, handoff, abandon_on_cancel=True)
            finally:
                self._stop_reading()

    async def _consume(self, handoff: _Handoff) -> None:
        while True:
            for change in await handoff.take():
                try:
                    await self._apply(change)
                except Exception:
                    log.exception("applying change %d failed", change.sequence)

    def _read(self, handoff: _Handoff) -> None:
        """Worker thread: stream events, resume after failures, until stopped."""
        cursor = self.sequence
        failing_since: float | None = None  # the first of failures in a row
        delay = RECONNECT_DELAY
        while not self._stopping.is_set():
            opened = time.monotonic()
            try:
                self._stream = self._meta.subscribe(cursor)
                for change in self._stream:
                    handoff.put(change)
                    cursor = self.sequence = change.sequence
                    failing_since = None
            except errors.DriveError as exc:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                if failing_since is None or now - opened >= RECONNECT_DELAY:
                    failing_since = now  # the stream had been up: a new failure
                    delay = RECONNECT_DELAY
                    log.info("change stream interrupted (%s); resuming from %d", exc, cursor)
                else:
                    log.debug("change stream still failing (%s); resuming from %d", exc, cursor)
                unreachable = isinstance(exc, errors.Unavailable)
                if unreachable and now - failing_since < RESUME_GRACE:
                    if self._stopping.wait(RESUME_STEP):
                        return
                    continue
                if unreachable and self._reachability is not None:
                    try:
                        trio.from_thread.run_sync(
                            self._reachability.failed, trio_token=handoff.token
                        )
                    except trio.RunFinishedError:
                        return
            except trio.RunFinishedError:
                return
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RECONNECT_MAX)

    def _stop_reading(self) -> None:
        self._stopping.set()
        if self._stream is not None:
            self._stream.cancel()


class _Handoff:
    """Changes from the reading thread to trio, without a round trip each.

    Our own changes echo back one per file in a burst: the thread queues them
    and wakes trio once per batch (run_sync_soon does not wait), rather than
    waiting on trio for every event. At most LIMIT wait; the thread waits for
    room beyond that.
    """

    LIMIT = 1000

    def __init__(self, token: trio.lowlevel.TrioToken, stopping: threading.Event) -> None:
        self.token = token
        self._stopping = stopping
        self._changes: collections.deque[Change] = collections.deque()
        self._room = threading.Condition()
        self._woken = False  # a wake-up is on its way to trio (guarded by _room)
        self._arrived = trio.Event()

    def put(self, change: Change) -> None:
        """Reading thread: queues a change. Raises RunFinishedError once trio has ended."""
        with self._room:
            while len(self._changes) >= self.LIMIT and not self._stopping.is_set():
                self._room.wait(0.5)
            self._changes.append(change)
            wake, self._woken = not self._woken, True
        if wake:
            self.token.run_sync_soon(self._ring)

    def _ring(self) -> None:
        self._arrived.set()

    async def take(self) -> list[Change]:
        """The changes queued so far, in order (waits for at least one)."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            with self._room:
                batch = list(self._changes)
                self._changes.clear()
                self._woken = False
                self._room.notify_all()
            if batch:
                return batch
