"""Fan-out of the change journal to subscribers.

Owns the wake-up signal that the store fires after each commit and the
catch-up-then-follow loop of one subscription. Subscribers do not poll: they
sleep on the signal, and on waking read journal rows with sequence > their
cursor from the database, which is the only source of events (no event is
ever held in memory, so a slow subscriber cannot make the daemon grow).

Correctness rests on two facts: the store publishes a sequence only after its
transaction committed, and sequences become visible in commit order (see
schema.py). A read reports how far it looked (the journal's head when it ran,
or where its limit stopped it), so every event up to there has been seen and
waiting for a commit beyond it can miss nothing. Must not touch SQL directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from metad.models import ChangeEvent

BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class ChangePage:
    """What one read of the journal found for one subscriber.

    Not every journal row is for every subscriber, so a page says how far the
    read looked, not only what it kept.
    """

    events: Sequence[ChangeEvent]  # the subscriber's events, in sequence order
    scanned_to: int  # every row up to this sequence was looked at
    more: bool  # the read stopped at its limit: rows beyond scanned_to may wait


# read(after, limit) -> the subscriber's events with sequence > after, from at
# most `limit` journal rows.
ReadChanges = Callable[[int, int], Awaitable[ChangePage]]


class CommitSignal:
    """The highest committed journal sequence, and a way to sleep until it grows.

    One asyncio.Event per generation: publish() sets the current one (waking
    every sleeper at once) and starts a new one. Lives on one event loop.
    """

    def __init__(self, latest: int = 0) -> None:
        self._latest = latest
        self._event = asyncio.Event()
        self._closed = False
        self.followers = 0  # subscriptions following it now (for /metrics)

    @property
    def latest(self) -> int:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, sequence: int) -> None:
        """Called after a commit that wrote journal rows up to `sequence`."""
        if sequence > self._latest:
            self._latest = sequence
            self._event.set()
            self._event = asyncio.Event()

    def close(self) -> None:
        """Ends every subscription (the server is stopping)."""
        self._closed = True
        self._event.set()

    async def wait_beyond(self, sequence: int) -> bool:
        """Sleeps until a commit beyond `sequence` is published; False once closed."""
        while not self._closed and self._latest <= sequence:
            await self._event.wait()
        return not self._closed


async def follow(
    read: ReadChanges, signal: CommitSignal, after: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[ChangeEvent]:
    """Events with sequence > after: first the backlog in batches, then live, until closed.

    Strictly increasing, without gap or duplicate. A cursor beyond the end of
    the journal simply waits for sequences beyond it.
    """
    cursor = after
    signal.followers += 1
    try:
        while not signal.closed:
            page = await read(cursor, batch_size)
            for event in page.events:
                yield event
            cursor = max(cursor, page.scanned_to)
            if page.more:
                continue
            # Other users' commits also advance the signal: wait beyond what was looked at.
            if not await signal.wait_beyond(cursor):
                return
    finally:
        signal.followers -= 1
