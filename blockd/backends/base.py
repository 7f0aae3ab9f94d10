"""The object-store interface under blockd's block store, and its errors.

Owns: the small async contract every backend (local directory, S3) and every
wrapper (compression, encryption) implements, the rules for object keys, and
the domain errors a backend may raise. Every operation is idempotent, so a
caller may simply repeat one that failed with BackendUnavailable; a backend
whose failures can be transient (S3) already retries them, under the one
policy of `retry`, before it gives up with BackendUnavailable.

Must not: know about blocks, hashes, gRPC or counters; let an OSError or a
boto3 exception escape (each implementation maps its own failures onto the
errors below, once).
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

# What a backend stores: bytes, a view of the request that brought them (no copy), or
# a buffer an encoding filled in place.
Bytes = bytes | bytearray | memoryview

T = TypeVar("T")

# Object keys are plain names: safe as a file name, an S3 key and a URL part.
# A leading "." is reserved for a backend's own temporary files.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def check_key(key: str) -> str:
    """Returns key if it is a valid object key; a bad key is a caller bug."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a valid object key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int  # bytes the object occupies on the backend (after any encoding)
    modified_ns: int = 0  # when it was last written (garbage collection's grace period)


class BackendError(Exception):
    """Base of every error a backend raises; the message is for humans."""


class ObjectNotFound(BackendError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key} not found")
        self.key = key


class ObjectCorrupt(BackendError):
    """The object exists but cannot be read back intact (I/O error, failed check).

    damaged is False when the object may well be intact but this process
    cannot read it (written with a master key the key file lacks, or in a
    newer format): the store must not quarantine it.
    """

    def __init__(self, key: str, why: str, *, damaged: bool = True) -> None:
        super().__init__(f"object {key} is unreadable: {why}")
        self.key = key
        self.damaged = damaged


class BackendUnavailable(BackendError):
    """The backend cannot serve right now (disk gone, network down); retrying may help."""


class BackendFull(BackendError):
    """The backend has no room (or quota) for the object."""


class BackendSetupError(BackendError):
    """The backend cannot be opened: not writable, in use, or a newer format."""


