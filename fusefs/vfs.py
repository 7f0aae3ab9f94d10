"""The drive as a POSIX file system, in inode numbers and domain values.

Owns: POSIX rules (names, which call applies to which kind), the mapping of
inodes to metad nodes, open files, and turning change events from other
devices into cache invalidations. Knows nothing of pyfuse3: the operations
layer translates, and kernel invalidations are handed in as callables.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, MetadataClient
from fusefs.files import OpenFile
from fusefs.inodes import InodeTable
from fusefs.models import Change, ChangeKind, Kind, Node, Revision, Usage

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255
READDIR_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What the kernel must forget: an inode's attrs/data, or a directory entry."""

    inode: int = 0
    attr_only: bool = False
    parent_inode: int = 0
    name: str = ""
    deleted_inode: int = 0


Invalidator = Callable[[list[Invalidation]], Awaitable[None]]


def check_name(raw: bytes) -> str:
    if len(raw) > MAX_NAME_BYTES:
        raise errors.NameTooLong(f"name longer than {MAX_NAME_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidName("names must be UTF-8") from None


class Vfs:
    def __init__(
        self,
        meta: MetadataClient,
        blocks: BlockClient,
        cache: BlockCache,
        root: Node,
        staging_dir: Path,
        *,
        limiter: trio.CapacityLimiter,
    ) -> None:
        self.meta = meta
        self.blocks = blocks
        self.cache = cache
        self.inodes = InodeTable(root.id)
        self.inodes.update(root)
        self._staging_dir = staging_dir
        self._limiter = limiter
        self._files: dict[int, OpenFile] = {}  # inode -> open file
        self._handles: dict[int, OpenFile] = {}  # fh -> open file
        self._next_fh = 1
        self._nursery: trio.Nursery | None = None
        self._invalidator: Invalidator | None = None

    def start(self, nursery: trio.Nursery, invalidator: Invalidator) -> None:
        """Background work (prefetch) runs in nursery; invalidator reaches the kernel."""
        self._nursery = nursery
        self._invalidator = invalidator

    async def _call(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _node_id(self, inode: int) -> int:
        return self.inodes.node_of(inode)

    # --- names and attributes -----------------------------------------

    async def lookup(self, parent_inode: int, raw_name: bytes) -> tuple[int, Node]:
        name = check_name(raw_name)
        node = await self._call(self.meta.lookup, self._node_id(parent_inode), name)
        return self.inodes.remember(node), self._with_local(node)

    def forget(self, inode: int, count: int) -> None:
        self.inodes.forget(inode, count)

    async def getattr(self, inode: int) -> Node:
        node = self.inodes.cached(inode)
        if node is None:
            node = await self._call(self.meta.stat, self._node_id(inode))
            self.inodes.update(node)
        return self._with_local(node)

    def _with_local(self, node: Node) -> Node:
        f = self._files.get(self.inodes.inode_of(node.id))
        return f.attributes(node) if f is not None else node

    async def setattr(
        self,
        inode: int,
        *,
        mode: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> Node:
        node_id = self._node_id(inode)
        if size is not None:
            node = await self.getattr(inode)
            if node.kind == Kind.DIRECTORY:
                raise errors.IsADirectory("cannot truncate a directory")
            f = await self._open_file(inode)
            try:
                await f.truncate(size)
                if mtime_ns is not None:
                    f.touch(mtime_ns)
                    mtime_ns = None
                if f.handles == 0:
                    # truncate(2) on a path: nothing will close it, commit now.
                    await self._commit(inode, f)
            finally:
                self._maybe_close(inode, f)
        if mtime_ns is not None and inode in self._files and self._files[inode].dirty:
            self._files[inode].touch(mtime_ns)
            mtime_ns = None
        if mode is not None or mtime_ns is not None:
            node = await self._call(self.meta.set_attributes, node_id, mode, mtime_ns)
            self.inodes.update(node)
        return await self.getattr(inode)

    async def readlink(self, inode: int) -> bytes:
        node = await self.getattr(inode)
        if node.kind != Kind.SYMLINK:
            raise errors.InvalidArgument("not a symbolic link")
        return node.symlink_target.encode()

    async def statfs(self) -> Usage:
        return await self._call(self.meta.usage)

    # --- directories ------------------------------------------------------

    async def opendir(self, inode: int) -> int:
        node = await self.getattr(inode)
        if node.kind != Kind.DIRECTORY:
            raise errors.NotADirectory("not a directory")
        return inode

    async def readdir(self, inode: int, after_id: int) -> tuple[list[Node], bool]:
        """A page of entries after the entry with node id after_id."""
        nodes, more = await self._call(
            self.meta.list_directory, self._node_id(inode), after_id, READDIR_PAGE
        )
        for node in nodes:
            self.inodes.update(node)
        return [self._with_local(n) for n in nodes], more

    def entry_added(self, node: Node) -> int:
        """The kernel accepted a readdir entry: count it as a lookup."""
        return self.inodes.remember(node)

    async def mkdir(self, parent_inode: int, raw_name: bytes, mode: int) -> tuple[int, Node]:
        name = check_name(raw_name)
        node = await self._call(self.meta.make_directory, self._node_id(parent_inode), name, mode)
        self.inodes.touch(parent_inode, time.time_ns())
        return self.inodes.remember(node), node

    async def symlink(self, parent_inode: int, raw_name: bytes, target: bytes) -> tuple[int, Node]:
        name = check_name(raw_name)
        node = await self._call(
            self.meta.create_symlink, self._node_id(parent_inode), name, os.fsdecode(target)
        )
        self.inodes.touch(parent_inode, time.time_ns())
        return self.inodes.remember(node), node

    async def unlink(self, parent_inode: int, raw_name: bytes) -> None:
        await self._remove(parent_inode, raw_name, directory=False)

    async def rmdir(self, parent_inode: int, raw_name: bytes) -> None:
        await self._remove(parent_inode, raw_name, directory=True)

    async def _remove(self, parent_inode: int, raw_name: bytes, directory: bool) -> None:
        name = check_name(raw_name)
        node_id = await self._call(self.meta.delete, self._node_id(parent_inode), name, directory)
        self.inodes.touch(parent_inode, time.time_ns())
        self.inodes.invalidate(self.inodes.inode_of(node_id))

    async def rename(
        self,
        parent_inode: int,
        raw_name: bytes,
        new_parent_inode: int,
        raw_new_name: bytes,
        no_replace: bool,
    ) -> None:
        name, new_name = check_name(raw_name), check_name(raw_new_name)
        node, replaced = await self._call(
            self.meta.rename,
            self._node_id(parent_inode),
            name,
            self._node_id(new_parent_inode),
            new_name,
            no_replace,
        )
        self.inodes.update(node)
        for inode in (parent_inode, new_parent_inode, self.inodes.inode_of(replaced)):
            self.inodes.invalidate(inode)

    # --- files ------------------------------------------------------------

    async def create(self, parent_inode: int, raw_name: bytes, mode: int) -> tuple[int, int, Node]:
        """A new empty file, opened: (fh, inode, node)."""
        name = check_name(raw_name)
        node = await self._call(self.meta.create_file, self._node_id(parent_inode), name, mode)
        self.inodes.touch(parent_inode, time.time_ns())
        inode = self.inodes.remember(node)
        empty = Revision(node.id, node.revision, 0, node.mtime_ns, ())
        f = self._new_open_file(inode, node, empty)
        return self._add_handle(f), inode, node

    async def open(self, inode: int, truncate: bool) -> int:
        node = await self.getattr(inode)
        if node.kind == Kind.DIRECTORY:
            raise errors.IsADirectory("is a directory")
        f = await self._open_file(inode)
        fh = self._add_handle(f)
        if truncate and f.size:
            await f.truncate(0)
        return fh

    async def _open_file(self, inode: int) -> OpenFile:
        f = self._files.get(inode)
        if f is None:
            revision = await self._call(self.meta.get_revision, self._node_id(inode), 0)
            f = self._files.get(inode)  # another task may have opened it meanwhile
            if f is None:
                node = await self.getattr(inode)
                f = self._new_open_file(inode, node, revision)
        return f

    def _new_open_file(self, inode: int, node: Node, revision: Revision) -> OpenFile:
        assert self._nursery is not None, "Vfs.start() not called"
        f = OpenFile(
            node,
            revision,
            meta=self.meta,
            blocks=self.blocks,
            cache=self.cache,
            staging_dir=self._staging_dir,
            limiter=self._limiter,
            nursery=self._nursery,
        )
        self._files[inode] = f
        return f

    def _add_handle(self, f: OpenFile) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = f
        f.handles += 1
        return fh

    def _file(self, fh: int) -> OpenFile:
        try:
            return self._handles[fh]
        except KeyError:
            raise errors.InvalidArgument("bad file handle") from None

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        return await self._file(fh).read(offset, size)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        return await self._file(fh).write(offset, data)

    async def flush(self, fh: int) -> None:
        """close(2) of a descriptor: make the content durable on the server."""
        f = self._file(fh)
        await self._commit(self.inodes.inode_of(f.node.id), f)

    async def release(self, fh: int) -> None:
        f = self._handles.pop(fh, None)
        if f is None:
            return
        f.handles -= 1
        inode = self.inodes.inode_of(f.node.id)
        try:
            if f.handles == 0:
                await self._commit(inode, f)
        finally:
            self._maybe_close(inode, f)

    def _maybe_close(self, inode: int, f: OpenFile) -> None:
        if f.handles == 0 and not f.dirty and self._files.get(inode) is f:
            del self._files[inode]
            f.close()

    async def _commit(self, inode: int, f: OpenFile) -> None:
        node = await f.commit(self._invalidate_data)
        if node is not None:
            self.inodes.update(node)

    async def commit_all(self) -> None:
        """Commits every file with unsaved edits (before unmounting)."""
        for inode, f in list(self._files.items()):
            try:
                await self._commit(inode, f)
            except errors.DriveError as exc:
                log.error("could not save %s: %s", f.node.name, exc)

    async def _invalidate_data(self, node_id: int) -> None:
        inode = self.inodes.inode_of(node_id)
        self.inodes.invalidate(inode)
        if self._invalidator is not None:
            await self._invalidator([Invalidation(inode=inode)])

    # --- changes from other devices --------------------------------------

    async def apply_change(self, change: Change) -> None:
        """Drops what the change made stale, here and in the kernel."""
        if change.device == self.meta.device:
            return  # our own change: caches were updated when we made it
        inode = self.inodes.inode_of(change.node_id)
        parent = self.inodes.inode_of(change.parent_id)
        todo: list[Invalidation] = []
        self.inodes.invalidate(inode)
        self.inodes.invalidate(parent)
        if change.kind == ChangeKind.EDITED:
            f = self._files.get(inode)
            if f is not None and not f.dirty:
                f.stale = True
            todo.append(Invalidation(inode=inode))
        elif change.kind in (ChangeKind.ATTRIBUTES,):
            todo.append(Invalidation(inode=inode, attr_only=True))
        else:
            todo.append(Invalidation(inode=parent, attr_only=True))
            if change.kind == ChangeKind.DELETED:
                todo.append(
                    Invalidation(parent_inode=parent, name=change.name, deleted_inode=inode)
                )
            else:
                todo.append(Invalidation(parent_inode=parent, name=change.name))
            if change.kind == ChangeKind.MOVED:
                old_parent = self.inodes.inode_of(change.old_parent_id)
                self.inodes.invalidate(old_parent)
                todo.append(Invalidation(inode=old_parent, attr_only=True))
                todo.append(Invalidation(parent_inode=old_parent, name=change.old_name))
                if change.replaced_node_id:
                    self.inodes.invalidate(self.inodes.inode_of(change.replaced_node_id))
        todo = [t for t in todo if t.inode == 0 or self.inodes.known(t.inode)]
        if todo and self._invalidator is not None:
            await self._invalidator(todo)
