"""What other devices' and users' changes make stale in the mount, and giving back blocks.

Turns one change event (already applied to the replica) into the
invalidations the kernel needs: entries, attributes, data. Roles come with
shares, so a share given or taken away touches every inode of that owner's
drive the kernel holds. Knows nothing of pyfuse3: it returns Invalidation
values for the layer above to send.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, MetadataClient
from fusefs.models import Change, ChangeKind
from fusefs.mount.files import OpenFile
from fusefs.mount.inodes import InodeTable, Invalidation
from fusefs.mount.virtual import VirtualTree

log = logging.getLogger(__name__)


class RemoteChanges:
    def __init__(
        self,
        *,
        meta: MetadataClient,
        blocks: BlockClient,
        cache: BlockCache,
        inodes: InodeTable,
        files: Mapping[int, OpenFile],
        virtual: VirtualTree,
        user_id: int,
        limiter: trio.CapacityLimiter,
    ) -> None:
        self._meta = meta
        self._blocks = blocks
        self._cache = cache
        self._inodes = inodes
        self._files = files  # the mount's open files, by inode (read only here)
        self._virtual = virtual
        self._user_id = user_id
        self._limiter = limiter

    async def _call(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def stale_after(self, change: Change) -> list[Invalidation]:
        """What the kernel must forget after another device's or user's change."""
        if change.kind in (ChangeKind.SHARED, ChangeKind.UNSHARED):
            if change.subject_user_id != self._user_id:
                return []
            return await self._access_changed(change)
        todo = self._tree_changed(change)
        if change.node_id in self._virtual.shares.node_ids:
            # Something shared with us was renamed, moved, deleted or edited:
            # its name or attributes in "Shared with me" may have changed.
            todo += await self._virtual.refresh_shares()
        return todo

    async def give_back(self, node_id: int) -> None:
        """Storage lost blocks of this file: upload the ones our cache holds verified.

        Only what blockd reports missing for us goes (FindMissing, with our
        grants: a quarantined block is missing), and blockd verifies each
        block against its hash again, so nothing wrong can be written back.
        """
        try:
            revision = await self._call(self._meta.get_revision, node_id, 0)
            held = await self._cache.copies(b.hash for b in revision.blocks)
            if not held:
                return
            missing = await self._call(self._blocks.find_missing, list(held))
            wanted = [(h, held[h]) for h in held if h in missing]
            if wanted:
                await self._call(self._blocks.upload, lambda: wanted)
                log.info("gave storage back %d lost block(s) of node %d", len(wanted), node_id)
        except errors.DriveError as exc:
            log.info("could not give back the blocks of node %d: %s", node_id, exc)

    def _tree_changed(self, change: Change) -> list[Invalidation]:
        """What a change of the tree makes stale (and drops it from our caches)."""
        inode = self._inodes.inode_of(change.node_id)
        parent = self._inodes.inode_of(change.parent_id)
        kind = change.kind
        if kind == ChangeKind.RESTORED:
            # An older revision became the newest, or the node came back from trash.
            kind = ChangeKind.EDITED if change.revision > 0 else ChangeKind.CREATED
        todo: list[Invalidation] = []
        self._inodes.invalidate(inode)
        self._inodes.invalidate(parent)
        if kind in (ChangeKind.LINKED, ChangeKind.UNLINKED):
            # A name of a node that stays: that name's entry, the node's link count, and
            # (a name promoted to the node's own) where the node is.
            named = self._inodes.inode_of(change.old_parent_id)
            self._inodes.invalidate(named)
            return [
                Invalidation(inode=inode, attr_only=True),
                Invalidation(inode=named, attr_only=True),
                Invalidation(parent_inode=named, name=change.old_name),
                Invalidation(parent_inode=parent, name=change.name),
            ]
        if kind == ChangeKind.EDITED:
            f = self._files.get(inode)
            if f is not None and not f.dirty:
                f.superseded = True
            todo.append(Invalidation(inode=inode))
        elif kind == ChangeKind.ATTRIBUTES:
            todo.append(Invalidation(inode=inode, attr_only=True))
        else:
            todo.append(Invalidation(inode=parent, attr_only=True))
            if kind == ChangeKind.DELETED:
                todo.append(
                    Invalidation(parent_inode=parent, name=change.name, deleted_inode=inode)
                )
            else:
                todo.append(Invalidation(parent_inode=parent, name=change.name))
            if kind == ChangeKind.MOVED:
                old_parent = self._inodes.inode_of(change.old_parent_id)
                self._inodes.invalidate(old_parent)
                todo.append(Invalidation(inode=old_parent, attr_only=True))
                todo.append(Invalidation(parent_inode=old_parent, name=change.old_name))
                if change.replaced_node_id:
                    self._inodes.invalidate(self._inodes.inode_of(change.replaced_node_id))
        return todo

    async def _access_changed(self, change: Change) -> list[Invalidation]:
        """A share for us was added, changed or taken away.

        Roles are attributes of every node of the owner's drive we hold, so
        all of them are dropped (a role change is rare; precision is not
        worth a walk of the tree). Taking a share away also drops the data
        of open files, so their next read asks metad (and fails), and its
        name in "Shared with me", which cuts every cached path below it.
        """
        todo = await self._virtual.refresh_shares()
        owner = change.owner_id
        if owner:
            inodes = self._inodes.owned(lambda o: o == owner)
        else:
            inodes = self._inodes.owned(lambda o: o != self._user_id)
        revoked = change.kind == ChangeKind.UNSHARED
        for inode in inodes:
            self._inodes.invalidate(inode)
            f = self._files.get(inode)
            if revoked and f is not None and not f.dirty:
                f.stale = True
            todo.append(Invalidation(inode=inode, attr_only=not revoked))
        return todo
