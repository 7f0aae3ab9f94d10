"""What the mount does besides answering the kernel, and what it tells the kernel.

Owns: recording what the synchronizer landed (take_landed), bringing the
replica up to changes from other devices and users (apply_change), sending
the access times reads move (once a second, one call), and handing kernel
invalidations to the invalidator the FUSE layer gave (send), for inodes the
kernel still knows.

Must not: know of pyfuse3 (invalidations go through the callable handed in),
or call the Vfs above it (the Vfs calls in: note_read on a read, send for what
a call of its own made stale).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import trio

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Change, ChangeKind
from fusefs.mount import atimes
from fusefs.mount.entries import EntryChanges
from fusefs.mount.handles import LandingWrites, OpenFiles
from fusefs.mount.inodes import InodeTable, Invalidation, is_virtual
from fusefs.mount.journal import Journal
from fusefs.mount.landings import EntrySettled, coalesced
from fusefs.mount.namespace import Namespace
from fusefs.mount.node_view import Call, NodeView
from fusefs.mount.remote import RemoteChanges
from fusefs.mount.synchronizer import Synchronizer
from fusefs.mount.virtual import VirtualTree

log = logging.getLogger(__name__)

LANDINGS_AT_ONCE = 500  # landings recorded between two looks at the kernel's requests

Invalidator = Callable[[list[Invalidation]], Awaitable[None]]


class Upkeep:
    def __init__(
        self,
        *,
        meta: MetadataClient,
        names: Namespace,
        journal: Journal,
        sync: Synchronizer,
        inodes: InodeTable,
        files: OpenFiles,
        entries: EntryChanges,
        remote: RemoteChanges,
        virtual: VirtualTree,
        view: NodeView,
        user_id: int,
        call: Call,
    ) -> None:
        self.meta = meta
        self.names = names
        self.journal = journal
        self.sync = sync
        self.inodes = inodes
        self.files = files
        self.entries = entries
        self.remote = remote
        self.virtual = virtual
        self.view = view
        self.user_id = user_id
        self._call = call
        self._nursery: trio.Nursery | None = None
        self._invalidator: Invalidator | None = None
        self._reads = atimes.AccessTimes()

    def start(self, nursery: trio.Nursery, invalidator: Invalidator) -> None:
        """Background work (atimes, landings) runs in nursery; invalidator reaches the kernel."""
        self._nursery = nursery
        self._invalidator = invalidator
        nursery.start_soon(self._send_access_times)
        nursery.start_soon(self.take_landed)

    # --- access times -------------------------------------------------------

    def note_read(self, inode: int) -> None:
        node = self.inodes.cached(inode)
        if node is not None:
            self._reads.note(inode, self.view.with_local(node), time.time_ns())

    async def _send_access_times(self) -> None:
        """Once a second, the reads that move atimes go to metad in one call."""
        while True:
            await trio.sleep(atimes.FLUSH_SECONDS)
            due = self._reads.take()
            for node_id in [n for n in due if self.journal.creating(n)]:
                # Made here and not on metad yet: its atime goes once it is.
                self._reads.keep(node_id, due.pop(node_id))
            if not due:
                continue
            try:
                marked = await self._call(self.meta.mark_accessed, list(due))
            except errors.DriveError as exc:
                log.debug("access times not recorded: %s", exc)
                continue
            for node in marked:
                self.inodes.accessed(due[node.id], node.atime_ns)
                self.names.replica.accessed(node.id, node.atime_ns)
            if self._invalidator is not None:
                await self._invalidator(
                    [Invalidation(inode=due[n.id], attr_only=True) for n in marked]
                )

    # --- landings -----------------------------------------------------------

    async def take_landed(self) -> None:
        """What the synchronizer sent (runs until cancelled; also while unmounting).

        The journal drops a row (done) only once its outcome is recorded here, so
        what the mount answers never falls back to the state before the change; and
        the replica keeps those outcomes (a commit: safe from a kill -9 of the mount)
        before the journal's deletion of the rows commits, so a restart finds the
        one or the other, not neither.
        """
        async for first in self.sync.landed:
            waiting = [first]
            with contextlib.suppress(trio.WouldBlock):
                while len(waiting) < LANDINGS_AT_ONCE:
                    waiting.append(self.sync.landed.receive_nowait())
            todo: list[Invalidation] = []
            writes = LandingWrites()
            try:
                self.journal.write_made()  # (before the replica, which names those files)
                with self.journal.together():
                    try:
                        for landed in coalesced(waiting):
                            try:
                                if isinstance(landed, EntrySettled):
                                    # (after what landed before it: it may remove those)
                                    self.files.landed_all(writes)
                                    todo += self.entries.settled(landed)
                                else:
                                    todo += self.files.landed(landed, writes)
                            finally:
                                landed.done()
                    finally:
                        self.files.landed_all(writes)
                    self.names.replica.flush()
            except OSError as exc:
                # The local disk is full: the journal keeps those rows and sends them
                # again (answered from metad's request log); cached blocks make room.
                log.warning("local disk full: %d outcome(s) not recorded (%s)", len(waiting), exc)
                await self.files.make_room(0)
            self.sync.recorded()
            await self.send(todo)

    # --- changes from other devices and users ----------------------------

    async def apply_change(self, change: Change) -> None:
        """Brings the replica up to the change, then drops what it made stale in the kernel."""
        ours = change.device == self.meta.device and change.actor_id in (0, self.user_id)
        await self.names.apply(change, ours, self.user_id)
        if ours:
            # Our own change: caches were updated when we made it. (Another
            # user's mount may carry the same device name: hence the actor.)
            return
        if change.kind == ChangeKind.DAMAGED:
            if self._nursery is not None:
                self._nursery.start_soon(self.remote.give_back, change.node_id)
            return
        await self.send(await self.remote.stale_after(change))

    # --- the kernel ---------------------------------------------------------

    async def send(self, todo: list[Invalidation]) -> None:
        """Invalidations to the kernel, for the inodes it still knows."""
        todo = [t for t in todo if t.inode == 0 or self._known(t.inode)]
        if todo and self._invalidator is not None:
            await self._invalidator(todo)

    def _known(self, inode: int) -> bool:
        return self.virtual.known(inode) if is_virtual(inode) else self.inodes.known(inode)
