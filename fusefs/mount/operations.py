"""pyfuse3 request handlers: FUSE types in, Vfs calls, FUSE types out.

The only place errno exists: every DriveError becomes FUSEError through
errors.errno_for. Handlers stay short; POSIX rules live in vfs.py. Every
request runs under fusefs.clients.patience: a server that does not answer
(stopped, overloaded, a dead network path) fails the calls it makes within
seconds, and the mount answers as offline, instead of a program hanging.
"""

from __future__ import annotations

import atexit
import errno
import functools
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from typing import Any

import pyfuse3
import trio

from fusefs import errors
from fusefs.clients import patience
from fusefs.models import Kind, Node, Ownership, Role
from fusefs.mount.inodes import Invalidation
from fusefs.mount.vfs import Vfs
from protos import names

log = logging.getLogger(__name__)

# Kernel caches live this long without a word from us; changes made by other
# devices are pushed sooner through explicit invalidation.
ATTR_TIMEOUT = 2.0
ENTRY_TIMEOUT = 2.0
# A name found missing is remembered by the kernel this long (compilers and
# interpreters look for the same missing names again and again). Every name another
# device makes, moves or brings back is invalidated as its change arrives (remote.py),
# so this can be long: it only bounds how long a missed invalidation would hide one.
ABSENT_TIMEOUT = 30.0
BLOCK_SIZE_HINT = 1024 * 1024  # st_blksize: programs size their I/O by it

_KIND_BITS = {
    Kind.DIRECTORY: stat.S_IFDIR,
    Kind.FILE: stat.S_IFREG,
    Kind.SYMLINK: stat.S_IFLNK,
    Kind.FIFO: stat.S_IFIFO,
    Kind.CHAR_DEVICE: stat.S_IFCHR,
    Kind.BLOCK_DEVICE: stat.S_IFBLK,
    Kind.SOCKET: stat.S_IFSOCK,
}
_KIND_OF_BITS = {bits: kind for kind, bits in _KIND_BITS.items()}


# Set to a file path: each request type's count and seconds spent in its handler
# are written there as JSON when the mount exits (bench/ reads it; off by default).
OP_STATS_ENV = "DRIVEFS_OP_STATS"
_op_stats: dict[str, list[float]] | None = None
if os.environ.get(OP_STATS_ENV):
    _op_stats = {}

    @atexit.register
    def _write_op_stats() -> None:
        with open(os.environ[OP_STATS_ENV], "w") as out:
            json.dump(_op_stats, out)


