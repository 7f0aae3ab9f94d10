"""A backend in a local directory: one file per object.

Owns the on-disk layout of a data directory and its version:

    DATA/FORMAT                  JSON {"format": "drivefs-blockd-local", "version": 1}
    DATA/LOCK                    flock()ed while a process has the directory open
    DATA/blocks/<key[:2]>/<key>  one file per object, the object's bytes as they are
    DATA/blocks/<xx>/.<key>.<random>.tmp   a write in progress (removed at open)
    DATA/quarantine/<key>.<ns>   a damaged object moved aside (kept for inspection)

A put writes a temp file in the object's own directory, fsyncs it, renames it
over the final name and fsyncs the directory, so an object whose put returned
survives SIGKILL and power loss, and a reader never sees a partial object.
Every blocking call runs in a worker thread, at most `concurrency` at once; a
wrapper's encoding and decoding (put_made, get_then) run in that same thread,
a run of objects (get_many_then) is read and decoded in one thread job, and a
group of objects (put_many, put_many_made) is encoded and written in one: each
to a durable temp file, then all renamed, then each distinct directory fsynced
once (a group commit of the renames; see _write_group).
Objects of 256 KiB and more are read with O_DIRECT into reused aligned buffers,
past the page cache (see _read_direct).

Each object's file is still fsynced on its own (up to _GROUP_WRITERS at once):
syncfs(2) also flushes everyone else's dirty data (writes through a mount on the
same disk 4x slower), and serial fsyncs keep the disk's cache flushes from merging
(an untar through a mount 11 % slower). Small objects packed into shared files
would cut the per-file work the kernel does; not done.

Must not: interpret objects or keys beyond their names; block the event loop;
let an OSError escape (they are mapped to the errors of `base` here, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from blockd.backends.base import (
    Backend,
    BackendError,
    BackendFull,
    BackendSetupError,
    BackendUnavailable,
    Bytes,
    ObjectCorrupt,
    ObjectInfo,
    ObjectNotFound,
    check_key,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "drivefs-blockd-local"
FORMAT_VERSION = 1

_FORMAT_FILE = "FORMAT"
_LOCK_FILE = "LOCK"
_OBJECTS_DIR = "blocks"  # named for what blockd keeps in it
_QUARANTINE_DIR = "quarantine"
_TMP_SUFFIX = ".tmp"

# errnos that mean "this object cannot be read", as opposed to "the disk is not
# there right now"; everything else on a read is BackendUnavailable.
_UNREADABLE = {errno.EIO, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EBADMSG, errno.EUCLEAN}
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT}

# Objects from this size are read with O_DIRECT (see _read_direct), into buffers
# aligned and sized to _DIRECT_ALIGN; up to _BUFFERS_KEPT are kept for the next reads
# (the memory they hold: that many of the largest objects read).
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_DIRECT_FROM_BYTES = 256 * 1024
_DIRECT_ALIGN = 4096
_BUFFERS_KEPT = 8
_buffers: list[mmap.mmap] = []
_buffers_lock = threading.Lock()

T = TypeVar("T")


class LocalBackend(Backend):
    """Objects as files under root; obtain one with `await LocalBackend.open(root)`."""

    def __init__(self, root: Path, lock_fd: int, *, concurrency: int) -> None:
        self.root = root
        self._objects = root / _OBJECTS_DIR
        self._lock_fd: int | None = lock_fd
        self._limit = asyncio.Semaphore(concurrency)

    @classmethod
    async def open(cls, root: Path, *, concurrency: int = 16) -> LocalBackend:
        """Creates or opens the directory: lock, check FORMAT, drop stray temp files.

        Raises BackendSetupError with a message for the user.
        """
        root = root.absolute()
        lock_fd, removed = await asyncio.to_thread(_open_dir, root)
        if removed:
            log.info("removed %d unfinished object writes left by a crash", removed)
        return cls(root, lock_fd, concurrency=concurrency)

    async def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _path(self, key: str) -> Path:
        check_key(key)
        return self._objects / key[:2] / key

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._limit:
            return await asyncio.to_thread(fn, *args)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        with _read_errors(key, path):
            return await self._run(_read_file, path)

    async def get_then(self, key: str, then: Callable[[bytes], T]) -> T:
        path = self._path(key)
        with _read_errors(key, path):
            return await self._run(_read_then, path, then)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | BackendError]:
        return await self.get_many_then(keys, _as_bytes)

    async def get_many_then(
        self, keys: Sequence[str], then: Callable[[str, Bytes], T]
    ) -> list[T | BackendError]:
        paths = [self._path(key) for key in keys]
        return await self._run(_read_each_then, keys, paths, then)

    async def put(self, key: str, data: Bytes) -> int:
        path = self._path(key)
        with _write_errors(path):
            await self._run(self._write_file, path, data)
        return len(data)

    async def put_made(self, key: str, make: Callable[[], Bytes]) -> int:
        path = self._path(key)
        with _write_errors(path):
            return await self._run(self._make_file, path, make)

    async def put_many(self, items: Sequence[tuple[str, Bytes]]) -> list[int | BackendError]:
        return await self.put_many_made(items, _given)

    async def put_many_made(
        self, items: Sequence[tuple[str, Bytes]], make: Callable[[str, Bytes], Bytes]
    ) -> list[int | BackendError]:
        paths = [self._path(key) for key, _ in items]
        return await self._run(self._write_group, paths, items, make)

    def _make_file(self, path: Path, make: Callable[[], Bytes]) -> int:
        data = make()
        self._write_file(path, data)
        return len(data)

    async def contains(self, keys: Sequence[str]) -> list[bool]:
        # One thread hop for the lot: ~2 µs a key, all of it off the loop.
        return await self._run(_exist, str(self._objects), list(keys))

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await self._run(_unlink, path)
        except OSError as exc:
            raise BackendUnavailable(f"cannot delete {path}: {_describe(exc)}") from exc

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        try:
            subdirs = await self._run(_subdirs, self._objects)
            for name in subdirs:
                if not _may_hold(name, prefix):
                    continue
                for info in await self._run(_scan, self._objects / name, prefix):
                    yield info
        except OSError as exc:
            raise BackendUnavailable(f"cannot list {self._objects}: {_describe(exc)}") from exc

    async def quarantine(self, key: str) -> int:
        path = self._path(key)
        try:
            return await self._run(_move_aside, path, self.root / _QUARANTINE_DIR)
        except OSError as exc:
            raise BackendUnavailable(f"cannot quarantine {path}: {_describe(exc)}") from exc

    def _write_file(self, path: Path, data: Bytes) -> None:
        _move_into_place(self._write_temp(path, data), path)
        _fsync_dir(path.parent)

    def _write_temp(self, path: Path, data: Bytes) -> Path:
        """A durable temp file holding data, in path's directory (created if need be)."""
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            # First object of this fan-out directory: create it, durably.
            os.makedirs(path.parent, exist_ok=True)
            _fsync_dir(self._objects)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _write_group(
        self,
        paths: Sequence[Path],
        items: Sequence[tuple[str, Bytes]],
        make: Callable[[str, Bytes], Bytes],
    ) -> list[int | BackendError]:
        """Thread-side put_many_made: a group commit, one thread job for the lot.

        Each object goes to a durable temp file, then all are renamed, then each
        distinct directory is fsynced once (not once per object); the writes and
        the directory fsyncs each by up to _GROUP_WRITERS threads at once. An object counts
        as stored only once its directory's fsync succeeded; each failure is in its
        object's place, and a failed object's temp file is removed.
        """

        def write(place: int) -> tuple[int, Path | None, int | BackendError]:
            path, (key, data) = paths[place], items[place]
            try:
                blob = make(key, data)
                with _write_errors(path):
                    return place, self._write_temp(path, blob), len(blob)
            except BackendError as exc:
                return place, None, exc

        if len(items) > 1:
            # Concurrent fsyncs: the disk's cache flushes of several merge into one.
            written = list(_group_writers().map(write, range(len(items))))
        else:
            written = [write(0)] if items else []
        out: list[int | BackendError] = [result for _, _, result in written]
        renamed: dict[Path, list[int]] = {}  # directory → places of the objects renamed into it
        temps = [(place, tmp, paths[place]) for place, tmp, _ in written if tmp is not None]
        for place, tmp, path in temps:
            try:
                with _write_errors(path):
                    _move_into_place(tmp, path)
                renamed.setdefault(path.parent, []).append(place)
            except BackendError as exc:
                out[place] = exc

        def sync(directory: Path) -> BackendError | None:
            try:
                with _write_errors(directory):
                    _fsync_dir(directory)
            except BackendError as exc:
                return exc
            return None

        if len(renamed) > 1:  # (concurrent for the same reason)
            synced = list(_group_writers().map(sync, renamed))
        else:
            synced = [sync(directory) for directory in renamed]
        for places, error in zip(renamed.values(), synced, strict=True):
            if error is not None:
                for place in places:
                    out[place] = error
        return out


