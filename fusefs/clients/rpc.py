"""How the clients call: channels, deadlines, retries with one request id, status → error.

Owns the one place on the client side that maps a gRPC status (refined by
its "drive-error" reason) to a domain error, the retry of calls that did not
get through, and the request id a change keeps across its retries (metad
answers a retry of a change it already applied with the first answer).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ParamSpec, TypeVar

import grpc

from fusefs import errors
from protos import auth
from protos.runtime import CURRENT_REVISION_KEY, ERROR_REASON_KEY, create_channel
from protos.tls import Trust

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

UNARY_TIMEOUT = 30.0
# Streams carry up to a few GB; their deadline only guards against a hang.
STREAM_TIMEOUT = 3600.0
# A stream that moves nothing (no block sent or received) for this long is given up: a
# server stopped, overloaded or behind a dead network path (no RST) looks exactly so.
STALL_SECONDS = 30.0
# How long one call made while a program waits (a FUSE request) may take, retries
# included, before it fails Unavailable and the mount acts as offline (see patience()).
# Only the first request after a server stops answering waits this long (the mount is
# offline after it); a busy server on a loaded 2-core machine can take over a second
# for a block, and a false "offline" fails every uncached read until the probe answers.
PROGRAM_PATIENCE = 3.0
# How long a call keeps retrying a daemon that is unreachable (e.g. restarting), unless
# its client says otherwise (a `retry_window` attribute: a mount answers programs).
RETRY_WINDOW = 5.0
# Hashes per FindMissing, and per ListCondemnedBlocks, ListBlockReferences and
# ReportDamagedBlocks: within the daemons' limits.
FIND_BATCH = 10_000
CONDEMNED_BATCH = 10_000

_REASONS: dict[str, type[errors.DriveError]] = {
    "not-a-directory": errors.NotADirectory,
    "is-a-directory": errors.IsADirectory,
    "not-a-file": errors.InvalidArgument,
    "directory-not-empty": errors.DirectoryNotEmpty,
    "invalid-move": errors.InvalidMove,
    "name-too-long": errors.NameTooLong,
    "invalid-name": errors.InvalidName,
    "blocks-condemned": errors.BlocksCondemned,
    "quota-exceeded": errors.QuotaExceeded,
    "cross-drive": errors.CrossDrive,
    "content-gone": errors.NotFound,
    "unproven-blocks": errors.UnprovenBlocks,
    "too-large": errors.FileTooLarge,
    "not-permitted": errors.NotPermitted,
    "no-attribute": errors.NoAttribute,
    "not-supported": errors.NotSupported,
    "no-room": errors.NoSpace,
}

_CODES: dict[grpc.StatusCode, type[errors.DriveError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: errors.InvalidArgument,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: errors.NotSignedIn,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.QuotaExceeded,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
    # We closed the connection (a mount told to stop waiting): as if the server was away.
    grpc.StatusCode.CANCELLED: errors.Unavailable,
    grpc.StatusCode.DATA_LOSS: errors.DataLoss,
}


def translate(exc: grpc.RpcError) -> errors.DriveError:
    """The domain error for a failed call (status code refined by its reason)."""
    trailers = dict(exc.trailing_metadata() or ())
    current = trailers.get(CURRENT_REVISION_KEY)
    return status_error(
        exc.code(),
        exc.details() or "",
        trailers.get(ERROR_REASON_KEY),
        None if current is None else int(current),
    )


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_error(
    code: grpc.StatusCode | int, details: str, reason: str | None, current_revision: int | None
) -> errors.DriveError:
    """The domain error for a status (of a call, or of one operation of a batch)."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    details = details or code.name
    if code == grpc.StatusCode.ABORTED and current_revision is not None:
        return errors.StaleRevision(details, current_revision)
    cls = _REASONS.get(reason or "") or _CODES.get(code, errors.DriveError)
    return cls(details)


_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id() -> str:
    """The id of the change being made: the same for every retry of one call."""
    return _request_id.get() or uuid.uuid4().hex


# How long each call made in this context may take, retries included (see patience()).
_patience: contextvars.ContextVar[float] = contextvars.ContextVar("patience", default=math.inf)
# The moment (time.monotonic) by which the call being made must have answered (rpc sets it).
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("deadline", default=math.inf)


