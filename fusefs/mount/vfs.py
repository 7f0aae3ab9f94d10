"""The drive as a POSIX file system, in inode numbers and domain values.

Owns: POSIX rules (names, which call applies to which kind), the mapping of
inodes to metad nodes and the lookups the kernel counts, and routing each
call to the part that does it: the node as shown and what a role allows
(node_view.py), entries (entries.py), open files (handles.py), extended
attributes (xattrs.py), landings, other devices' changes and kernel
invalidations (upkeep.py). Virtual folders ("Shared with me",
.drive-history) live in virtual.py; this module routes their inodes there.

Must not: know of pyfuse3 (the operations layer translates, and kernel
invalidations are handed in as callables), or be called back by the parts
beneath it.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, MetadataClient
from fusefs.models import (
    NO_OWNERSHIP,
    AttributeChange,
    Change,
    Kind,
    Node,
    Ownership,
    Revision,
    Usage,
)
from fusefs.mount.entries import EntryChanges
from fusefs.mount.files import OpenFile
from fusefs.mount.handles import OpenFiles
from fusefs.mount.inodes import (
    ROOT_INODE,
    VIRTUAL_BASE,
    DirEntry,
    InodeTable,
    Invalidation,
    is_virtual,
)
from fusefs.mount.journal import Journal
from fusefs.mount.namespace import Namespace
from fusefs.mount.node_view import NodeView
from fusefs.mount.remote import RemoteChanges
from fusefs.mount.synchronizer import RECOVERED_FOLDER, Synchronizer
from fusefs.mount.upkeep import Invalidator, Upkeep
from fusefs.mount.virtual import HISTORY_FOLDER, VirtualTree
from fusefs.mount.xattrs import ExtendedAttributes
from fusefs.shared import PENDING_XATTR, SHARED_FOLDER
from protos import names

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255
READDIR_PAGE = 1000
DOTS = 2  # "." and ".." take the first two readdir offsets
MAX_FILE_BYTES = 128 * 1024**3  # the drive's limit (metad refuses more): EFBIG past it


# Asked of every entry by `ls -l` (an SELinux label, POSIX ACLs), and by cp and tar. Not
# there, they are "not supported", as on a file system without labels or ACLs: those
# programs then stop asking for the rest of the device (ENODATA would cost a request
# per entry each). A label set on a node is still shown.
ACL_NAMES = frozenset({"system.posix_acl_access", "system.posix_acl_default"})
UNLABELLED = frozenset({"security.selinux", *ACL_NAMES})


# Names that may appear in the root without a change that invalidates them: those the
# virtual tree shows ("Shared with me", .drive-history, either with TAKEN after it), and
# the folder our own synchronizer makes for refused changes (our own changes are not
# invalidated; the conflicted copies it makes carry a timestamp no one looks up before).
_UNFOLLOWED_ROOT_NAMES = tuple(
    names.to_bytes(n) for n in (SHARED_FOLDER, HISTORY_FOLDER, RECOVERED_FOLDER)
)


def _absent(name: str) -> errors.DriveError:
    if name in UNLABELLED:
        return errors.NotSupported(f"no {name!r} set: the drive makes no labels or ACLs of its own")
    return errors.NoAttribute(f"no attribute {name!r}")


def check_name(raw: bytes) -> str:
    """A name from the kernel as it travels (any bytes Linux accepts; protos.names)."""
    if len(raw) > MAX_NAME_BYTES:
        raise errors.NameTooLong(f"name longer than {MAX_NAME_BYTES} bytes")
    return names.from_bytes(raw)


class Vfs:
    def __init__(
        self,
        meta: MetadataClient,
        names: Namespace,
        journal: Journal,
        sync: Synchronizer,
        blocks: BlockClient,
        cache: BlockCache,
        root: Node,
        staging_dir: Path,
        *,
        limiter: trio.CapacityLimiter,
    ) -> None:
        self.meta = meta
        self.names = names
        self.journal = journal
        self.sync = sync
        self.blocks = blocks
        self.cache = cache
        self.user_id = root.owner_id  # whose drive this mount shows
        self.inodes = InodeTable(root.id)
        self.inodes.update(root)
        self.virtual = VirtualTree(meta, self._call, self.inodes, root)
        self.files = OpenFiles(
            inodes=self.inodes,
            names=names,
            journal=journal,
            sync=sync,
            cache=cache,
            staging_dir=staging_dir,
            user_id=self.user_id,
        )
        self.entries = EntryChanges(
            meta=meta,
            names=names,
            journal=journal,
            sync=sync,
            inodes=self.inodes,
            files=self.files,
            user_id=self.user_id,
        )
        # The replica may have lost recent changes in a crash; the journal has not.
        self.entries.replay(journal.pending())
        self.remote = RemoteChanges(
            meta=meta,
            blocks=blocks,
            cache=cache,
            inodes=self.inodes,
            files=self.files.by_inode,
            virtual=self.virtual,
            user_id=self.user_id,
            limiter=limiter,
        )
        self.xattrs = ExtendedAttributes(meta, self.entries, journal, sync)
        self.view = NodeView(
            meta=meta,
            names=names,
            journal=journal,
            inodes=self.inodes,
            files=self.files,
            entries=self.entries,
            virtual=self.virtual,
            call=self._call,
        )
        self.upkeep = Upkeep(
            meta=meta,
            names=names,
            journal=journal,
            sync=sync,
            inodes=self.inodes,
            files=self.files,
            entries=self.entries,
            remote=self.remote,
            virtual=self.virtual,
            view=self.view,
            user_id=self.user_id,
            call=self._call,
        )

    def start(self, nursery: trio.Nursery, invalidator: Invalidator) -> None:
        """Background work (prefetch, atimes) runs in nursery; invalidator reaches the kernel."""
        self.files.start(nursery)
        self.upkeep.start(nursery, invalidator)

    async def _call(self, fn, *args):
        return await self.names.ask(fn, *args)

    def _node_id(self, inode: int) -> int:
        return self.inodes.node_of(inode)

    def _remember(self, node: Node) -> int:
        """Counts a lookup of node (real or virtual); returns its inode."""
        if is_virtual(node.id):
            self.virtual.remember(node.id)
            return node.id
        return self.inodes.remember(node)

    # --- names and attributes -----------------------------------------

    async def lookup(self, parent_inode: int, raw_name: bytes) -> tuple[int, Node]:
        name = check_name(raw_name)
        node: Node | None = None
        if is_virtual(parent_inode):
            node = await self.virtual.lookup(parent_inode, name)
        elif parent_inode == ROOT_INODE:
            node = await self.virtual.root_name(name)
        if node is None:
            node = await self.names.lookup(self._node_id(parent_inode), name)
        inode = self._remember(node)
        return inode, self.view.with_local(node, inode)

    def absence_followed(self, parent_inode: int, raw_name: bytes) -> bool:
        """Whether a name missing here may be remembered by the kernel: a name that
        appears in a folder of our own drive comes with a change that invalidates it
        (RemoteChanges). Not so in virtual folders, for the names they show in the
        root (they come and go without one), or in folders others share with us
        (their changes are followed as far as shares are: not counted on here)."""
        if is_virtual(parent_inode):
            return False
        parent = self.inodes.cached(parent_inode)
        if parent is None or parent.owner_id != self.user_id:
            return False
        return parent_inode != ROOT_INODE or not raw_name.startswith(_UNFOLLOWED_ROOT_NAMES)

    def forget(self, inode: int, count: int) -> None:
        if is_virtual(inode):
            self.virtual.forget(inode, count)
        else:
            self.inodes.forget(inode, count)

    async def getattr(self, inode: int) -> Node:
        return await self.view.getattr(inode)

    async def setattr(
        self,
        inode: int,
        *,
        mode: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        owner: Ownership = NO_OWNERSHIP,
    ) -> Node:
        """Changes what is given. Who may is the kernel's to check (default_permissions)."""
        if is_virtual(inode):
            raise self.virtual.refusal(inode)
        await self.view.require_writable(inode)
        node_id = self._node_id(inode)
        if size is not None:
            node = await self.getattr(inode)
            if node.kind == Kind.DIRECTORY:
                raise errors.IsADirectory("cannot truncate a directory")
            if size > MAX_FILE_BYTES:
                raise errors.FileTooLarge(f"a file is at most {MAX_FILE_BYTES} bytes")
            f = await self._open_file(inode)
            try:
                await f.truncate(size)
                if mtime_ns is not None:
                    f.touch(mtime_ns)
                    mtime_ns = None
                if f.handles == 0:
                    # truncate(2) on a path: nothing will close it, seal now.
                    await self.files.seal(f)
            finally:
                self.files.close_if_idle(inode, f)
        f = self.files.get(inode)
        if f is not None and f.dirty:
            # Unsaved edits: what is set now goes with their commit.
            if mtime_ns is not None:
                f.touch(mtime_ns)
                mtime_ns = None
            change = AttributeChange(mode, atime_ns, owner)
            if not change.empty:
                f.hold(change)
                mode, atime_ns, owner = None, None, NO_OWNERSHIP
        change = AttributeChange(mode, atime_ns, owner)
        if not change.empty or mtime_ns is not None:
            # Journaled, as a write is: sent in order with the node's other changes.
            # Into the content closed last, unless a program has the file open (what it
            # shows then comes from the open file and the ATTRIBUTES rows).
            self.journal.record_attributes(node_id, change, mtime_ns, into_commit=f is None)
            self.sync.wake()
        return await self.getattr(inode)

    # --- extended attributes ---------------------------------------------

    async def getxattr(self, inode: int, name: str) -> bytes:
        if inode == ROOT_INODE and name == PENDING_XATTR:
            return self.sync.status().as_json()
        node = self.inodes.cached(inode)
        if node is not None and self.xattrs.none_on(node):
            # Known to have none (the kernel asks before each write, `ls -l` of each
            # entry): answered without the asynchronous path below.
            raise _absent(name)
        value = (await self._xattrs_of(inode)).get(name)
        if value is None:
            raise _absent(name)
        return value

    async def listxattr(self, inode: int) -> list[str]:
        return sorted(await self._xattrs_of(inode))

    async def setxattr(self, inode: int, name: str, value: bytes) -> None:
        if is_virtual(inode):
            raise self.virtual.refusal(inode)
        if name in ACL_NAMES:
            # Kept, an ACL would be shown by getfacl yet never enforced: refused, as on
            # a file system without ACLs (setfacl says "Operation not supported").
            raise errors.NotSupported("the drive has no POSIX ACLs: use the mode bits")
        await self.xattrs.set(inode, await self.view.require_writable(inode), name, value)

    async def removexattr(self, inode: int, name: str) -> None:
        if is_virtual(inode):
            raise self.virtual.refusal(inode)
        await self.xattrs.remove(inode, await self.view.require_writable(inode), name)

    async def _xattrs_of(self, inode: int) -> dict[str, bytes]:
        if is_virtual(inode):
            return {}
        return await self.xattrs.of(inode, await self.view.stored(inode))

    async def readlink(self, inode: int) -> bytes:
        node = await self.getattr(inode)
        if node.kind != Kind.SYMLINK:
            raise errors.InvalidArgument("not a symbolic link")
        return names.to_bytes(node.symlink_target)

    async def statfs(self) -> Usage:
        return await self.names.usage()

    # --- directories ------------------------------------------------------

    async def opendir(self, inode: int) -> int:
        if is_virtual(inode):
            await self.virtual.opendir(inode)
            return inode
        node = await self.getattr(inode)
        if node.kind != Kind.DIRECTORY:
            raise errors.NotADirectory("not a directory")
        return inode

    async def readdir(self, inode: int, after: int) -> tuple[list[DirEntry], int | None]:
        """A page of entries after offset `after`, and where the next page starts (None: done).

        "." and ".." come first, at offsets 1 and 2; an entry then sits at its
        entry id (a node's id, or a further name's) plus DOTS; virtual entries
        of the root come after the real ones, with offsets no entry id reaches.
        """
        if is_virtual(inode):
            return await self.virtual.readdir(inode, after)
        entries: list[DirEntry] = []
        if after < DOTS:
            here = await self.getattr(inode)
            self.upkeep.note_read(inode)
            parent_inode = self.inodes.inode_of(here.parent_id) if here.parent_id else inode
            parent = self.inodes.cached(parent_inode) or here
            dots = [DirEntry(".", inode, here, 1), DirEntry("..", parent_inode, parent, DOTS)]
            entries += dots[after:]
        if after < VIRTUAL_BASE:
            dir_id = self._node_id(inode)
            await self.names.list(dir_id)
            nodes = self.names.entries(dir_id, max(after - DOTS, 0), READDIR_PAGE)
            more = len(nodes) == READDIR_PAGE
            for node in nodes:
                self.inodes.update(node)
                node = self.view.with_local(node)
                entries.append(
                    DirEntry(node.name, self.inodes.inode_of(node.id), node, node.entry_id + DOTS)
                )
            if more and nodes:
                return entries, nodes[-1].entry_id + DOTS
            if inode == ROOT_INODE:
                entries += await self.virtual.root_entries()
        return entries, None

    def entry_added(self, entry: DirEntry) -> None:
        """The kernel accepted a readdir entry: count it as a lookup ("." and ".." are not)."""
        if entry.name not in (".", ".."):
            self._remember(entry.node)

    async def _new_entry(
        self, parent_inode: int, raw_name: bytes, mode: int, creator: Ownership, directory: bool
    ) -> tuple[str, int, Ownership, Node]:
        """The name, mode and owner of a new entry, and its folder, once the folder allows it.

        BSD group semantics, as Linux keeps them: in a setgid folder a new
        entry gets the folder's group, and a new folder is setgid too.
        """
        name = check_name(raw_name)
        await self.view.may_change_entry(parent_inode, name)
        parent = await self.getattr(parent_inode)
        if parent.mode & stat.S_ISGID:
            creator = Ownership(creator.uid, parent.gid)
            if directory:
                mode |= stat.S_ISGID
        return name, mode, creator, parent

    async def mkdir(
        self, parent_inode: int, raw_name: bytes, mode: int, creator: Ownership = NO_OWNERSHIP
    ) -> tuple[int, Node]:
        name, mode, owner, parent = await self._new_entry(
            parent_inode, raw_name, mode, creator, True
        )
        node = await self.entries.make(parent, name, Kind.DIRECTORY, mode, owner)
        return self.entries.created(parent_inode, node), node

    async def symlink(
        self, parent_inode: int, raw_name: bytes, target: bytes, creator: Ownership = NO_OWNERSHIP
    ) -> tuple[int, Node]:
        name, _, owner, parent = await self._new_entry(parent_inode, raw_name, 0, creator, False)
        text = names.from_bytes(target)
        node = await self.entries.make(parent, name, Kind.SYMLINK, 0o777, owner, target=text)
        return self.entries.created(parent_inode, node), node

    async def mknod(
        self,
        parent_inode: int,
        raw_name: bytes,
        kind: Kind,
        mode: int,
        rdev: int,
        creator: Ownership = NO_OWNERSHIP,
    ) -> tuple[int, Node]:
        """A FIFO, device or socket (a regular file: create, then close)."""
        if kind == Kind.FILE:
            fh, inode, node = await self.create(parent_inode, raw_name, mode, creator)
            await self.release(fh)
            return inode, node
        name, mode, owner, parent = await self._new_entry(
            parent_inode, raw_name, mode, creator, False
        )
        node = await self.entries.make(parent, name, kind, mode, owner, rdev=rdev)
        return self.entries.created(parent_inode, node), node

    async def unlink(self, parent_inode: int, raw_name: bytes) -> None:
        await self._remove(parent_inode, raw_name, directory=False)

    async def rmdir(self, parent_inode: int, raw_name: bytes) -> None:
        await self._remove(parent_inode, raw_name, directory=True)

    async def _remove(self, parent_inode: int, raw_name: bytes, directory: bool) -> None:
        name = check_name(raw_name)
        await self.view.may_change_entry(parent_inode, name)
        await self.entries.remove(parent_inode, name, directory)

    async def rename(
        self,
        parent_inode: int,
        raw_name: bytes,
        new_parent_inode: int,
        raw_new_name: bytes,
        no_replace: bool,
        exchange: bool = False,
    ) -> None:
        """rename(2); exchange: RENAME_EXCHANGE, the two entries swap."""
        name, new_name = check_name(raw_name), check_name(raw_new_name)
        if not (is_virtual(parent_inode) or is_virtual(new_parent_inode)):
            source = await self.getattr(parent_inode)
            target = await self.getattr(new_parent_inode)
            if source.owner_id != target.owner_id:
                # Between two people's drives: EXDEV before any permission
                # check (as between two mounts), so `mv` copies instead.
                raise errors.CrossDrive("a move between two drives: copy instead")
        await self.view.may_change_entry(parent_inode, name)
        await self.view.may_change_entry(new_parent_inode, new_name)
        await self.entries.rename(
            parent_inode, name, new_parent_inode, new_name, no_replace, exchange
        )

    async def link(self, inode: int, new_parent_inode: int, raw_name: bytes) -> tuple[int, Node]:
        """A further name (hard link) for inode's node; the node as the new name shows it."""
        name = check_name(raw_name)
        if is_virtual(inode):
            raise self.virtual.refusal(inode)
        node = await self.view.stored(inode)
        target = await self.view.stored(new_parent_inode)
        if node.owner_id != target.owner_id:
            raise errors.CrossDrive("a link between two drives: copy instead")
        await self.view.may_change_entry(new_parent_inode, name)
        linked = await self.entries.link(node, new_parent_inode, name)
        return self.inodes.remember(linked), self.view.with_local(linked)

    # --- files ------------------------------------------------------------

    async def create(
        self, parent_inode: int, raw_name: bytes, mode: int, creator: Ownership = NO_OWNERSHIP
    ) -> tuple[int, int, Node]:
        """A new empty file, opened: (fh, inode, node)."""
        name, mode, owner, parent = await self._new_entry(
            parent_inode, raw_name, mode, creator, False
        )
        node = await self.entries.make(parent, name, Kind.FILE, mode, owner)
        inode = self.entries.created(parent_inode, node)
        empty = Revision(node.id, node.revision, 0, node.mtime_ns, ())
        f = self.files.new(inode, node, empty)
        return self.files.add_handle(f), inode, node

    async def open(self, inode: int, *, write: bool = False, truncate: bool = False) -> int:
        """A handle on a file; write: opened for writing (or truncating)."""
        if is_virtual(inode):
            if write or truncate:
                raise self.virtual.refusal(inode)
            revision = await self.virtual.revision(inode)
            return self.files.reader(revision)
        node = await self.getattr(inode)
        if node.kind == Kind.DIRECTORY:
            raise errors.IsADirectory("is a directory")
        if write or truncate:
            await self.view.require_writable(inode)
        f = await self._open_file(inode, need_content=not truncate)
        fh = self.files.add_handle(f)
        if truncate and f.size:
            await f.truncate(0)
        return fh

    async def _open_file(self, inode: int, need_content: bool = True) -> OpenFile:
        f = self.files.current(inode)
        if f is None:
            node = await self.getattr(inode)
            local = self.journal.latest(node.id) is not None or self.journal.creating(node.id)
            if local or not need_content:
                # Its content is the journal's (closed, not committed yet; or a file
                # made here, empty), or is about to be cut to nothing (O_TRUNC).
                revision = Revision(node.id, node.revision, node.size, node.mtime_ns, ())
            else:
                revision = await self.names.revision(node)
            f = self.files.current(inode)  # another task may have opened it meanwhile
            if f is None:
                node = await self.getattr(inode)
                f = self.files.new(inode, node, revision)
        return f

    async def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        f = self.files.handle(fh)
        if isinstance(f, OpenFile):
            if f.stale and not f.local:
                # A share of its owner changed: read on only if it is still ours to read.
                f.reload(await self._call(self.meta.get_revision, f.node.id, 0))
            self.upkeep.note_read(self.inodes.inode_of(f.node.id))
        return await f.read(offset, size)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        f = self.files.handle(fh)
        if not isinstance(f, OpenFile):
            raise errors.ReadOnly("past revisions are read-only")
        if offset + len(data) > MAX_FILE_BYTES:
            raise errors.FileTooLarge(f"a file is at most {MAX_FILE_BYTES} bytes")
        return await self.files.write(f, offset, data)

    async def flush(self, fh: int) -> None:
        """close(2) of a descriptor: the content is durable on local disk when it returns
        (the write-back journal), and on its way to the servers."""
        f = self.files.handle(fh)
        if isinstance(f, OpenFile) and not f.unlinked:
            try:
                await self.files.seal(f)
            except errors.NoSpace:
                # Dropped: the kernel's pages of the edit go too.
                await self.upkeep.send([Invalidation(inode=self.inodes.inode_of(f.node.id))])
                raise

    async def fsync(self, fh: int) -> None:
        """fsync(2): committed on the servers when they can be reached, else durable here."""
        f = self.files.handle(fh)
        if isinstance(f, OpenFile) and not f.unlinked:
            await self.files.seal(f)
            await self.sync.flush(f.node.id)

    def bypass_page_cache(self, fh: int) -> bool:
        return self.files.bypass_page_cache(fh)

    async def release(self, fh: int) -> None:
        await self.upkeep.send(await self.files.release(fh))

    async def commit_all(self) -> None:
        """Seals every file with unsaved edits and sends the journal (before unmounting)."""
        await self.files.seal_all_and_send()

    async def take_landed(self) -> None:
        """What the synchronizer sent (Upkeep.take_landed; also while unmounting)."""
        await self.upkeep.take_landed()

    async def apply_change(self, change: Change) -> None:
        """A change from another device or user (Upkeep.apply_change)."""
        await self.upkeep.apply_change(change)