_GROUP_WRITERS = 8  # threads writing the objects of groups (all groups share them)
_group_pool: ThreadPoolExecutor | None = None
_group_pool_lock = threading.Lock()


def _group_writers() -> ThreadPoolExecutor:
    """The threads a group job writes its objects with (made at first use)."""
    global _group_pool
    with _group_pool_lock:
        if _group_pool is None:
            _group_pool = ThreadPoolExecutor(_GROUP_WRITERS, thread_name_prefix="blockd-group")
        return _group_pool


def _given(key: str, data: Bytes) -> Bytes:
    return data


def _may_hold(subdir: str, prefix: str) -> bool:
    """Whether a fan-out directory (a key's first two characters) can hold prefix's keys."""
    return subdir.startswith(prefix) if len(prefix) < 2 else subdir == prefix[:2]


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    """OSError of a write → the backend's errors."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise BackendFull(f"no room for {path}: {_describe(exc)}") from exc
        raise BackendUnavailable(f"cannot write {path}: {_describe(exc)}") from exc


@contextlib.contextmanager
def _read_errors(key: str, path: Path) -> Iterator[None]:
    """OSError of a read → the backend's errors."""
    try:
        yield
    except FileNotFoundError:
        raise ObjectNotFound(key) from None
    except OSError as exc:
        if exc.errno in _UNREADABLE:
            raise ObjectCorrupt(key, _describe(exc)) from exc
        raise BackendUnavailable(f"cannot read {path}: {_describe(exc)}") from exc


