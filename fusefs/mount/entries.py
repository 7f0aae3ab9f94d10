"""Making, removing and renaming entries: in the journal where it can, else through metad.

New files, folders and links in the user's own listed folders are journal
rows named with reserved node ids (no call); the rest is made by a call.
Online, unlink, rmdir and rename are calls to metad, made once what the
journal holds of the nodes involved is sent (settle), and the replica takes
metad's answer. Offline (and while removals or renames made offline still
wait, so that order is kept) they are checked against the replica, applied to
it, and recorded as journal rows (DELETE, RENAME) that name the node they
meant; the synchronizer sends them in order, and what metad made of each
comes back here (settled):

- a rename over another file that metad made a save (the replaced file keeps
  its id and history, saves.py in metad): the file answers to the moved one's
  inode, as online;
- a new name another device took meanwhile: the entry moves to a conflicted
  name beside it;
- a change metad refused (the node moved, was replaced or deleted elsewhere,
  a folder got entries, a share was taken away): the folders involved are
  listed again and show metad's state. Nothing is lost: a refused removal
  spares what another device put there, and content goes its own way
  (synchronizer).

Knows nothing of pyfuse3; lower layers never call back here.
"""

from __future__ import annotations

import contextlib
import logging
import time

import trio

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Kind, Node, Ownership, Removed, Renamed, replaced
from fusefs.mount.handles import OpenFiles, made_here
from fusefs.mount.inodes import InodeTable, Invalidation, is_virtual
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import DELETE, EXCHANGE, LINK, RENAME, PendingChange
from fusefs.mount.landings import EntrySettled
from fusefs.mount.namespace import Namespace
from fusefs.mount.synchronizer import Synchronizer

log = logging.getLogger(__name__)

# How long a change made online waits for what the journal holds of its nodes to be
# sent (settle) before it is journaled behind them instead: the order is kept either
# way, and a program is not kept waiting on an upload, or on a server not answering.
SETTLE_SECONDS = 1.0


class StillSending(errors.Unavailable):
    """What a change must follow is still on its way (not: the servers are away)."""


