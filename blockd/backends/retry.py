"""The one retry policy of blockd's backends (after S3QL's `backends/common.py`).

Owns: when an operation that failed with a *transient* error is tried again
(exponential backoff with full jitter, capped, within an overall deadline),
and how loudly that is logged (DEBUG at first, INFO, then WARNING as the
attempts pile up, so a flapping network shows without flooding the log).

Must not: decide what is transient (each backend says so with its own
`is_temp_failure(exc)`, since only it knows its exceptions), map errors to
the domain errors of `base` (the backend does that once, after the last
attempt), or sleep on anything but the event loop.

Usage: a backend sets `retry_policy` and defines `is_temp_failure`, and
decorates the coroutine that makes one raw call:

    class S3Backend(Backend):
        retry_policy = RetryPolicy()

        def is_temp_failure(self, exc: BaseException) -> bool: ...

        @retry
        async def _call(self, ...) -> T: ...

Only idempotent operations may be decorated (every Backend operation is).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    deadline: float = 60.0  # seconds from the first attempt after which no retry starts
    first_delay: float = 0.05  # upper bound of the first pause; doubles per attempt
    max_delay: float = 5.0  # upper bound of any one pause

    def delay(self, attempt: int) -> float:
        """Pause before attempt+1 (attempt counts from 1): full jitter, as AWS advises."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2 ** (attempt - 1)))

    async def call(
        self,
        attempt_once: Callable[[], Awaitable[T]],
        is_temp_failure: Callable[[BaseException], bool],
        what: str,
    ) -> T:
        """Runs attempt_once until it succeeds, fails for good, or the deadline passes.

        The exception of the last attempt is raised as it is; `what` names the
        operation in log lines (never with data or credentials in it).
        """
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await attempt_once()
            except Exception as exc:
                if not is_temp_failure(exc):
                    raise
                pause = self.delay(attempt)
                if time.monotonic() - start + pause > self.deadline:
                    log.warning(
                        "%s: giving up after %d attempts in %.1fs: %s",
                        what,
                        attempt,
                        time.monotonic() - start,
                        _describe(exc),
                    )
                    raise
                log.log(
                    _level(attempt),
                    "%s: transient failure (attempt %d), retrying in %.2fs: %s",
                    what,
                    attempt,
                    pause,
                    _describe(exc),
                )
                await asyncio.sleep(pause)


class Retrying(Protocol):
    """What @retry needs of the object whose method it decorates."""

    retry_policy: RetryPolicy

    def is_temp_failure(self, exc: BaseException) -> bool: ...


R = TypeVar("R", bound=Retrying)


def retry(
    method: Callable[Concatenate[R, P], Awaitable[T]],
) -> Callable[Concatenate[R, P], Awaitable[T]]:
    """Decorates an idempotent coroutine method with its object's retry policy."""

    @functools.wraps(method)
    async def wrapper(self: R, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.retry_policy.call(
            functools.partial(method, self, *args, **kwargs),
            self.is_temp_failure,
            f"{type(self).__name__}.{method.__name__}",
        )

    return wrapper


def _level(attempt: int) -> int:
    if attempt <= 2:
        return logging.DEBUG
    if attempt <= 5:
        return logging.INFO
    return logging.WARNING


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
