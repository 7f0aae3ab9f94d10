"""The files programs hold open: handles, one OpenFile per inode, sealing into the journal.

Every handle the kernel holds on a file of the drive maps to the one
OpenFile of its inode (so all see each other's writes), or to a reader of a
past revision. Closing seals edits into the write-back journal; what the
synchronizer commits comes back here (`take_landed`) to update the file.
A handle opened before another device's edit keeps reading its revision:
the superseded OpenFile stays with its handles, newer opens get a new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.models import Kind, Node, Ownership, Revision, replaced
from fusefs.mount.files import OpenFile, RevisionReader, local_disk_error
from fusefs.mount.inodes import InodeTable, Invalidation
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import NEW_FILE_REVISION, PendingChange
from fusefs.mount.landings import Landed
from fusefs.mount.namespace import Namespace
from fusefs.mount.synchronizer import Synchronizer

log = logging.getLogger(__name__)

# Cached blocks evicted at once when the local disk is full (at least this much).
ROOM_BYTES = 64 * 1024**2

Handle = OpenFile | RevisionReader


def made_here(made: PendingChange, user_id: int) -> Node:
    """A file, folder or link made here, as the mount shows it until metad has it."""
    kind = made.node_kind
    return Node(
        id=made.node_id, parent_id=made.parent_id, name=made.name, kind=kind,
        mode=made.held.mode or 0, size=0, mtime_ns=made.mtime_ns, ctime_ns=made.mtime_ns,
        revision=NEW_FILE_REVISION if kind == Kind.FILE else 0, symlink_target=made.target,
        change_sequence=0, owner_id=user_id, uid=made.held.owner.uid, gid=made.held.owner.gid,
        atime_ns=made.mtime_ns, nlink=2 if kind == Kind.DIRECTORY else 1,
        entry_id=made.node_id,
    )  # fmt: skip


@dataclass
class LandingWrites:
    """What a batch's landings write once for all, after the last (OpenFiles.landed_all):
    each folder's times moved once (an untar lands hundreds of files per folder), and
    the revisions' block lists with one statement each."""

    touched: dict[int, int] = field(default_factory=dict)  # folder id -> its latest time
    revisions: list[Revision] = field(default_factory=list)

    def touch(self, dir_id: int, time_ns: int) -> None:
        if time_ns > self.touched.get(dir_id, 0):
            self.touched[dir_id] = time_ns