class Backend(abc.ABC):
    """An object store: immutable byte strings under string keys.

    Implementations must be safe for many concurrent calls from one event
    loop and must never block it. `put` is atomic and durable when it returns:
    a reader sees the old state or the whole new object, never a part, and the
    object survives a crash. Wrappers subclass WrappingBackend.
    """

    # True when get() returns only bytes proven to have been put under that very key
    # (an authenticated encoding binds each object to its key): whoever checked the
    # bytes before put need not check them again after get.
    authenticates_objects: bool = False

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | bytearray:
        """The object's bytes (a bytearray is the caller's to keep: nothing else holds it).
        Raises ObjectNotFound, ObjectCorrupt, BackendUnavailable."""

    async def get_then(self, key: str, then: Callable[[Bytes], T]) -> T:
        """then(the object's bytes), run in a worker thread: how a wrapper decodes.

        then is blocking and CPU-bound, raises no OSError, and keeps nothing of
        what it is given: a view valid only during the call, maybe. A backend that
        reads in worker threads (the local one) runs it in the thread that read
        the object, on the buffer it read into: one hand-off per object instead of
        two, and no copy. Raises what get raises, and what then raises.
        """
        data = await self.get(key)
        return await asyncio.to_thread(then, data)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | bytearray | BackendError]:
        """Each object's bytes, in order, or the error that get would raise for it.

        The objects are read concurrently; an error of one does not stop the others.
        """

        async def one(key: str) -> bytes | BackendError:
            try:
                return await self.get(key)
            except BackendError as exc:
                return exc

        return list(await asyncio.gather(*(one(key) for key in keys)))

    async def get_many_then(
        self, keys: Sequence[str], then: Callable[[str, Bytes], T]
    ) -> list[T | BackendError]:
        """then(key, bytes) of each object, in order, or the error of get or then for it.

        then follows get_then's rules and may raise BackendError (ObjectCorrupt:
        the bytes fail its check). A backend that reads in worker threads (the
        local one) reads and runs then for the whole run in one thread job, one
        object after the other: one hand-off per run instead of one per object.
        """

        async def one(key: str) -> T | BackendError:
            try:
                return await self.get_then(key, partial(then, key))
            except BackendError as exc:
                return exc

        return list(await asyncio.gather(*(one(key) for key in keys)))

    @abc.abstractmethod
    async def put(self, key: str, data: Bytes) -> int:
        """Stores data under key (replacing any object there).

        Returns the bytes the object occupies on the backend. Raises
        BackendFull, BackendUnavailable.
        """

    async def put_made(self, key: str, make: Callable[[], Bytes]) -> int:
        """put(key, make()), make run in a worker thread: how a wrapper encodes.

        make is blocking and CPU-bound, and raises no OSError. A backend that
        writes in worker threads (the local one) runs it in the thread that
        writes the object: one hand-off per object instead of two.
        """
        return await self.put(key, await asyncio.to_thread(make))

    async def put_many(self, items: Sequence[tuple[str, Bytes]]) -> list[int | BackendError]:
        """put of each (key, data), in order: its stored size, or the error put would raise.

        Each object is durable once its size is returned, as after put; an error of
        one does not stop the others. The group commit of small objects: a backend
        that writes in worker threads (the local one) writes a whole group in one
        thread job and makes it durable together; this default puts them concurrently.
        """

        async def one(key: str, data: Bytes) -> int | BackendError:
            try:
                return await self.put(key, data)
            except BackendError as exc:
                return exc

        return list(await asyncio.gather(*(one(key, data) for key, data in items)))

    async def put_many_made(
        self, items: Sequence[tuple[str, Bytes]], make: Callable[[str, Bytes], Bytes]
    ) -> list[int | BackendError]:
        """put_many of each (key, make(key, data)): how a wrapper encodes a group.

        make follows put_made's rules. This default makes the whole group in one
        worker-thread job, then put_many()s it; a backend that writes a group in
        one thread job (the local one) makes each object there, before writing it.
        """

        def make_all() -> list[tuple[str, Bytes]]:
            return [(key, make(key, data)) for key, data in items]

        return await self.put_many(await asyncio.to_thread(make_all) if items else [])

    @abc.abstractmethod
    async def contains(self, keys: Sequence[str]) -> list[bool]:
        """For each key, in order, whether an object exists under it.

        Built for tens of thousands of keys per call. Raises BackendUnavailable.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Removes the object; a missing object is not an error."""

    @abc.abstractmethod
    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order.

        An async generator. Objects put or deleted while it runs may or may
        not appear. Raises BackendUnavailable.
        """

    @abc.abstractmethod
    async def quarantine(self, key: str) -> int:
        """Moves a damaged object aside, kept for inspection but no longer under key.

        Afterwards get, contains and list_objects behave as if it were
        deleted, and a put under key stores a new object. Returns the bytes it
        occupied (0 if there was no object). Raises BackendUnavailable.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Releases what the backend holds (locks, connections). Idempotent."""


class WrappingBackend(Backend):
    """Passes every call to self.backend; a wrapper overrides what it changes.

    (get_then, get_many, put_made, put_many and put_many_made are not passed on:
    their defaults call the wrapper's own get and put, so a wrapper that changes
    those changes them too.)

    The S3QL comprenc pattern: new behaviour (encoding, faults in tests) is a
    wrapper around any backend, not a flag inside one.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def get(self, key: str) -> bytes | bytearray:
        return await self.backend.get(key)

    async def put(self, key: str, data: Bytes) -> int:
        return await self.backend.put(key, data)

    async def contains(self, keys: Sequence[str]) -> list[bool]:
        return await self.backend.contains(keys)

    async def delete(self, key: str) -> None:
        await self.backend.delete(key)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in self.backend.list_objects(prefix):
            yield info

    async def quarantine(self, key: str) -> int:
        return await self.backend.quarantine(key)

    async def close(self) -> None:
        await self.backend.close()
