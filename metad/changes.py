"""Fan-out of the change journal to subscribers.

Owns the wake-up signal that the store fires after each commit and the
catch-up-then-follow loop of one subscription. Subscribers do not poll: they
sleep on the signal, and on waking read journal rows with sequence > their
cursor from the database, which is the only source of events (no event is
ever held in memory, so a slow subscriber cannot make the daemon grow). A
commit wakes only the subscribers it may concern (CommitSignal): with a
thousand subscribers, a commit costs a read for a few of them, not for all.

Correctness rests on two facts: the store publishes a sequence only after its
transaction committed, and sequences become visible in commit order (see
schema.py). A read reports how far it looked (the journal's head when it ran,
or where its limit stopped it), so every event up to there has been seen and
waiting for a commit beyond it can miss nothing. Must not touch SQL directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from metad.models import ChangeEvent

BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class ChangePage:
    """What one read of the journal found for one subscriber.

    Not every journal row is for every subscriber, so a page says how far the
    read looked, not only what it kept, and whose commits can concern them.
    """

    events: Sequence[ChangeEvent]  # the subscriber's events, in sequence order
    scanned_to: int  # every row up to this sequence was looked at
    more: bool  # the read stopped at its limit: rows beyond scanned_to may wait
    # The users whose commits may hold events for the subscriber, as the read found
    # them: themselves and whoever shares something with them (None: anyone's).
    watch: frozenset[int] | None = None


# read(after, limit) -> the subscriber's events with sequence > after, from at
# most `limit` journal rows.
ReadChanges = Callable[[int, int], Awaitable[ChangePage]]


class CommitSignal:
    """The highest committed journal sequence, per user it concerns, and a way to sleep
    until a commit that may concern a subscriber.

    A commit concerns the owners of the drives it changed and the users it
    shared something with or took it from (journal rows' owner_id and
    subject); a commit whose users are not known (another replica's, seen by
    polling) concerns everyone. A subscriber sleeps on the users its last read
    named (ChangePage.watch), so a commit wakes the subscribers it may concern
    instead of all of them. No wake-up is lost to a subscriber that starts to
    watch a user late: the highest sequence per user is kept, and a sleeper
    checks it before it sleeps. A new share is a commit that concerns its
    receiver, whose next read then names the sharer. Lives on one event loop.
    """

    def __init__(self, latest: int = 0) -> None:
        self._latest = latest  # the highest sequence published, whoever it concerns
        self._everyone = latest  # the highest published as concerning everyone
        self._by_user: dict[int, int] = {}  # user -> the highest published concerning them
        # user (None: those waiting for any commit) -> the sleepers watching them
        self._sleepers: dict[int | None, set[asyncio.Future[None]]] = {}
        self._closed = False
        self.followers = 0  # subscriptions following it now (for /metrics)

    @property
    def latest(self) -> int:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, sequence: int, concerns: Collection[int] | None = None) -> None:
        """Called after a commit that wrote journal rows up to `sequence`.

        concerns: the users it concerns (None: unknown, so everyone). A commit
        may be published after a later one was (replicas): its users still count.
        """
        self._latest = max(self._latest, sequence)
        if concerns is None:
            if sequence > self._everyone:
                self._everyone = sequence
                for sleepers in list(self._sleepers.values()):
                    _wake(sleepers)
            return
        for user in concerns:
            if sequence > self._by_user.get(user, 0):
                self._by_user[user] = sequence
                _wake(self._sleepers.get(user, ()))
        _wake(self._sleepers.get(None, ()))

    def close(self) -> None:
        """Ends every subscription (the server is stopping)."""
        self._closed = True
        for sleepers in list(self._sleepers.values()):
            _wake(sleepers)

    def _due(self, sequence: int, watch: Collection[int] | None) -> bool:
        if watch is None:
            return self._latest > sequence
        return self._everyone > sequence or any(
            self._by_user.get(user, 0) > sequence for user in watch
        )

    async def wait_beyond(self, sequence: int, watch: Collection[int] | None = None) -> bool:
        """Sleeps until a commit beyond `sequence` that concerns one of watch (None: any
        commit) is published; False once closed."""
        keys: list[int | None] = [None] if watch is None else list(watch)
        while not self._closed and not self._due(sequence, watch):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for key in keys:
                self._sleepers.setdefault(key, set()).add(waiter)
            try:
                await waiter
            finally:
                for key in keys:
                    sleepers = self._sleepers.get(key)
                    if sleepers is not None:
                        sleepers.discard(waiter)
                        if not sleepers:
                            del self._sleepers[key]
        return not self._closed


class SharedReads:
    """Reads of one user's journal from one cursor, shared by the subscribers asking at once.

    A user's devices follow from the same place: a commit wakes them together
    and each would read the same rows; one read serves them all. A subscriber
    that joins a read begun before the commit that woke it gets a page that
    stops short of that commit, and simply reads again (follow's loop).
    """

    def __init__(self, read: Callable[[int, int, int], Awaitable[ChangePage]]) -> None:
        self._read = read
        self._running: dict[tuple[int, int, int], asyncio.Future[ChangePage]] = {}

    def __call__(self, user_id: int, after: int, limit: int) -> Awaitable[ChangePage]:
        key = (user_id, after, limit)
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._read(user_id, after, limit))
            self._running[key] = running
            running.add_done_callback(lambda done: self._ended(key, done))
        # One subscriber that goes away does not cancel the others' read.
        return asyncio.shield(running)

    def _ended(self, key: tuple[int, int, int], done: asyncio.Future[ChangePage]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: the subscribers who asked got it, if any still wait


def _wake(sleepers: Iterable[asyncio.Future[None]]) -> None:
    for waiter in list(sleepers):
        if not waiter.done():
            waiter.set_result(None)


async def follow(
    read: ReadChanges, signal: CommitSignal, after: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[ChangeEvent]:
    """Events with sequence > after: first the backlog in batches, then live, until closed.

    Strictly increasing, without gap or duplicate. A cursor beyond the end of
    the journal simply waits for sequences beyond it.
    """
    async for events in follow_pages(read, signal, after, batch_size=batch_size):
        for event in events:
            yield event


async def follow_pages(
    read: ReadChanges, signal: CommitSignal, after: int, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[Sequence[ChangeEvent]]:
    """follow's events as each read found them, at most batch_size at a time (never
    none): a subscriber that takes several events per message sends a page as one."""
    cursor = after
    signal.followers += 1
    try:
        while not signal.closed:
            page = await read(cursor, batch_size)
            if page.events:
                yield page.events
            cursor = max(cursor, page.scanned_to)
            if page.more:
                continue
            # Wait beyond what was looked at, for a commit of someone this subscriber watches.
            if not await signal.wait_beyond(cursor, page.watch):
                return
    finally:
        signal.followers -= 1