class EntryChanges:
    def __init__(
        self,
        *,
        meta: MetadataClient,
        names: Namespace,
        journal: Journal,
        sync: Synchronizer,
        inodes: InodeTable,
        files: OpenFiles,
        user_id: int,
    ) -> None:
        self.meta = meta
        self.names = names
        self.journal = journal
        self.sync = sync
        self.inodes = inodes
        self.files = files
        self._user_id = user_id  # whose drive the mount shows

    async def _call(self, fn, *args):
        return await self.names.ask(fn, *args)

    # --- small steps the VFS shares -----------------------------------------

    async def settle(self, *node_ids: int) -> None:
        """Changes go to metad in the order they were made: what the journal holds of these
        nodes (made here, content, attributes, moves) is sent before a change after it.
        StillSending after SETTLE_SECONDS: the change is then to be journaled."""
        with trio.move_on_after(SETTLE_SECONDS):
            for node_id in node_ids:
                if self.journal.pending_for(node_id):
                    self.files.write_made()  # (a file made here and still open: its row too)
                    await self.sync.flush(node_id)
            if not any(self.journal.pending_for(node_id) for node_id in node_ids):
                return
        raise StillSending("earlier changes of it are still on their way to the drive")

    def went_away(self, exc: errors.Unavailable) -> None:
        """A change could not be made online: offline from now, unless it only had to
        wait for earlier ones (the servers may be fine)."""
        if not isinstance(exc, StillSending):
            self.sync.went_away()

    def keep(self, node: Node) -> None:
        """metad's answer to our own change (or our own change, offline): the node now."""
        self.inodes.update(node)
        self.names.replica.put(node)

    def stale(self, inode: int) -> None:
        """Our own change moved what metad holds of a node (a count, a time): ask again."""
        self.inodes.invalidate(inode)
        if not is_virtual(inode):
            self.names.replica.mark_stale(self.inodes.node_of(inode))

    def touch(self, inode: int, now: int = 0) -> None:
        """Our own change to a folder's entries moved its times (and nothing else)."""
        now = now or time.time_ns()
        self.inodes.touch(inode, now)
        self.names.replica.touch(self.inodes.node_of(inode), now)

    def _journaling(self) -> bool:
        """Whether removals and renames go to the journal rather than to metad."""
        return not self.sync.online or self.journal.moves_pending()

    def _subfolders(self, inode: int, delta: int) -> None:
        """A folder gained or lost a subfolder offline: its st_nlink, counted here."""
        node = self.inodes.cached(inode)
        if node is not None:
            self.keep(replaced(node, nlink=max(node.nlink + delta, 2)))

    # --- making nodes -------------------------------------------------------

    async def make(
        self,
        parent: Node,
        name: str,
        kind: Kind,
        mode: int,
        owner: Ownership,
        *,
        target: str = "",
        rdev: int = 0,
    ) -> Node:
        """A new node in parent, once the VFS has checked who may: made in the journal
        when it can be (no call), else by a call to metad after what the folder waits for."""
        node = None
        if kind in (Kind.FILE, Kind.DIRECTORY, Kind.SYMLINK):
            node = await self._make_here(parent, name, mode, owner, kind, target)
        if node is not None:
            return node
        await self.settle(parent.id)
        if kind == Kind.DIRECTORY:
            return await self._call(self.meta.make_directory, parent.id, name, mode, owner)
        if kind == Kind.SYMLINK:
            return await self._call(self.meta.create_symlink, parent.id, name, target, owner)
        if kind == Kind.FILE:
            return await self._call(self.meta.create_file, parent.id, name, mode, owner)
        return await self._call(self.meta.make_node, parent.id, name, kind, mode, rdev, owner)

    async def _make_here(
        self, parent: Node, name: str, mode: int, owner: Ownership, kind: Kind, target: str
    ) -> Node | None:
        """A new node in our own drive made in the journal, once the folder's listing says
        the name is free; None to make it the usual way (a share; no reserved ids left).

        Offline in a folder never listed here, the name is taken as free: should the
        drive have it, what is made here arrives beside it as a conflicted copy
        (Synchronizer), so nothing is lost and the person can work on."""
        if parent.owner_id != self._user_id:
            return None
        with contextlib.suppress(errors.Unavailable):
            await self.names.list(parent.id)  # a name missing from it then does not exist
        if self.names.replica.lookup(parent.id, name) is not None:
            raise errors.AlreadyExists(f"{name!r} exists")
        return self.files.make_here(parent.id, name, mode, owner, kind, target)

    def created(self, parent_inode: int, node: Node) -> int:
        """Records a node just made in parent_inode; its inode."""
        self.names.added(node)
        # As metad does: to the new node's ctime (its birth, for one made here).
        self.touch(parent_inode, node.ctime_ns)
        if node.kind == Kind.DIRECTORY and not self.journal.creating(node.id):
            # The parent's st_nlink changed: ask metad next time (one made here that
            # metad has not got yet is counted by the VFS from the journal).
            self.stale(parent_inode)
        return self.inodes.remember(node)

    # --- unlink, rmdir -------------------------------------------------------

    async def remove(self, parent_inode: int, name: str, directory: bool) -> None:
        parent_id = self.inodes.node_of(parent_inode)
        node = await self.names.lookup(parent_id, name)
        # Checked here too, online: what the replica holds may not have reached metad
        # yet (a file made in the folder), and metad would answer for what it has.
        self._check_removable(node, name, directory, offline=self._journaling())
        if self.journal.cancel(node.id):
            # Made here and deleted before it was sent (a temporary): metad never hears of it.
            self.names.removed(parent_id, name, node.id, remains=False)
            self.touch(parent_inode)
            self.name_gone(self.inodes.inode_of(node.id), remains=False)
            return
        if not self._journaling():
            try:
                await self._remove_online(parent_inode, parent_id, node, name, directory)
                return
            except errors.Unavailable as exc:
                self.went_away(exc)
                self._check_removable(node, name, directory, offline=True)
        remains = node.kind == Kind.FILE and self._names_of_node(node) > 1
        self.journal.record_delete(node.id, parent_id, name, directory)
        self.sync.wake()
        if not remains:
            self.journal.discard(node.id)
        self.names.removed(parent_id, name, node.id, remains)
        self.touch(parent_inode)
        if directory:
            self._subfolders(parent_inode, -1)
        self.name_gone(self.inodes.inode_of(node.id), remains)

    def _check_removable(self, node: Node, name: str, directory: bool, offline: bool) -> None:
        """What metad would refuse, checked against the replica (which may hold what metad
        has not got yet)."""
        if directory and node.kind != Kind.DIRECTORY:
            raise errors.NotADirectory(f"{name!r} is not a folder")
        if not directory and node.kind == Kind.DIRECTORY:
            raise errors.IsADirectory(f"{name!r} is a folder")
        if directory:
            self._check_empty(node, name, offline)

    def _check_empty(self, folder: Node, name: str, offline: bool) -> None:
        """Refuses a folder with entries; one never listed here is metad's to judge
        (offline: refused, nothing can tell)."""
        if not self.names.replica.listed(folder.id):
            if offline:
                raise errors.Unavailable(f"what {name!r} holds is not known here while offline")
            return
        if self.names.entries(folder.id, 0, 1):
            raise errors.DirectoryNotEmpty(f"{name!r} is not empty")

    async def _remove_online(
        self, parent_inode: int, parent_id: int, node: Node, name: str, directory: bool
    ) -> None:
        await self.settle(node.id)
        # Content of it still on its way is moot once it is gone (it must not come
        # back as a recovered copy): say so before metad can refuse that content.
        self.journal.deleting(node.id)
        try:
            node_id, remains = await self._call(self.meta.delete, parent_id, name, directory)
        except BaseException:
            self.journal.undelete(node.id)
            raise
        if remains:
            self.journal.undelete(node_id)  # still reachable: its content still counts
        else:
            # Gone (open handles read on locally, as on a local disk): its content is moot.
            self.journal.discard(node_id)
        self.names.removed(parent_id, name, node_id, remains)
        self.touch(parent_inode)
        if directory:
            self.stale(parent_inode)  # one subdirectory fewer: st_nlink
        self.name_gone(self.inodes.inode_of(node_id), remains)

    def name_gone(self, inode: int, remains: bool) -> None:
        """A name of the node left the namespace; remains: the node keeps others."""
        self.stale(inode)  # its st_nlink (and ctime) changed
        if not remains:
            self.gone(inode)
            self.inodes.unalias(inode)

    def gone(self, inode: int) -> None:
        """A node left the namespace (unlinked, or replaced by a rename)."""
        self.inodes.invalidate(inode)
        f = self.files.get(inode)
        if f is not None:
            f.unlinked = True

    # --- rename ---------------------------------------------------------------

    async def rename(
        self,
        parent_inode: int,
        name: str,
        new_parent_inode: int,
        new_name: str,
        no_replace: bool,
        exchange: bool,
    ) -> None:
        """rename(2) once the VFS has checked who may; exchange: RENAME_EXCHANGE."""
        parent_id = self.inodes.node_of(parent_inode)
        new_parent_id = self.inodes.node_of(new_parent_inode)
        source = await self.names.lookup(parent_id, name)
        f = self.files.get(self.inodes.inode_of(source.id))
        if f is not None and f.dirty:
            # A save renames its temporary over the original: what was written
            # to it goes first, or the save would miss it.
            await self.files.seal(f)
        if self._journaling():
            await self._rename_offline(
                parent_inode, name, new_parent_inode, new_name, no_replace, exchange
            )
            return
        try:
            # The folders too: the new one may be made here and not sent yet.
            await self.settle(source.id, parent_id, new_parent_id)
            with contextlib.suppress(errors.NotFound):
                target = await self.names.lookup(new_parent_id, new_name)
                folders = target.kind == source.kind == Kind.DIRECTORY
                if folders and not exchange:
                    self._check_empty(target, new_name, offline=False)
                await self.settle(target.id)
            renamed = await self._call(
                self.meta.rename, parent_id, name, new_parent_id, new_name, no_replace, exchange
            )
        except errors.Unavailable as exc:
            self.went_away(exc)
            await self._rename_offline(
                parent_inode, name, new_parent_inode, new_name, no_replace, exchange
            )
            return
        for inode in (parent_inode, new_parent_inode):
            self.stale(inode)
        if exchange:
            self.names.exchanged(parent_id, new_parent_id)
        else:
            self.names.moved(parent_id, name, renamed.node)
            if renamed.saved_from:
                self.names.replica.drop(renamed.saved_from)
        self._renamed(renamed)

    def _renamed(self, renamed: Renamed) -> None:
        """What metad made of a rename, on top of what the replica shows of it."""
        if renamed.saved_from:
            self.saved_over(renamed.saved_from, renamed.node)
        elif renamed.replaced_id:
            if not renamed.replaced_remains:
                self.names.replica.drop(renamed.replaced_id)
                if self.files.get(self.inodes.inode_of(renamed.replaced_id)) is None:
                    self.journal.discard(renamed.replaced_id)
            self.name_gone(self.inodes.inode_of(renamed.replaced_id), renamed.replaced_remains)
        self.keep(renamed.node)

    async def _rename_offline(
        self,
        parent_inode: int,
        name: str,
        new_parent_inode: int,
        new_name: str,
        no_replace: bool,
        exchange: bool,
    ) -> None:
        """The rename in the replica and the journal; metad gets it later, in order."""
        parent_id = self.inodes.node_of(parent_inode)
        new_parent_id = self.inodes.node_of(new_parent_inode)
        source = await self.names.lookup(parent_id, name)
        target = None
        with contextlib.suppress(errors.NotFound):
            target = await self.names.lookup(new_parent_id, new_name)
        if target is not None and target.id == source.id:
            return  # two names of one file: rename(2) does nothing
        # The replica's state before the move is made to survive a crash first: a restart
        # replays the journaled move on top of it (one that lost the replica's last
        # second would have no names to move). Files it names that were made here are
        # in the journal first (their rows may wait for their close: Journal.write_made).
        self.files.write_made()
        self.names.replica.flush()
        if exchange:
            if target is None:
                raise errors.NotFound(f"no {new_name!r} to exchange with")
            self.journal.record_rename(
                source.id, parent_id, name, new_parent_id, new_name, False, exchange=True
            )
            self.sync.wake()
            self._swap(source, target)
            self.touch(parent_inode)
            self.touch(new_parent_inode)
            moved_folders = (source.kind == Kind.DIRECTORY) - (target.kind == Kind.DIRECTORY)
            if moved_folders and parent_inode != new_parent_inode:
                self._subfolders(parent_inode, -moved_folders)
                self._subfolders(new_parent_inode, moved_folders)
            return
        if target is not None:
            if no_replace:
                raise errors.AlreadyExists(f"{new_name!r} exists")
            if target.kind == Kind.DIRECTORY:
                if source.kind != Kind.DIRECTORY:
                    raise errors.IsADirectory(f"{new_name!r} is a folder")
                self._check_empty(target, new_name, offline=True)
            elif source.kind == Kind.DIRECTORY:
                raise errors.NotADirectory(f"{new_name!r} is not a folder")
        self.journal.record_rename(
            source.id, parent_id, name, new_parent_id, new_name, no_replace=target is None
        )
        self.sync.wake()
        if target is not None:
            # Its content and attributes not sent yet go first: a save keeps them as
            # a revision of it, a replaced file in the trash.
            remains = target.kind == Kind.FILE and self._names_of_node(target) > 1
            self.names.removed(new_parent_id, new_name, target.id, remains)
            self.name_gone(self.inodes.inode_of(target.id), remains)
            if target.kind == Kind.DIRECTORY:
                self._subfolders(new_parent_inode, -1)
        moved = replaced(source, parent_id=new_parent_id, name=new_name)
        self.names.moved(parent_id, name, moved)
        self.keep(moved)
        self.touch(parent_inode)
        self.touch(new_parent_inode)
        if source.kind == Kind.DIRECTORY and parent_inode != new_parent_inode:
            self._subfolders(parent_inode, -1)
            self._subfolders(new_parent_inode, +1)

    def _swap(self, first: Node, second: Node) -> None:
        """RENAME_EXCHANGE in the replica: each node takes the other's entry."""
        one = replaced(first, parent_id=second.parent_id, name=second.name)
        other = replaced(second, parent_id=first.parent_id, name=first.name)
        self.names.moved(first.parent_id, first.name, one)
        self.names.moved(second.parent_id, second.name, other)
        self.keep(one)
        self.keep(other)

    # --- link -----------------------------------------------------------------

    async def link(self, node: Node, new_parent_inode: int, name: str) -> Node:
        """link(2) once the VFS has checked who may: the node as the new name shows it.
        Online a call to metad after what the journal holds of both; offline journaled."""
        new_parent_id = self.inodes.node_of(new_parent_inode)
        if not self._journaling():
            try:
                await self.settle(node.id, new_parent_id)
                linked = await self._call(self.meta.link, node.id, new_parent_id, name)
            except errors.Unavailable as exc:
                self.went_away(exc)
            else:
                self.names.added(linked)
                self.touch(new_parent_inode)
                return linked
        await self.names.list(new_parent_id)  # (a folder never listed: EIO offline)
        if self.names.replica.lookup(new_parent_id, name) is not None:
            raise errors.AlreadyExists(f"{name!r} exists")
        entry_id = self.journal.take_id()
        if entry_id is None:
            raise errors.Unavailable("no ids left for names made offline")
        self.journal.record_link(node.id, new_parent_id, name, entry_id)
        self.sync.wake()
        linked = self._linked_here(node, new_parent_id, name, entry_id)
        self.touch(new_parent_inode)
        return linked

    def _names_of_node(self, node: Node) -> int:
        """How many names a file has here: metad's count and the links made here since."""
        return node.nlink + self.journal.links_made(node.id)

    def _linked_here(self, node: Node, new_parent_id: int, name: str, entry_id: int) -> Node:
        """The further name in the replica (entry_id: its own until metad gives one).

        The node's st_nlink stays metad's: the name's journal row adds it (see
        NodeView.with_local), so an older answer of metad heard meanwhile (a change
        stream catching up after a restart) cannot take it away.
        """
        own = self.names.replica.node(node.id, stale_too=True) or node
        linked = replaced(own, parent_id=new_parent_id, name=name, entry_id=entry_id)
        self.names.added(linked)
        return linked

    def saved_over(self, moved_id: int, saved: Node) -> None:
        """A file renamed over another became its newest revision (metad saves.py).

        The kernel moved the renamed file's inode to the name, so the saved
        file answers to that inode from now on; what was open of the file it
        replaced keeps its old content until closed, as on a local disk.
        """
        moved_inode = self.inodes.inode_of(moved_id)
        replaced_inode = self.inodes.inode_of(saved.id)
        if replaced_inode != moved_inode:
            self.gone(replaced_inode)
            self.inodes.alias(saved.id, moved_inode)
        f = self.files.get(moved_inode)
        if f is not None:
            f.adopt(saved)

    # --- the journal into the replica at start ------------------------------

    def replay(self, rows: list[PendingChange]) -> None:
        """Brings the replica up to the journal's changes of names (made, removed, moved),
        in order: a crash may have cost the replica the last second of them."""
        for row in rows:
            if row.is_create:
                self.names.added(made_here(row, self._user_id))
                self.names.replica.touch(row.parent_id, row.mtime_ns)  # as when it was made
                if row.node_kind == Kind.DIRECTORY:  # what is in it was put there from here
                    self.names.replica.mark_listed(row.node_id)
            elif row.kind == DELETE:
                node = self.names.replica.node(row.node_id, stale_too=True)
                remains = (
                    node is not None and node.kind == Kind.FILE and self._names_of_node(node) > 1
                )
                self.names.removed(row.parent_id, row.name, row.node_id, remains)
            elif row.kind == RENAME:
                self._replay_rename(row)
            elif row.kind == LINK:
                replica = self.names.replica
                node = replica.node(row.node_id, stale_too=True)
                there = replica.entry_target(row.new_parent_id, row.new_name)
                if node is not None and there is None:  # (lost with the replica's last second)
                    self._linked_here(node, row.new_parent_id, row.new_name, row.base_revision)

    def _replay_rename(self, row: PendingChange) -> None:
        replica = self.names.replica
        node = replica.node(row.node_id, stale_too=True)
        if node is None or replica.entry_target(row.parent_id, row.name) != row.node_id:
            return  # applied already (or its node is gone)
        target_id = replica.entry_target(row.new_parent_id, row.new_name)
        if row.flags & EXCHANGE:
            target = None if target_id is None else replica.node(target_id, stale_too=True)
            if target is not None:
                here = replaced(node, parent_id=row.parent_id, name=row.name)
                there = replaced(target, parent_id=row.new_parent_id, name=row.new_name)
                self._swap(here, there)
            return
        if target_id is not None:
            target = replica.node(target_id, stale_too=True)
            remains = (
                target is not None and target.kind == Kind.FILE and self._names_of_node(target) > 1
            )
            self.names.removed(row.new_parent_id, row.new_name, target_id, remains)
        moved = replaced(node, parent_id=row.new_parent_id, name=row.new_name)
        self.names.moved(row.parent_id, row.name, moved)

    # --- what metad made of the journal's removals and renames ---------------

    def settled(self, done: EntrySettled) -> list[Invalidation]:
        """Corrects the replica by metad's answer; what the kernel must forget."""
        row = done.row
        if done.refused:
            log.info("%s of %r not applied on the drive: %s", row.kind, row.name, done.refused)
            if row.kind == LINK:  # the name made here goes
                self.names.removed(row.new_parent_id, row.new_name, row.node_id, remains=True)
            elif row.flags & EXCHANGE:  # neither name shows what we swapped: ask metad
                self.names.replica.remove_entry(row.parent_id, row.name)
                self.names.replica.remove_entry(row.new_parent_id, row.new_name)
            return self._look_again(row)
        if row.kind == LINK:
            linked = done.outcome
            assert isinstance(linked, Node)
            todo: list[Invalidation] = []
            if (linked.parent_id, linked.name) != (row.new_parent_id, row.new_name):
                # The name was taken meanwhile: ours went beside it.
                self.names.replica.remove_entry(row.new_parent_id, row.new_name, row.node_id)
                self.names.replica.unlist(row.new_parent_id)
                todo += self._names_of(row.new_parent_id, row.new_name, linked)
            self.names.added(linked)
            self.inodes.update(linked)
            return todo
        if row.kind == DELETE:
            assert isinstance(done.outcome, Removed)
            # Through names: a lookup on metad begun before this landing (an echo of an
            # older change) must not put the name back.
            self.names.removed(row.parent_id, row.name, row.node_id, done.outcome.remains)
            return []
        renamed = done.outcome
        assert isinstance(renamed, Renamed)
        todo = []
        if (renamed.node.parent_id, renamed.node.name) != (row.new_parent_id, row.new_name):
            # The name was taken meanwhile: ours went beside it.
            self.names.moved(row.new_parent_id, row.new_name, renamed.node)
            self.names.replica.unlist(row.new_parent_id)
            todo += self._names_of(row.new_parent_id, row.new_name, renamed.node)
        if renamed.saved_from:
            self.names.replica.drop(renamed.saved_from)
            self.names.added(renamed.node)
        self._renamed(renamed)
        return todo

    def _look_again(self, row: PendingChange) -> list[Invalidation]:
        """A change metad refused: the folders it touched show metad's state again."""
        folders = {row.parent_id, row.new_parent_id} - {0}
        todo = []
        for folder in folders:
            self.names.replica.unlist(folder)
            self.names.replica.mark_stale(folder)
            inode = self.inodes.inode_of(folder)
            self.inodes.invalidate(inode)
            todo.append(Invalidation(inode=inode, attr_only=True))
        self.names.replica.mark_stale(row.node_id)
        self.inodes.invalidate(self.inodes.inode_of(row.node_id))
        if row.parent_id:  # (a link has only its new name)
            parent = self.inodes.inode_of(row.parent_id)
            todo.append(Invalidation(parent_inode=parent, name=row.name))
        if row.new_parent_id:
            parent = self.inodes.inode_of(row.new_parent_id)
            todo.append(Invalidation(parent_inode=parent, name=row.new_name))
        return todo

    def _names_of(self, old_parent_id: int, old_name: str, node: Node) -> list[Invalidation]:
        new_parent = self.inodes.inode_of(node.parent_id)
        return [
            Invalidation(parent_inode=self.inodes.inode_of(old_parent_id), name=old_name),
            Invalidation(parent_inode=new_parent, name=node.name),
            Invalidation(inode=new_parent, attr_only=True),
        ]
