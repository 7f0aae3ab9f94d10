"""Whether metad answers: offline, the mount answers from what it holds at once.

The first call that finds metad unreachable turns the mount offline: from
then on, whatever the replica can answer is answered without trying the
network (a try costs seconds of retries), and what it cannot fails at once.
A probe in the background asks metad, soon at first and then every
PROBE_SECONDS, and turns the mount online again when it answers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import trio

from fusefs import errors
from fusefs.clients import patience

log = logging.getLogger(__name__)

PROBE_SECONDS = 1.0
PROBE_FIRST_SECONDS = 0.2
# A probe not answered within this is a failed one (a stopped metad, a dead network
# path): the next one starts afresh rather than waiting out a whole call deadline.
PROBE_PATIENCE = 5.0

P = ParamSpec("P")
T = TypeVar("T")


class Reachability:
    def __init__(self, what: str, *, up: bool = True) -> None:
        self._what = what
        self.up = up
        self._back = trio.Event()  # set while up
        self._lost = trio.Event()  # set while down
        (self._back if up else self._lost).set()

    def failed(self) -> None:
        """Called in the trio thread (trio.from_thread.run_sync from others)."""
        if self.up:
            log.warning("%s is unreachable: working offline until it is back", self._what)
            self.up = False
            self._back = trio.Event()
            self._lost.set()

    def succeeded(self) -> None:
        if not self.up:
            log.info("%s is back: online again", self._what)
            self.up = True
            self._lost = trio.Event()
            self._back.set()

    def check(self) -> None:
        """Raises Unavailable at once while offline."""
        if not self.up:
            raise errors.Unavailable(f"{self._what} is unreachable (working offline)")

    def guard(self, call: Callable[P, T]) -> Callable[P, T]:
        """call, refused at once while offline (for blocking calls made in worker threads,
        e.g. block downloads: content never cached fails fast instead of retrying)."""

        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            self.check()
            return call(*args, **kwargs)

        return guarded

    async def wait_until_up(self) -> None:
        await self._back.wait()

    async def probe(self, ask: Callable[[], object], limiter: trio.CapacityLimiter) -> None:
        """Runs until cancelled: while offline, asks (a cheap call) until it answers; soon
        after the loss first (a daemon restarting is back within a second), then every
        PROBE_SECONDS."""
        while True:
            await self._lost.wait()
            delay = PROBE_FIRST_SECONDS
            while not self.up:
                await trio.sleep(delay)
                try:
                    with patience(PROBE_PATIENCE):
                        await trio.to_thread.run_sync(ask, limiter=limiter)
                except errors.DriveError:
                    delay = min(delay * 2, PROBE_SECONDS)
                    continue
                self.succeeded()


def resting_after_failure(call: Callable[P, T], seconds: float) -> Callable[P, T]:
    """call, refused at once for seconds after it found its daemon unreachable.

    A reader retries what failed (the kernel reads a page again once its
    readahead failed): it gets its EIO at once instead of waiting out
    another retry window. Safe from many threads.
    """
    lock = threading.Lock()
    failed_at = -math.inf

    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        nonlocal failed_at
        with lock:
            resting = time.monotonic() - failed_at < seconds
        if resting:
            raise errors.Unavailable("not answering (a moment ago)")
        try:
            return call(*args, **kwargs)
        except errors.Unavailable:
            with lock:
                failed_at = time.monotonic()
            raise

    return guarded
