"""Repeated failed sign-ins for one name are slowed down, not locked out for long.

The first FREE_FAILURES failures cost nothing more than the password hash;
after them, each name waits 1, 2, 4 … up to MAX_WAIT_SECONDS after its last
failure before another attempt is even checked. Attempts during the wait are
refused without counting, so a guesser gets about one try a minute per name,
and the real user is never kept out for more than a minute. A success or
FORGET_SECONDS of quiet clears the name. Names are counted whether or not
they exist, so the throttle tells nothing about which do. In memory only: a
restart forgets (and costs the guesser nothing they could not get anyway).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

FREE_FAILURES = 5
MAX_WAIT_SECONDS = 60.0
FORGET_SECONDS = 15 * 60.0
MAX_NAMES = 100_000


class SignInThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_seconds(self, name: str) -> float:
        """How long before an attempt for name is checked (0: now)."""
        count, last = self._failures.get(name, (0, 0.0))
        now = self._clock()
        if now - last > FORGET_SECONDS:
            self._failures.pop(name, None)
            return 0.0
        if count < FREE_FAILURES:
            return 0.0
        wait = min(2.0 ** (count - FREE_FAILURES), MAX_WAIT_SECONDS)
        return max(0.0, last + wait - now)

    def failed(self, name: str) -> None:
        count, _ = self._failures.pop(name, (0, 0.0))
        count += 1
        self._failures[name] = (count, self._clock())
        if count == FREE_FAILURES:
            log.warning(
                "%d failed sign-ins as %r: further attempts for this name are slowed down",
                count,
                name[:64],
            )
        while len(self._failures) > MAX_NAMES:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