class OpenFiles:
    def __init__(
        self,
        *,
        inodes: InodeTable,
        names: Namespace,
        journal: Journal,
        sync: Synchronizer,
        cache: BlockCache,
        staging_dir,
        user_id: int,
    ) -> None:
        self._inodes = inodes
        self._names = names
        self._journal = journal
        self._sync = sync
        self._cache = cache
        self._staging_dir = staging_dir
        self._user_id = user_id
        self.by_inode: dict[int, OpenFile] = {}
        # inode -> files of earlier revisions still open (see bypass_page_cache)
        self._older: dict[int, list[OpenFile]] = {}
        self._handles: dict[int, Handle] = {}  # fh -> open file or past revision
        self._next_fh = 1
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def get(self, inode: int) -> OpenFile | None:
        return self.by_inode.get(inode)

    def current(self, inode: int) -> OpenFile | None:
        """The inode's open file for a new handle; None when one must be made.

        One superseded by another device's edit keeps its handles (and their
        revision) but takes no new ones.
        """
        f = self.by_inode.get(inode)
        if f is not None and f.superseded and not f.dirty:
            del self.by_inode[inode]
            if f.handles == 0:
                f.close()
            else:
                self._older.setdefault(inode, []).append(f)
            return None
        return f

    def new(self, inode: int, node: Node, revision: Revision) -> OpenFile:
        assert self._nursery is not None, "OpenFiles.start() not called"
        sealed = self._journal.latest(node.id)
        f = OpenFile(
            node,
            revision,
            cache=self._cache,
            staging_dir=self._staging_dir,
            nursery=self._nursery,
            sealed=sealed,
            sealed_data=self._journal.content(sealed) if sealed and sealed.inline else None,
        )
        self.by_inode[inode] = f
        return f

    def reader(self, revision: Revision) -> int:
        """A handle on a past revision (read-only)."""
        assert self._nursery is not None, "OpenFiles.start() not called"
        return self.add_handle(RevisionReader(revision, cache=self._cache, nursery=self._nursery))

    def add_handle(self, f: Handle) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = f
        if isinstance(f, OpenFile):
            f.handles += 1
        return fh

    def handle(self, fh: int) -> Handle:
        try:
            return self._handles[fh]
        except KeyError:
            raise errors.InvalidArgument("bad file handle") from None

    def bypass_page_cache(self, fh: int) -> bool:
        """Whether a handle must read past the kernel's page cache.

        The page cache is one per inode, but a handle opened before another
        device's edit keeps reading the revision it opened: while such a
        handle is open, handles on the newer revision read directly.
        """
        f = self._handles.get(fh)
        if not isinstance(f, OpenFile):
            return False
        older = self._older.get(self._inodes.inode_of(f.node.id), ())
        return bool(older) and f not in older

    async def release(self, fh: int) -> list[Invalidation]:
        """The kernel let go of a handle; what the kernel must forget now."""
        f = self._handles.pop(fh, None)
        if not isinstance(f, OpenFile):
            return []
        f.handles -= 1
        inode = self._inodes.inode_of(f.node.id)
        todo = []
        older = self._older.get(inode, [])
        if f in older and f.handles == 0:
            older.remove(f)
            if not older:
                del self._older[inode]
            # What it left in the page cache is an old revision's.
            self._inodes.invalidate(inode)
            todo.append(Invalidation(inode=inode))
        try:
            if f.handles == 0 and f.unlinked:
                # Its last name went while it was open: its edits go with it.
                f.dirty = False
                self._journal.discard(f.node.id)
            elif f.handles == 0:
                try:
                    await self.seal(f)
                except errors.QuotaExceeded as exc:
                    # Nothing will close it again: the edits cannot be kept.
                    log.warning("edits to %r were not saved: %s", f.node.name, exc)
                    f.discard()
                    self._inodes.invalidate(inode)
                    todo.append(Invalidation(inode=inode))
        finally:
            self.close_if_idle(inode, f)
        return todo

    def close_if_idle(self, inode: int, f: OpenFile) -> None:
        if f.handles == 0 and not f.dirty and self.by_inode.get(inode) is f:
            del self.by_inode[inode]
            f.close()

    def make_here(
        self,
        parent_id: int,
        name: str,
        mode: int,
        owner: Ownership,
        kind: Kind = Kind.FILE,
        target: str = "",
    ) -> Node | None:
        """A new empty file, folder or link as a durable journal row, named with a node id
        reserved to us; None when the reserve is spent. The caller checked the name is free.
        A new folder is listed (empty) at once: what is made in it is made here too."""
        node_id = self._journal.take_id()
        if node_id is None:
            return None
        # A file's row is written with its content at its close (one commit for both);
        # a folder's or link's now (one small SQLite commit: quicker here than in a thread).
        made = self._journal.record_create(
            node_id=node_id,
            parent_id=parent_id,
            name=name,
            mode=mode,
            owner=owner,
            mtime_ns=time.time_ns(),
            kind=kind,
            target=target,
            later=kind == Kind.FILE,
        )
        if kind != Kind.FILE:
            self._sync.wake()
        node = made_here(made, self._user_id)
        if kind == Kind.DIRECTORY:
            self._names.replica.set_listing(node.id, [])
        return node

    # --- writing, sealing ---------------------------------------------------

    async def write(self, f: OpenFile, offset: int, data: bytes) -> int:
        try:
            return await f.write(offset, data)
        except errors.NoSpace:
            # The local disk is full: cached blocks (copies of what the drive
            # holds) give way to what programs write. Still full: ENOSPC.
            try:
                if not await self.make_room(len(data)):
                    raise
                return await f.write(offset, data)
            except errors.NoSpace:
                f.write_failed = True
                raise

    async def make_room(self, nbytes: int) -> bool:
        freed = await trio.to_thread.run_sync(self._cache.make_room, max(nbytes, ROOM_BYTES))
        if freed:
            log.info("local disk full: %d bytes of cached blocks evicted", freed)
        return freed > 0

    async def seal(self, f: OpenFile) -> None:
        """Makes f's unsaved edits a journal row (close(2)); EDQUOT if they cannot fit,
        ENOSPC (and the edit dropped) if a write of it found the local disk full. A file
        made here is kept either way (its row waits for this: Journal.record_create)."""
        try:
            sealed = await self._seal(f)
        except BaseException:
            with contextlib.suppress(errors.DriveError):
                if self.write_made():
                    self._sync.wake()
            raise
        if sealed is not None or self.write_made():  # (a file made and closed empty)
            self._sync.wake()

    async def _seal(self, f: OpenFile) -> PendingChange | None:
        if f.write_failed:
            f.write_failed = False
            f.discard()
            self._inodes.invalidate(self._inodes.inode_of(f.node.id))
            raise errors.NoSpace(f"{f.node.name!r}: the local disk was full, the edit was not kept")
        if f.dirty:
            await self._check_quota(f)
        mine = f.node.owner_id == self._user_id
        try:
            return await f.seal(self._journal, mine=mine)
        except errors.NoSpace:
            if not await self.make_room(0):
                raise
            return await f.seal(self._journal, mine=mine)

    def write_made(self) -> bool:
        """Writes the rows of files made here and not written yet (Journal.write_made);
        whether there were any."""
        try:
            return self._journal.write_made()
        except OSError as exc:
            raise local_disk_error(exc) from exc

    async def _check_quota(self, f: OpenFile) -> None:
        """Refuses at close what the owner's quota cannot take, as a full disk would.

        Checked against the usage metad last reported (at most a couple of
        seconds old) plus what the journal holds; metad checks again on commit.
        """
        if f.node.owner_id != self._user_id:
            return  # someone else's quota: metad decides, and refused edits are recovered
        usage = await self._names.usage()
        if not usage.quota_bytes:
            return
        committed = self._names.replica.node(f.node.id, stale_too=True)
        earlier = self._journal.latest(f.node.id)
        pending = self._journal.totals()[1] - (earlier.size if earlier else 0)
        after = usage.used_bytes - (committed.size if committed else 0) + pending + f.size
        if after > usage.quota_bytes:
            raise errors.QuotaExceeded(
                f"{f.node.name!r} does not fit in your quota ({usage.quota_bytes} bytes)"
            )

    async def seal_all_and_send(self) -> None:
        """Seals every file with unsaved edits and sends the journal (before unmounting).

        A cancel (a second Ctrl-C) ends only the sending: the sealing is local and
        shielded, since the unsaved edits of a file not sealed are lost."""
        with trio.CancelScope(shield=True):
            for f in list(self.by_inode.values()):
                try:
                    await self.seal(f)
                except errors.DriveError as exc:
                    log.error("could not save %s: %s", f.node.name, exc)
            try:
                self.write_made()
            except errors.DriveError as exc:
                log.error("could not keep the files made and still open: %s", exc)
        if trio.current_effective_deadline() == -math.inf:
            return  # told not to wait for the servers (a second Ctrl-C): the caller says so
        files, size = self._journal.totals()
        if files:
            log.info("sending %d change(s), %d bytes, before unmounting", files, size)
            await self._sync.drain()
        files, size = self._journal.totals()
        if files:
            log.warning(
                "%d change(s) (%d bytes) not sent yet: kept in the journal for the next mount",
                files,
                size,
            )

    def _counted_in(self, dir_id: int) -> None:
        """A folder made here reached metad: dir_id's st_nlink as last heard counts it now
        (until then the journal's row counted it)."""
        parent = self._names.replica.node(dir_id, stale_too=True)
        if parent is not None:
            parent = replaced(parent, nlink=parent.nlink + 1)
            self._names.replica.put(parent)
            self._inodes.update(parent)

    def landed_all(self, writes: LandingWrites) -> None:
        """Writes what landed() left in writes, and empties it: at the end of a batch's
        landings, and before a removal or move among them is recorded. Nothing reads it
        in between (a batch is recorded without a checkpoint); a folder's pending touch
        is written before the folder's own landing (landed), which may set its times
        back (tar sets a folder's mtime after making what it holds)."""
        if writes.revisions:
            self._names.replica.put_revisions(writes.revisions)
        for dir_id, time_ns in writes.touched.items():
            self._touch(dir_id, time_ns)
        writes.revisions.clear()
        writes.touched.clear()

    def _touch(self, dir_id: int, time_ns: int) -> None:
        self._inodes.touch(self._inodes.inode_of(dir_id), time_ns)
        self._names.replica.touch(dir_id, time_ns)

    def landed(self, landed: Landed, writes: LandingWrites) -> list[Invalidation]:
        """Content the synchronizer committed: records the node (some of it in writes, for
        landed_all); what the kernel must forget."""
        node = landed.node
        if node.id in writes.touched:  # the folder itself: its times as metad has them now
            self._touch(node.id, writes.touched.pop(node.id))
        self._inodes.update(node)
        made = landed.made
        in_place = (
            made is not None
            and not landed.attributes
            and node.id == landed.node_id
            and (made.parent_id, made.name) == (node.parent_id, node.name)
        )
        if not in_place:
            self._names.replica.put(node)  # (one made in place is put with its entry, below)
        if landed.attributes:
            return []
        if node.kind == Kind.FILE:
            writes.revisions.append(
                Revision(node.id, node.revision, node.size, node.mtime_ns, landed.blocks)
            )
        inode = self._inodes.inode_of(landed.node_id)
        f = self.by_inode.get(inode)
        if node.id == landed.node_id:
            if f is not None:
                f.landed(node)
            if made is None:
                return []
            if node.kind == Kind.DIRECTORY:
                self._counted_in(node.parent_id)
            # metad moved the folder's times as it made the node (to the node's ctime),
            # maybe after the folder's own landing showed it without the node.
            writes.touch(node.parent_id, landed.made_ns or node.ctime_ns)
            if in_place:
                self._names.added(node)
                return []
            # Made here, but metad put it elsewhere (its name was taken meanwhile): what
            # took the name is listed when the folder is next read.
            self._names.moved(made.parent_id, made.name, node)
            self._names.replica.unlist(made.parent_id)
            old_parent = self._inodes.inode_of(made.parent_id)
            new_parent = self._inodes.inode_of(node.parent_id)
            return [
                Invalidation(parent_inode=old_parent, name=made.name),
                Invalidation(parent_inode=new_parent, name=node.name),
                Invalidation(inode=new_parent, attr_only=True),
            ]
        # Kept as a copy: the file shows the drive's version again.
        self._names.added(node)
        if f is not None and not f.dirty:
            f.superseded = True
        self._inodes.invalidate(inode)
        self._names.replica.mark_stale(landed.node_id)
        parent = self._inodes.inode_of(node.parent_id)
        return [
            Invalidation(inode=inode),
            Invalidation(parent_inode=parent, name=node.name),
            Invalidation(inode=parent, attr_only=True),
        ]