def _read_then(path: Path, then: Callable[[Bytes], T]) -> T:
    with _contents(path) as data:
        return then(data)


def _read_each_then(
    keys: Sequence[str], paths: Sequence[Path], then: Callable[[str, Bytes], T]
) -> list[T | BackendError]:
    """Thread-side get_many_then: one object after the other, each one's error in its place."""
    out: list[T | BackendError] = []
    for key, path in zip(keys, paths, strict=True):
        try:
            with _read_errors(key, path):
                out.append(_read_then(path, partial(then, key)))
        except BackendError as exc:
            out.append(exc)
    return out


def _as_bytes(key: str, data: Bytes) -> bytes:
    return bytes(data)  # (no copy when data is bytes already)


def _read_file(path: Path) -> bytes:
    with _contents(path) as data:
        return bytes(data)  # (no copy when data is bytes already)


@contextlib.contextmanager
def _contents(path: Path) -> Iterator[Bytes]:
    """The file's bytes; those of a large one as a view of a buffer read past the
    page cache (see _read_direct), valid until the block exits."""
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        if size >= _DIRECT_FROM_BYTES and _O_DIRECT:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: no O_DIRECT on this file system
                    raise
            else:
                buf = _take_buffer(size)
                try:
                    # Only the file's own pages: past its end, a direct read zero-fills
                    # the rest of the buffer (a 4 MiB one for a 1 MiB object, say).
                    done = _read_direct(fd, memoryview(buf)[: _aligned(size)])
                except _NotDirect:
                    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
                else:
                    yield memoryview(buf)[:done]
                    # Not when the caller failed: its traceback may still hold a view.
                    _give_back(buf)
                    return
        yield f.read()


class _NotDirect(Exception):
    """This file cannot be read with O_DIRECT after all: read it through the page cache."""


