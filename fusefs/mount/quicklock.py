"""A trio lock that takes no trip through the scheduler when nobody holds it.

trio.Lock checkpoints on every acquire: a small file's write, close and
release each paid a full turn of the run loop (an epoll poll, every ready
task) for a lock nobody else wanted. This one takes a free lock at once and
waits, fairly, as trio.Lock does, only when it is held or others wait.

Must not: be held across anything that must be cancellable at its start
(an uncontended acquire is not a cancellation point).
"""

from __future__ import annotations

import trio


class QuickLock:
    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()  # refused while held or while others wait
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()