def _counted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn itself, or (DRIVEFS_OP_STATS set) fn counting its calls and their seconds."""
    if _op_stats is None:
        return fn
    totals = _op_stats.setdefault(fn.__name__, [0, 0.0])

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            totals[0] += 1
            totals[1] += time.perf_counter() - start

    return wrapper


def _errno_boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Maps domain errors to errno; anything unexpected is logged and becomes EIO."""

    @_counted
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with patience():
                return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except errors.DriveError as exc:
            code = errors.errno_for(exc)
            if isinstance(exc, errors.Unavailable):
                # Offline: said once by reachability; each refused call is no news.
                log.info("%s: %s", fn.__name__, exc)
            elif code == errno.EIO:
                log.error("%s: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.exception("%s failed", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class Operations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, vfs: Vfs) -> None:
        super().__init__()
        self.vfs = vfs
        self._uid = os.getuid()
        self._gid = os.getgid()

    def attributes(self, inode: int, node: Node) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.generation = 0
        attr.entry_timeout = ENTRY_TIMEOUT
        attr.attr_timeout = ATTR_TIMEOUT
        mode = node.mode & 0o7777
        if node.role == Role.READ:
            mode &= ~0o222  # shared with us read-only (or a past revision)
        attr.st_mode = _KIND_BITS[node.kind] | mode
        attr.st_nlink = node.nlink
        # Nodes whose owner was never set (made through the API) are the mounting user's.
        attr.st_uid = self._uid if node.uid is None else node.uid
        attr.st_gid = self._gid if node.gid is None else node.gid
        attr.st_rdev = node.rdev
        size = len(names.to_bytes(node.symlink_target)) if node.kind == Kind.SYMLINK else node.size
        attr.st_size = size
        attr.st_blksize = BLOCK_SIZE_HINT
        attr.st_blocks = (size + 511) // 512
        attr.st_atime_ns = node.atime_ns or node.mtime_ns
        attr.st_mtime_ns = node.mtime_ns
        attr.st_ctime_ns = node.ctime_ns
        return attr

    # --- kernel cache invalidation (called by the change follower) ------

    async def invalidate(self, items: list[Invalidation]) -> None:
        for item in items:
            if item.name:
                pyfuse3.invalidate_entry_async(
                    item.parent_inode,
                    names.to_bytes(item.name),
                    deleted=item.deleted_inode,
                    ignore_enoent=True,
                )
            else:
                # invalidate_inode may block: never on the event loop thread.
                await trio.to_thread.run_sync(_invalidate_inode, item.inode, item.attr_only)

    # --- handlers ---------------------------------------------------------

    @_errno_boundary
    async def lookup(self, parent_inode, name, ctx=None):
        try:
            inode, node = await self.vfs.lookup(parent_inode, name)
        except errors.NotFound:
            if not self.vfs.absence_followed(parent_inode, name):
                raise
            return _absent_entry()
        return self.attributes(inode, node)

    @_counted
    async def forget(self, inode_list):
        for inode, count in inode_list:
            self.vfs.forget(inode, count)

    @_errno_boundary
    async def getattr(self, inode, ctx=None):
        return self.attributes(inode, await self.vfs.getattr(inode))

    @_errno_boundary
    async def setattr(self, inode, attr, fields, fh, ctx):
        node = await self.vfs.setattr(
            inode,
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            size=attr.st_size if fields.update_size else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            owner=Ownership(
                attr.st_uid if fields.update_uid else None,
                attr.st_gid if fields.update_gid else None,
            ),
        )
        return self.attributes(inode, node)

    @_errno_boundary
    async def readlink(self, inode, ctx):
        return await self.vfs.readlink(inode)

    @_errno_boundary
    async def mkdir(self, parent_inode, name, mode, ctx):
        inode, node = await self.vfs.mkdir(
            parent_inode, name, mode & 0o7777 & ~ctx.umask, _creator(ctx)
        )
        return self.attributes(inode, node)

    @_errno_boundary
    async def symlink(self, parent_inode, name, target, ctx):
        inode, node = await self.vfs.symlink(parent_inode, name, target, _creator(ctx))
        return self.attributes(inode, node)

    @_errno_boundary
    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        kind = _KIND_OF_BITS.get(stat.S_IFMT(mode))
        if kind is None or kind in (Kind.DIRECTORY, Kind.SYMLINK):
            raise pyfuse3.FUSEError(errno.EINVAL)
        inode, node = await self.vfs.mknod(
            parent_inode, name, kind, mode & 0o7777 & ~ctx.umask, rdev, _creator(ctx)
        )
        return self.attributes(inode, node)

    @_errno_boundary
    async def unlink(self, parent_inode, name, ctx):
        await self.vfs.unlink(parent_inode, name)

    @_errno_boundary
    async def rmdir(self, parent_inode, name, ctx):
        await self.vfs.rmdir(parent_inode, name)

    @_errno_boundary
    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        await self.vfs.rename(
            parent_inode_old,
            name_old,
            parent_inode_new,
            name_new,
            no_replace=bool(flags & pyfuse3.RENAME_NOREPLACE),
            exchange=bool(flags & pyfuse3.RENAME_EXCHANGE),
        )

    @_errno_boundary
    async def link(self, inode, new_parent_inode, new_name, ctx):
        inode, node = await self.vfs.link(inode, new_parent_inode, new_name)
        return self.attributes(inode, node)

    @_errno_boundary
    async def getxattr(self, inode, name, ctx):
        return await self.vfs.getxattr(inode, _xattr_name(name))

    @_errno_boundary
    async def listxattr(self, inode, ctx):
        return [name.encode() for name in await self.vfs.listxattr(inode)]

    @_errno_boundary
    async def setxattr(self, inode, name, value, ctx):
        await self.vfs.setxattr(inode, _xattr_name(name), value)

    @_errno_boundary
    async def removexattr(self, inode, name, ctx):
        await self.vfs.removexattr(inode, _xattr_name(name))

    @_errno_boundary
    async def opendir(self, inode, ctx):
        return await self.vfs.opendir(inode)

    @_errno_boundary
    async def readdir(self, fh, start_id, token):
        after: int | None = start_id
        while after is not None:
            entries, next_after = await self.vfs.readdir(fh, after)
            for entry in entries:
                attr = self.attributes(entry.inode, entry.node)
                if not pyfuse3.readdir_reply(token, names.to_bytes(entry.name), attr, entry.offset):
                    return
                self.vfs.entry_added(entry)
            after = next_after

    @_counted
    async def releasedir(self, fh):
        pass

    @_errno_boundary
    async def open(self, inode, flags, ctx):
        if flags & os.O_ACCMODE != os.O_RDONLY and inode == pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.EISDIR)
        fh = await self.vfs.open(
            inode,
            write=flags & os.O_ACCMODE != os.O_RDONLY,
            truncate=bool(flags & os.O_TRUNC),
        )
        direct = self.vfs.bypass_page_cache(fh)
        return pyfuse3.FileInfo(fh=fh, keep_cache=not direct, direct_io=direct)

    @_errno_boundary
    async def create(self, parent_inode, name, mode, flags, ctx):
        fh, inode, node = await self.vfs.create(
            parent_inode, name, mode & 0o7777 & ~ctx.umask, _creator(ctx)
        )
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), self.attributes(inode, node)

    @_errno_boundary
    async def read(self, fh, off, size):
        return await self.vfs.read(fh, off, size)

    @_errno_boundary
    async def write(self, fh, off, buf):
        return await self.vfs.write(fh, off, buf)

    @_errno_boundary
    async def flush(self, fh):
        await self.vfs.flush(fh)

    @_errno_boundary
    async def fsync(self, fh, datasync):
        await self.vfs.fsync(fh)

    @_errno_boundary
    async def release(self, fh):
        await self.vfs.release(fh)

    @_errno_boundary
    async def statfs(self, ctx):
        usage = await self.vfs.statfs()
        st = pyfuse3.StatvfsData()
        st.f_bsize = BLOCK_SIZE_HINT
        st.f_frsize = BLOCK_SIZE_HINT
        # Without a quota, report the cache disk's free space as a sane bound.
        total = usage.quota_bytes or (usage.used_bytes + _local_free_bytes())
        st.f_blocks = total // BLOCK_SIZE_HINT
        st.f_bfree = max(total - usage.used_bytes, 0) // BLOCK_SIZE_HINT
        st.f_bavail = st.f_bfree
        st.f_files = usage.node_count + 1_000_000
        st.f_ffree = 1_000_000
        st.f_favail = st.f_ffree
        st.f_namemax = 255
        return st


def _absent_entry() -> pyfuse3.EntryAttributes:
    """A lookup's "no such name" the kernel keeps (a negative entry: inode 0)."""
    attr = pyfuse3.EntryAttributes()
    attr.st_ino = 0
    attr.entry_timeout = ABSENT_TIMEOUT
    return attr


def _xattr_name(raw: bytes) -> str:
    """Attribute names the drive keeps are text (user.…, security.…)."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise errors.NotSupported("attribute names are UTF-8") from None


def _creator(ctx: pyfuse3.RequestContext) -> Ownership:
    """Who a new node belongs to: the calling process's user and group."""
    return Ownership(ctx.uid, ctx.gid)


def _invalidate_inode(inode: int, attr_only: bool) -> None:
    try:
        pyfuse3.invalidate_inode(inode, attr_only)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # the kernel had already forgotten it
            log.info("invalidate inode %d: %s", inode, exc)


def _local_free_bytes() -> int:
    st = os.statvfs(os.path.expanduser("~"))
    return st.f_bavail * st.f_frsize