def _aligned(size: int) -> int:
    """size rounded up to whole _DIRECT_ALIGN pages."""
    return -(-size // _DIRECT_ALIGN) * _DIRECT_ALIGN


def _read_direct(fd: int, view: memoryview) -> int:
    """Reads a file opened with O_DIRECT into view (aligned, the file's size rounded up
    to whole pages); how many bytes it holds.

    A block is read once and then kept (decoded) in blockd's hot blocks, so filling
    the page cache with it buys little: page cache pages cost more to allocate and
    account for than the reuse of a buffer (about half the CPU per MiB read cold,
    measured here), and the decoding reads the buffer itself.
    """
    done = 0
    while done < len(view):
        try:
            n = os.preadv(fd, [view[done:]], done)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise _NotDirect from None  # alignment refused: a device with large sectors
            raise
        if n == 0:
            break
        done += n
        if done % _DIRECT_ALIGN:
            break  # a short read ends at end of file
    return done


def _take_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer (as O_DIRECT needs) of at least size bytes.

    The smallest kept one that fits (the others stay for larger objects), else a new
    one. Buffers are never closed, only dropped: one goes when the last view of it does.
    """
    want = _aligned(size)
    with _buffers_lock:
        fits = [b for b in _buffers if len(b) >= want]
        if fits:
            buf = min(fits, key=len)
            _buffers.remove(buf)
            return buf
    return mmap.mmap(-1, want)


def _give_back(buf: mmap.mmap) -> None:
    """Keeps buf for the next reads; once _BUFFERS_KEPT are kept, in place of the smallest
    (so the kept ones grow to fit most objects, and a new buffer is rarely made)."""
    with _buffers_lock:
        if len(_buffers) < _BUFFERS_KEPT:
            _buffers.append(buf)
            return
        smallest = min(_buffers, key=len)
        if len(smallest) < len(buf):
            _buffers.remove(smallest)
            _buffers.append(buf)


def _exist(objects: str, keys: list[str]) -> list[bool]:
    """Whether each key's file exists.

    access() is the cheapest probe (no exception per miss). An object it
    cannot see for another reason (EIO, say) counts as missing: the client
    uploads it again, which rewrites it.
    """
    for key in keys:
        check_key(key)
    return [os.access(f"{objects}/{key[:2]}/{key}", os.F_OK) for key in keys]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _move_aside(path: Path, quarantine: Path) -> int:
    """Renames an object into the quarantine directory (durably); its size, 0 if absent."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    quarantine.mkdir(exist_ok=True)
    try:
        os.rename(path, quarantine / f"{path.name}.{time.time_ns()}")
    except FileNotFoundError:
        return 0  # moved or deleted meanwhile
    _fsync_dir(quarantine)
    _fsync_dir(path.parent)
    return size


def _subdirs(objects: Path) -> list[str]:
    with os.scandir(objects) as it:
        return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))


def _scan(directory: Path, prefix: str) -> list[ObjectInfo]:
    infos = []
    with os.scandir(directory) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.name.startswith(prefix):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                infos.append(ObjectInfo(entry.name, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                continue  # deleted while we looked
    infos.sort(key=lambda info: info.key)
    return infos


def _move_into_place(tmp: Path, path: Path) -> None:
    """Renames a durable temp file over its object's name; on failure the temp goes."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_dir(root: Path) -> tuple[int, int]:
    """Thread-side open: returns the locked LOCK file's fd and how many temp files went."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(root / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise BackendSetupError(f"cannot use data directory {root}: {_describe(exc)}") from exc
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackendSetupError(f"data directory {root} is in use by another process") from None
        _check_format(root)
        objects = root / _OBJECTS_DIR
        objects.mkdir(exist_ok=True)
        _fsync_dir(root)
        removed = _remove_temp_files(objects)
        _probe_writable(objects)
    except OSError as exc:
        os.close(lock_fd)
        raise BackendSetupError(f"cannot use data directory {root}: {_describe(exc)}") from exc
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd, removed


def _check_format(root: Path) -> None:
    path = root / _FORMAT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        body = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n"
        with open(tmp, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(root)
        return
    try:
        fmt = json.loads(text)
        name, version = fmt["format"], fmt["version"]
    except (ValueError, TypeError, KeyError):
        raise BackendSetupError(f"{path} is not a blockd format file") from None
    if name != FORMAT_NAME or not isinstance(version, int):
        raise BackendSetupError(f"{path}: not a blockd local store ({text.strip()})")
    if version > FORMAT_VERSION:
        raise BackendSetupError(
            f"{root} holds a store of format version {version}; this blockd knows only "
            f"up to {FORMAT_VERSION} (upgrade blockd)"
        )


def _remove_temp_files(objects: Path) -> int:
    removed = 0
    for name in _subdirs(objects):
        with os.scandir(objects / name) as it:
            stray = [e.path for e in it if e.name.startswith(".") and e.name.endswith(_TMP_SUFFIX)]
        for tmp in stray:
            _unlink(Path(tmp))
            removed += 1
    return removed


def _probe_writable(objects: Path) -> None:
    """Fails now, at start, rather than at the first upload."""
    probe = objects / f".probe.{secrets.token_hex(6)}{_TMP_SUFFIX}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.unlink(probe)
