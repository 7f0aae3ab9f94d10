"""QuickLock: what trio.Lock promises (one holder, waiters served in order),
without a turn of the scheduler when the lock is free."""

from __future__ import annotations

import trio
import trio.testing

from fusefs.mount.quicklock import QuickLock


def test_a_free_lock_is_taken_without_letting_other_tasks_run() -> None:
    async def main() -> None:
        lock = QuickLock()
        ran: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _note(ran, "other"))
            async with lock:
                ran.append("holder")  # nothing yielded to the other task first
            assert ran == ["holder"]
        assert ran == ["holder", "other"]

    trio.run(main)


def test_one_holder_at_a_time_and_waiters_in_the_order_they_came() -> None:
    async def main() -> None:
        lock = QuickLock()
        order: list[int] = []
        inside = 0

        async def use(i: int) -> None:
            nonlocal inside
            async with lock:
                inside += 1
                assert inside == 1, "two holders at once"
                order.append(i)
                await trio.sleep(0.001)
                inside -= 1

        async with trio.open_nursery() as nursery:
            await lock.__aenter__()
            for i in range(5):
                nursery.start_soon(use, i)
                await trio.testing.wait_all_tasks_blocked()
            assert lock.locked()
            await lock.__aexit__(None, None, None)
        assert order == [0, 1, 2, 3, 4]
        assert not lock.locked()

    trio.run(main)


def test_a_free_lock_is_not_taken_ahead_of_tasks_already_waiting() -> None:
    async def main() -> None:
        lock = QuickLock()
        order: list[str] = []

        async def waiter() -> None:
            async with lock:
                order.append("waiter")

        async with trio.open_nursery() as nursery:
            await lock.__aenter__()
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await lock.__aexit__(None, None, None)  # the waiter is handed the lock
            async with lock:  # so this one queues behind it
                order.append("late")
        assert order == ["waiter", "late"]

    trio.run(main)


async def _note(ran: list[str], what: str) -> None:
    ran.append(what)
