"""The writes of one Upload stream, as the block store puts them in flight.

Owns: how a stream's blocks go to the store's writes: a large block in a task
of its own; small blocks in groups, one backend call (put_many) per group, at
most GROUPS_IN_FLIGHT groups at once, the blocks that arrive meanwhile forming
the next one (so a slow disk makes larger groups, not more waits, and a lone
block goes at the loop's next turn: the blocks of one UploadPack, added in one
turn, go as one group); all within a window of bytes in flight. Also which error
a stream ends with (that of its earliest failing block) and what it stored.

Must not: verify, dedup, count or write a block itself (the callables the
store passes in do), know the backend, or cancel a write once started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from blockd.storeerrors import StoreError

GROUPS_IN_FLIGHT = 4  # per stream
GROUP_MAX_BLOCKS = 256

# A small block's write, owed by whoever holds it: a group write settles it, as a
# Task settles a large block's write.
Claim = asyncio.Future[bool]


class StreamWrites:
    """One stream's writes in flight; add() each block, then finish(), then abandon()."""

    def __init__(
        self,
        *,
        window_bytes: int,
        claim: Callable[[Any], Claim | None],
        put: Callable[[Any], Awaitable[bool]],
        write_group: Callable[[list[tuple[Any, Claim]]], Awaitable[list[StoreError | None]]],
        held: list[tuple[bytes, int]] | None,
    ) -> None:
        """claim(block): the claim of a small valid block to write in a group, None to
        put(block) it alone, or raises StoreError (invalid: the stream ends there).
        write_group writes claimed blocks and settles their claims; held: see put_stream."""
        self._window_bytes = window_bytes
        self._claim = claim
        self._put = put
        self._write_group = write_group
        self._held = held
        self.stored = 0
        self.bytes_stored = 0
        self._in_flight = 0  # bytes of the blocks not yet harvested
        self._position = 0
        # task → (position, size, hash) of each block it writes
        self._pending: dict[asyncio.Task[Any], list[tuple[int, int, bytes]]] = {}
        self._groups: set[asyncio.Task[list[StoreError | None]]] = set()  # those writing groups
        self._forming: list[tuple[int, Any, Claim]] = []  # the next group
        self._failures: list[tuple[int, BaseException]] = []
        self._send_soon = False  # a _send_group is scheduled for the loop's next turn

    def failed(self) -> bool:
        """Whether a block has failed: no further block is to be added."""
        self._harvest({task for task in self._pending if task.done()})
        return bool(self._failures)

    async def add(self, block: Any) -> None:
        """Puts block in flight, after waiting for room in the window if need be."""
        position, self._position = self._position, self._position + 1
        try:
            claim = self._claim(block)
        except StoreError as exc:
            self._failures.append((position, exc))
            return
        size = len(block.data)
        self._in_flight += size
        if claim is not None:
            self._forming.append((position, block, claim))
            if len(self._forming) >= GROUP_MAX_BLOCKS:
                self._send_group(force=True)
            elif not self._send_soon:
                # At the loop's next turn: the blocks added before it (a pack's) join this one.
                self._send_soon = True
                asyncio.get_running_loop().call_soon(self._sent_soon)
        else:
            task = asyncio.create_task(self._put(block))
            self._pending[task] = [(position, size, block.hash)]
        if self._in_flight >= self._window_bytes:
            self._send_group(force=True)
            done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            self._harvest(done)

    async def finish(self) -> None:
        """Sends the group being formed and waits for every write in flight."""
        self._send_group(force=True)
        while self._pending:
            done, _ = await asyncio.wait(self._pending)
            self._harvest(done)

    def abandon(self) -> None:
        """After a cancellation or a broken stream: stops verifying (the tasks of large
        blocks go; each has started its own shielded write, which goes on and is
        counted). The group being formed is written all the same: its blocks are
        verified, and others may wait for them."""
        self._send_group(force=True)
        abandon(task for task in self._pending if task not in self._groups)

    def raise_first_failure(self) -> None:
        if self._failures:
            raise min(self._failures, key=lambda failure: failure[0])[1]

    def _sent_soon(self) -> None:
        self._send_soon = False
        self._send_group()

    def _send_group(self, force: bool = False) -> None:
        if not self._forming or not (force or len(self._groups) < GROUPS_IN_FLIGHT):
            return
        group = [(block, claim) for _, block, claim in self._forming]
        self._groups.add(task := asyncio.create_task(self._write_group(group)))
        self._pending[task] = [(p, len(b.data), b.hash) for p, b, _ in self._forming]
        # When a group is written, the next one goes at once (not at the next block).
        task.add_done_callback(lambda _: self._send_group())
        self._forming.clear()

    def _harvest(self, done: Iterable[asyncio.Task[Any]]) -> None:
        for task in done:
            places = self._pending.pop(task)
            if task in self._groups:
                self._groups.discard(task)
                errors: list[BaseException | None] = list(task.result())
            else:
                errors = [task.exception()]
            for (position, size, digest), exc in zip(places, errors, strict=True):
                self._in_flight -= size
                if exc is not None:
                    self._failures.append((position, exc))
                    continue
                if self._held is not None:
                    self._held.append((digest, size))
                self.stored += 1
                self.bytes_stored += size


def abandon(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancels tasks no one will await, retrieving the errors of finished ones."""
    for task in tasks:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()
