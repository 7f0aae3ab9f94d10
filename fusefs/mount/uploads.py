"""Uploads the blocks of sealed contents that blockd lacks, over several streams.

Uploads go in pieces of UPLOAD_BYTES, each answered with receipts the
journal keeps: an upload cut short (network, server restart, kill -9 of the
mount) resumes with the blocks already stored, and sends each other block
at most once more. Meanwhile the blocks go into the local cache, so what
lands is read from there from then on.

Must not: decide what is sent when, or commit anything (synchronizer.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient
from fusefs.models import BlockRef
from fusefs.mount.journal import Journal
from fusefs.mount.sealed import Sealed, keep_all_in_cache, read_blocks

UPLOAD_BYTES = 16 * 1024**2  # per Upload stream: what a crash may make us send again
UPLOAD_STREAMS = 4
RATE_SECONDS = 10.0  # the send rate `drive status` shows is over this long

# Runs a blocking call (a client's, the cache's) in a worker thread: see in_threads.
InThread = Callable[..., Awaitable[Any]]


def in_threads(limiter: trio.CapacityLimiter) -> InThread:
    """fn(*args) in a worker thread, at most limiter's many at once: the synchronizer's
    calls and uploads share it."""

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter)

    return run


class SentBytes:
    """Bytes uploaded or committed since the mount started, and the rate lately."""

    def __init__(self) -> None:
        self.total = 0
        self._at: deque[tuple[float, int]] = deque()  # (when, total) lately

    def add(self, nbytes: int) -> None:
        self.total += nbytes
        self._at.append((time.monotonic(), self.total))

    def rate(self) -> float:
        """Bytes/s over the last RATE_SECONDS (0 when nothing moved)."""
        now = time.monotonic()
        while self._at and self._at[0][0] < now - RATE_SECONDS:
            self._at.popleft()
        if len(self._at) < 2:
            return 0.0
        (since, first), (_, last) = self._at[0], self._at[-1]
        return (last - first) / max(now - since, 1.0)


class Uploads:
    """The synchronizer's uploads: a batch's blocks, at most UPLOAD_STREAMS at once."""

    def __init__(
        self,
        blocks: BlockClient,
        journal: Journal,
        cache: BlockCache,
        thread: InThread,
        sent: SentBytes,
    ) -> None:
        self._blocks = blocks
        self._journal = journal
        self._cache = cache
        self._thread = thread
        self._sent = sent

    async def send_and_keep(self, contents: list[tuple[Sealed, list[BlockRef]]]) -> None:
        """Uploads, and meanwhile keeps the blocks in the cache: what lands is read from
        there from then on (those of a commit refused stay too: they were written here)."""
        failure: errors.DriveError | None = None

        async def upload() -> None:
            nonlocal failure
            try:
                await self.send(contents)
            except errors.DriveError as exc:
                failure = exc  # raised as itself below, not inside an exception group

        async with trio.open_nursery() as nursery:
            scratch = self._journal.scratch()
            nursery.start_soon(self._thread, keep_all_in_cache, self._cache, contents, scratch)
            await upload()
        if failure is not None:
            raise failure

    async def send(
        self, contents: list[tuple[Sealed, list[BlockRef]]], everything: bool = False
    ) -> None:
        """Uploads the blocks blockd lacks (each block we hold no receipt for, with everything)."""
        where: dict[bytes, tuple[Sealed, BlockRef]] = {}
        for content, blocks in contents:
            for ref in blocks:
                where.setdefault(ref.hash, (content, ref))
        if everything:
            receipt = self._blocks.grants.receipt
            wanted = [h for h, (_, r) in where.items() if not receipt(h, r.size)]
        else:
            missing = await self._thread(self._blocks.find_missing, list(where))
            wanted = [h for h in where if h in missing]
        groups: list[list[tuple[Sealed, BlockRef]]] = [[]]
        size = 0
        for digest in wanted:
            if size >= UPLOAD_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(where[digest])
            size += where[digest][1].size
        limit = trio.CapacityLimiter(UPLOAD_STREAMS)
        failures: list[errors.DriveError] = []
        async with trio.open_nursery() as nursery:
            for group in groups:
                if group:
                    nursery.start_soon(self._send_group, group, limit, failures)
        if failures:
            raise failures[0]

    async def _send_group(
        self,
        group: list[tuple[Sealed, BlockRef]],
        limit: trio.CapacityLimiter,
        failures: list[errors.DriveError],
    ) -> None:
        def produce() -> Iterator[tuple[bytes, bytes]]:
            return read_blocks(group)

        async with limit:
            if failures:
                return  # another stream failed: this batch is sent again as a whole
            try:
                await self._thread(self._blocks.upload, produce)
            except errors.DriveError as exc:
                failures.append(exc)
                return
        receipt = self._blocks.grants.receipt
        self._journal.add_receipts((r.hash, r.size, receipt(r.hash, r.size)) for _, r in group)
        self._sent.add(sum(r.size for _, r in group))