@contextlib.contextmanager
def patience(seconds: float = PROGRAM_PATIENCE) -> Iterator[None]:
    """Each call made within (in this context: trio copies it into worker threads)
    answers within seconds, retries included, or fails Unavailable; a stream fails once
    nothing moved for that long (Stall). A program waiting on a FUSE request is never
    kept waiting on a server that does not answer, while a request that makes several
    calls (a folder listed page by page) may take as long as they keep answering. The
    one place such deadlines are set; a shorter patience already in force stays."""
    token = _patience.set(min(_patience.get(), seconds))
    try:
        yield
    finally:
        _patience.reset(token)


def timeout(longest: float = UNARY_TIMEOUT) -> float:
    """A call's deadline in seconds: longest, or less if patience() says so."""
    return max(min(longest, _deadline.get() - time.monotonic()), 0.001)


class Stall:
    """Gives up a streaming call that moves nothing for STALL_SECONDS (the patience() in
    force, if shorter): moved() at each message; within watching(call), a stalled call is
    cancelled and fails Unavailable. A stream that moves may take as long as it needs
    (a cold read of many blocks), and so may one started by work a request began (a
    prefetch), after that request's deadline passed."""

    def __init__(self) -> None:
        self.seconds = min(STALL_SECONDS, _patience.get())
        self.last_moved = time.monotonic()
        self.call: grpc.Future | None = None
        self.stalled = False

    def moved(self) -> None:
        self.last_moved = time.monotonic()

    @contextlib.contextmanager
    def watching(self, call: grpc.Future) -> Iterator[None]:
        self.call = call
        self.moved()
        _watchdog.add(self)
        try:
            yield
        except Exception:
            if self.stalled:
                raise errors.Unavailable(
                    f"not answering (nothing moved for {self.seconds:.1f}s)"
                ) from None
            raise
        finally:
            _watchdog.discard(self)


class _Watchdog:
    """One thread for every Stall of the process (a download per cold read: no thread
    each), looking every WATCH_SECONDS while any is watched."""

    WATCH_SECONDS = 0.1

    def __init__(self) -> None:
        self._watched: set[Stall] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, stall: Stall) -> None:
        with self._changed:
            self._watched.add(stall)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="stalls")
                self._thread.start()
            self._changed.notify()

    def discard(self, stall: Stall) -> None:
        with self._changed:
            self._watched.discard(stall)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._watched:
                    self._changed.wait()
                watched = list(self._watched)
            now = time.monotonic()
            for stall in watched:
                if now - stall.last_moved > stall.seconds and stall.call is not None:
                    stall.stalled = True
                    stall.call.cancel()
                    self.discard(stall)
            time.sleep(self.WATCH_SECONDS)


_watchdog = _Watchdog()


def rpc(fn: Callable[P, T]) -> Callable[P, T]:
    """Maps RpcError to domain errors; retries calls that did not get through.

    A call keeps one request id (request_id()) across its retries. The
    first argument is the client: its retry_window, if it has one, bounds them,
    and so does patience().
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        now = time.monotonic()
        answer_by = _deadline.set(min(_deadline.get(), now + _patience.get()))
        deadline = min(now + getattr(args[0], "retry_window", RETRY_WINDOW), _deadline.get())
        delay = 0.05
        outer = _request_id.set(_request_id.get() or uuid.uuid4().hex)
        try:
            while True:
                try:
                    return fn(*args, **kwargs)
                except grpc.RpcError as exc:
                    left = deadline - time.monotonic()
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and left > 0:
                        time.sleep(min(delay, left))
                        delay = min(delay * 2, 1.0)
                        continue
                    raise translate(exc) from None
        finally:
            _request_id.reset(outer)
            _deadline.reset(answer_by)

    return wrapper


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Token = Callable[[], str]


def signed_channel(
    address: str,
    token: Token | None,
    trust: Trust | None,
    interceptors: Sequence[object] = (),
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A channel sending token with every call: TLS when trust is given (see fusefs.cli.trust).

    interceptors (tests) see each call first; options: more channel options.
    """
    channel = create_channel(address, trust, options)
    if token is not None:
        channel = grpc.intercept_channel(channel, auth.BearerAuth(token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
