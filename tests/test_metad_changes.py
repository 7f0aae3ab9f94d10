"""The journal's fan-out below gRPC: follow, the commit signal's wake-ups, shared reads.

Runs through asyncio.run, on each engine where a store is involved (the
`database` fixture); helpers come from metad_stores.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from metad import changes
from metad.models import ChangeKind, Role
from metad.store import FIRST_USER_ID
from tests.metad_stores import OWNER, open_store, run


def test_follow_streams_the_backlog_in_batches_then_live_then_ends_on_close(
    database: Path | str,
) -> None:
    async def scenario() -> None:
        signal = changes.CommitSignal()
        async with open_store(database, on_commit=signal.publish) as store:
            for i in range(10):
                await store.make_directory(OWNER, 1, f"d{i}", 0o755)
            read_sizes: list[int] = []

            async def read(after: int, limit: int) -> changes.ChangePage:
                page = await store.read_changes(FIRST_USER_ID, after, limit)
                read_sizes.append(len(page.events))
                return page

            seen: list[int] = []
            live = asyncio.Event()

            async def subscriber() -> None:
                async for event in changes.follow(read, signal, 4, batch_size=3):
                    seen.append(event.sequence)
                    if event.sequence == 12:
                        live.set()

            task = asyncio.create_task(subscriber())
            while len(seen) < 6:
                await asyncio.sleep(0.01)
            assert seen == [5, 6, 7, 8, 9, 10]
            await store.make_directory(OWNER, 1, "live1", 0o755)
            await store.make_directory(OWNER, 1, "live2", 0o755)
            await asyncio.wait_for(live.wait(), 5)
            assert seen == list(range(5, 13))
            # Sleeping subscribers do not read: reads happen only after commits.
            reads_before = len(read_sizes)
            await asyncio.sleep(0.2)
            assert len(read_sizes) == reads_before
            signal.close()
            await asyncio.wait_for(task, 5)
            assert read_sizes[:2] == [3, 3]

    run(scenario)


def test_follow_from_beyond_the_end_waits_for_later_sequences(database: Path | str) -> None:
    async def scenario() -> None:
        signal = changes.CommitSignal()
        async with open_store(database, on_commit=signal.publish) as store:
            await store.make_directory(OWNER, 1, "a", 0o755)  # sequence 1
            seen: list[int] = []

            async def subscriber() -> None:
                read = lambda after, limit: store.read_changes(FIRST_USER_ID, after, limit)  # noqa: E731
                async for event in changes.follow(read, signal, 3):
                    seen.append(event.sequence)

            task = asyncio.create_task(subscriber())
            for name in ("b", "c"):  # sequences 2 and 3: not beyond the cursor
                await store.make_directory(OWNER, 1, name, 0o755)
            await asyncio.sleep(0.1)
            assert seen == []
            await store.make_directory(OWNER, 1, "d", 0o755)  # sequence 4
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            assert seen == [4]
            signal.close()
            await asyncio.wait_for(task, 5)

    run(scenario)


def test_follow_does_not_spin_on_commits_of_other_drives() -> None:
    """Commits of other drives advance the signal but add nothing for this subscriber."""

    async def scenario() -> None:
        signal = changes.CommitSignal()
        reads = 0

        async def read(after: int, limit: int) -> changes.ChangePage:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0)  # a spinning subscriber would read over and over here
            # every commit so far belongs to another drive
            return changes.ChangePage((), signal.latest, more=False)

        task = asyncio.create_task(anext(changes.follow(read, signal, 0)))
        await asyncio.sleep(0.01)
        for sequence in range(1, 6):
            signal.publish(sequence)
            await asyncio.sleep(0.01)
        assert reads == 6  # the first read, then one per commit
        signal.close()
        with pytest.raises(StopAsyncIteration):
            await task

    run(scenario)


def test_a_commit_wakes_only_the_subscribers_it_may_concern() -> None:
    """Users' commits wake their watchers; one of unknown users (polled) wakes everyone;
    a commit published before a subscriber went to sleep is not missed."""

    async def scenario() -> None:
        signal = changes.CommitSignal(latest=10)
        mine = asyncio.create_task(signal.wait_beyond(10, frozenset({1, 3})))
        theirs = asyncio.create_task(signal.wait_beyond(10, frozenset({2})))
        await asyncio.sleep(0.01)
        signal.publish(11, frozenset({5}))  # nobody watches user 5
        signal.publish(12, frozenset({3}))  # a drive that shares with the first
        await asyncio.sleep(0.01)
        assert mine.done() and not theirs.done()
        signal.publish(11, frozenset({2}))  # another replica's, told after a later one
        await asyncio.wait_for(theirs, 1)
        # Published while nobody slept: the next sleeper on user 5 returns at once.
        assert await asyncio.wait_for(signal.wait_beyond(10, frozenset({5})), 1)
        late = asyncio.create_task(signal.wait_beyond(12, frozenset({7})))
        await asyncio.sleep(0.01)
        assert not late.done()
        signal.publish(13, None)  # whom it concerns is unknown: everyone looks
        assert await asyncio.wait_for(late, 1)

    run(scenario)


def test_subscribers_of_one_user_asking_at_once_share_one_read() -> None:
    async def scenario() -> None:
        calls: list[tuple[int, int, int]] = []
        release = asyncio.Event()

        async def read(user_id: int, after: int, limit: int) -> changes.ChangePage:
            calls.append((user_id, after, limit))
            await release.wait()
            return changes.ChangePage((), after + 1, more=False)

        shared = changes.SharedReads(read)
        first = asyncio.ensure_future(shared(1, 5, 10))
        second = asyncio.ensure_future(shared(1, 5, 10))
        other = asyncio.ensure_future(shared(2, 5, 10))  # another user: a read of its own
        gone = asyncio.ensure_future(shared(1, 5, 10))
        await asyncio.sleep(0.01)
        gone.cancel()  # one who goes away does not cancel the others' read
        release.set()
        pages = await asyncio.gather(first, second, other)
        assert [page.scanned_to for page in pages] == [6, 6, 6]
        assert calls == [(1, 5, 10), (2, 5, 10)]
        await shared(1, 5, 10)  # once done, a read is not kept
        assert len(calls) == 3

    run(scenario)


def test_a_subscriber_is_woken_by_a_new_share_and_then_by_the_sharer_s_commits(
    database: Path | str,
) -> None:
    async def scenario() -> None:
        signal = changes.CommitSignal()
        async with open_store(database, on_commit=signal.publish) as store:
            bob = await store.create_user("bob", "hash", quota_bytes=0, admin=False)
            shared = await store.make_directory(OWNER, 1, "shared", 0o755)
            seen: list[tuple[ChangeKind, str]] = []

            async def follow() -> None:
                read = lambda after, limit: store.read_changes(bob.id, after, limit)  # noqa: E731
                async for event in changes.follow(read, signal, signal.latest):
                    seen.append((event.kind, event.name))

            task = asyncio.create_task(follow())
            await asyncio.sleep(0.05)
            await store.make_directory(OWNER, 1, "private", 0o755)  # not bob's to see
            await store.share(OWNER, shared.id, "bob", Role.READ)
            await store.create_file(OWNER, shared.id, "f", 0o644)
            for _ in range(200):
                if len(seen) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert [name for _, name in seen] == ["shared", "f"]
            assert seen[1][0] is ChangeKind.CREATED
            signal.close()
            await asyncio.wait_for(task, 5)

    run(scenario)
