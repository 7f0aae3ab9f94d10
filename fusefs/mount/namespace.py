"""Names, attributes, listings and revisions for the mount: from the replica, else metad.

Read-through: an answer the replica holds (fresh) costs no call; anything
else is asked of metad and recorded. When metad cannot be reached, what the
replica holds answers even if it is stale (offline work on what was seen),
and only what it never held fails, at once.

Change events from the journal keep it current: each place an event names
(a folder and a name) that the replica holds is looked up again, and each
node it holds is asked again, so a replayed or reordered event can only
confirm the present state, never bring back an old one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import trio

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Change, ChangeKind, Node, Revision, Usage, replaced
from fusefs.mount.journal import Journal
from fusefs.mount.reachability import Reachability
from fusefs.mount.replica import Replica

log = logging.getLogger(__name__)

LIST_PAGE = 1000
USAGE_TTL_SECONDS = 2.0

T = TypeVar("T")

# A place changed here: a folder and a name, or a folder as a whole (name None).
Place = tuple[int, str | None]

_PLACE_KINDS = {
    ChangeKind.CREATED,
    ChangeKind.MOVED,
    ChangeKind.DELETED,
    ChangeKind.RESTORED,
    ChangeKind.LINKED,
    ChangeKind.UNLINKED,
}


class Namespace:
    def __init__(
        self,
        meta: MetadataClient,
        replica: Replica,
        limiter: trio.CapacityLimiter,
        reachability: Reachability,
        journal: Journal,
    ) -> None:
        self.meta = meta
        self.replica = replica
        # Files made here and not sent yet: metad does not know them, the replica's
        # word on them stands (neither a listing nor a "not found" removes them).
        self._journal = journal
        self.reachability = reachability
        self._limiter = limiter
        self._usage_at = -USAGE_TTL_SECONDS
        # One set per call to metad in flight whose answer would be written over
        # places: our own changes landing meanwhile are newer, and are noted there.
        self._watchers: list[set[Place]] = []

    async def ask(self, fn: Callable[..., T], *args) -> T:
        """A call to metad: the one way the mount's file system makes one (background
        work too). Unavailable at once while offline; a call that finds metad away
        (refused, or not answering by its deadline: fusefs.clients.patience) turns the
        mount offline (see reachability)."""
        self.reachability.check()
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except errors.Unavailable:
            self.reachability.failed()
            raise

    @contextlib.contextmanager
    def _watching(self) -> Iterator[set[Place]]:
        """The places our own changes touch while the block runs (an answer is awaited)."""
        touched: set[Place] = set()
        self._watchers.append(touched)
        try:
            yield touched
        finally:
            # By identity: list.remove compares sets by value, and would take another
            # call's set equal to this one (both empty), which then misses what is touched.
            self._watchers = [w for w in self._watchers if w is not touched]

    def _touched(self, *places: Place) -> None:
        for touched in self._watchers:
            touched.update(places)

    # --- reading -----------------------------------------------------------

    async def stat(self, node_id: int) -> Node:
        """A node's own attributes: the replica's if fresh, else metad's (the replica's offline)."""
        node = self.replica.node(node_id)
        if node is not None:
            return node
        if self._journal.creating(node_id):
            made_here = self.replica.node(node_id, stale_too=True)
            if made_here is not None:
                return made_here
        try:
            node = await self.ask(self.meta.stat, node_id)
        except errors.Unavailable:
            stale = self.replica.node(node_id, stale_too=True)
            if stale is None:
                raise
            return stale
        except errors.NotFound:
            self.replica.drop(node_id)
            raise
        self.replica.put(node)
        return node

    async def lookup(self, parent_id: int, name: str) -> Node:
        """The node a name in a folder stands for, as that entry shows it."""
        found = self.replica.lookup(parent_id, name)
        if found is not None:
            node, stale = found
            if not stale or self._journal.creating(node.id):
                return node
            own = await self.stat(node.id)
            return replaced(own, parent_id=parent_id, name=name, entry_id=node.entry_id)
        if not self.replica.listed(parent_id):
            # Filled by one listing on first use: every later lookup in the folder is
            # answered here, offline too (a name missing from it then does not exist).
            await self.list(parent_id)
            listed = self.replica.lookup(parent_id, name)
            if listed is not None:
                return listed[0]
        raise errors.NotFound(f"no {name!r} here")

    async def list(self, dir_id: int) -> None:
        """Makes sure every entry of the folder is in the replica (one listing, all pages).

        Offline, a folder never listed fails; one listed before answers as it was.
        """
        if self.replica.listed(dir_id):
            return
        while True:
            with self._watching() as touched:
                nodes = await self._listing(dir_id)
            if not any(parent_id == dir_id for parent_id, _ in touched):
                break
            # Changed here while listed: the listing may predate it, so list again.
        made_here = [
            self.replica.node(i, stale_too=True) for i in self._journal.creating_in(dir_id)
        ]
        self.replica.set_listing(dir_id, nodes)
        for node in made_here:
            if node is not None:
                self.replica.put_entry(node)

    async def _listing(self, dir_id: int) -> list[Node]:
        nodes: list[Node] = []
        after = 0
        while True:
            page, more = await self.ask(self.meta.list_directory, dir_id, after, LIST_PAGE)
            nodes += page
            if not (more and page):
                return nodes
            after = page[-1].entry_id

    def entries(self, dir_id: int, after_entry_id: int, limit: int) -> list[Node]:
        """A page of a listed folder's entries (see list)."""
        return self.replica.entries(dir_id, after_entry_id, limit)

    async def revision(self, node: Node) -> Revision:
        """The current revision of a file (its block list), asked of metad when online.

        metad's answer also brings the grants that let blockd hand us its
        blocks; offline, the kept block list reads what the cache holds.
        """
        try:
            revision = await self.ask(self.meta.get_revision, node.id, 0)
        except errors.Unavailable:
            kept = self.replica.revision(node.id, node.revision)
            if kept is None:
                raise
            return kept
        self.replica.put_revision(revision)
        return revision

    async def usage(self) -> Usage:
        """The drive's usage, asked at most every couple of seconds (statfs comes often)."""
        kept = self.replica.usage()
        now = trio.current_time()
        if kept is not None and now - self._usage_at < USAGE_TTL_SECONDS:
            return kept
        try:
            usage = await self.ask(self.meta.usage)
        except errors.Unavailable:
            # Offline and never asked: df shows nothing used rather than failing.
            return kept or Usage(0, 0, 0)
        self._usage_at = now
        self.replica.put_usage(usage)
        return usage

    # --- our own changes, as metad answered them -----------------------------

    def added(self, node: Node) -> None:
        """A name now stands for node (created, linked, or moved there)."""
        self._touched((node.parent_id, node.name))
        self.replica.put_entry(node)

    def removed(self, parent_id: int, name: str, node_id: int, remains: bool) -> None:
        self._touched((parent_id, name))
        self.replica.remove_entry(parent_id, name, node_id)
        if remains:
            self.replica.mark_stale(node_id)
        else:
            self.replica.drop(node_id)

    def moved(self, parent_id: int, name: str, node: Node) -> None:
        self._touched((parent_id, name), (node.parent_id, node.name))
        self.replica.remove_entry(parent_id, name, node.id)
        self.replica.put_entry(node)

    def exchanged(self, *dir_ids: int) -> None:
        """Two entries swapped: their folders are listed again when next read."""
        self._touched(*((dir_id, None) for dir_id in dir_ids))
        for dir_id in dir_ids:
            self.replica.unlist(dir_id)
            self.replica.mark_stale(dir_id)

    # --- changes from the journal ------------------------------------------

    async def apply(self, change: Change, ours: bool, user_id: int) -> None:
        """Brings the replica up to a change (ours: made by this mount, already recorded).

        The replica's cursor moves past the change once it is applied.
        """
        await self._apply(change, ours, user_id)
        self.replica.cursor = change.sequence

    async def _apply(self, change: Change, ours: bool, user_id: int) -> None:
        if change.kind in (ChangeKind.SHARED, ChangeKind.UNSHARED):
            if change.subject_user_id == user_id:
                # What we may see of someone's drive changed: ask again when needed.
                self.replica.forget_owners(user_id, change.owner_id)
            return
        if change.kind == ChangeKind.DAMAGED:
            return
        if ours and (self._reflects(change) or self._journal.in_flight_for(change.node_id)):
            return  # (what is on its way: its answer comes with what it landed as)
        for dir_id in {change.parent_id, change.old_parent_id} - {0}:
            self.replica.mark_stale(dir_id)
        if change.kind in _PLACE_KINDS:
            await self._check_place(change.parent_id, change.name)
            if change.old_parent_id:
                await self._check_place(change.old_parent_id, change.old_name)
        if change.kind == ChangeKind.DELETED:
            self.replica.drop(change.node_id)
            return
        if change.replaced_node_id:
            await self._refresh(change.replaced_node_id)
        await self._refresh(change.node_id)

    def _reflects(self, change: Change) -> bool:
        """Whether our own change is in the replica already (recorded from metad's answer).

        After a crash of the mount it may not be: then it is applied as any other.
        """
        known = self.replica.node(change.node_id, stale_too=True)
        if change.kind == ChangeKind.DELETED:
            return known is None and not self.replica.has_entry(change.parent_id, change.name)
        if change.kind == ChangeKind.CREATED and known is not None:
            return True  # made here: the replica had it first (its sequence comes later)
        return known is not None and known.change_sequence >= change.sequence

    async def _check_place(self, parent_id: int, name: str) -> None:
        """Looks a recorded or listed place up again: what it names now, if anything."""
        if not parent_id or not (
            self.replica.listed(parent_id) or self.replica.has_entry(parent_id, name)
        ):
            return
        target = self.replica.entry_target(parent_id, name)
        if target is not None and (self._journal.creating(target) or self._journal.moving(target)):
            return  # ours, not landed yet: metad's answer would not know it
        node: Node | None = None
        failure: errors.DriveError | None = None
        with self._watching() as touched:
            try:
                node = await self.ask(self.meta.lookup, parent_id, name)
            except errors.DriveError as exc:
                failure = exc
        if _overlaps(touched, parent_id, name):
            return  # changed here meanwhile: metad's answer to that is the newer word
        if node is not None and self._journal.moving(node.id):
            return  # moved or removed here, not landed yet: metad's place for it is older
        if node is not None:
            self.replica.put_entry(node)
        elif isinstance(failure, errors.NotFound):
            self.replica.remove_entry(parent_id, name)
        else:
            log.info("folder %d forgotten for now: %s", parent_id, failure)
            self.replica.unlist(parent_id)
            self.replica.remove_entry(parent_id, name)

    async def _refresh(self, node_id: int) -> None:
        """Asks metad for a node the replica holds (a node it does not hold stays unknown)."""
        known = self.replica.node(node_id, stale_too=True)
        if known is None or self._journal.creating(node_id):
            return
        try:
            node = await self.ask(self.meta.stat, node_id)
        except errors.NotFound:
            self.replica.drop(node_id)
        except errors.DriveError as exc:
            log.info("node %d left stale: %s", node_id, exc)
            self.replica.mark_stale(node_id)
        else:
            self.replica.put(node)


def _overlaps(touched: set[Place], parent_id: int, name: str) -> bool:
    return (parent_id, name) in touched or (parent_id, None) in touched
