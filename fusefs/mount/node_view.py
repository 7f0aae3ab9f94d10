"""A node as this device shows it, and what its role allows here.

Owns: the node as stored (the replica or metad, or an open file's once
unlinked), the node as shown (with what open files and the journal hold and
metad has not got yet: content closed, attributes set, folders made), and the
refusal of changes to a node shared with us read-only (Role.READ), before
anything is staged or sent; metad checks again and is the authority.

Must not: change anything (it only reads, but for keeping a fresher node metad
gave), know of pyfuse3, or call the Vfs above it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import AttributeChange, Kind, Node, Role, replaced
from fusefs.mount.entries import EntryChanges
from fusefs.mount.handles import OpenFiles
from fusefs.mount.inodes import InodeTable, is_virtual
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import PendingChange
from fusefs.mount.namespace import Namespace
from fusefs.mount.virtual import VirtualTree

Call = Callable[..., Awaitable[Any]]  # runs a blocking client call in a worker thread


class NodeView:
    def __init__(
        self,
        *,
        meta: MetadataClient,
        names: Namespace,
        journal: Journal,
        inodes: InodeTable,
        files: OpenFiles,
        entries: EntryChanges,
        virtual: VirtualTree,
        call: Call,
    ) -> None:
        self.meta = meta
        self.names = names
        self.journal = journal
        self.inodes = inodes
        self.files = files
        self.entries = entries
        self.virtual = virtual
        self._call = call

    async def getattr(self, inode: int) -> Node:
        node = await self.stored(inode)
        if is_virtual(inode):
            return node
        f = self.files.get(inode)
        if f is not None and f.unlinked:
            # Open but unlinked: as on a local disk, still there for its holders.
            return replaced(f.attributes(node), nlink=0)
        return self.with_local(node)

    async def stored(self, inode: int) -> Node:
        """The node as the replica or metad has it, without this device's pending edits
        (its kind, role and extended attributes are the same either way)."""
        if is_virtual(inode):
            return await self.virtual.getattr(inode)
        f = self.files.get(inode)
        if f is not None and f.unlinked:
            return f.node
        node = self.inodes.cached(inode)
        if node is None:
            node = await self.names.stat(self.inodes.node_of(inode))
            self.inodes.update(node)
        return node

    def with_local(self, node: Node, inode: int | None = None) -> Node:
        """node as this device shows it: with edits not committed yet (inode: the node's,
        when the caller has it at hand: one mapping less on every lookup)."""
        made = (
            self.journal.folders_made_in(node.id)
            if node.kind == Kind.DIRECTORY
            else self.journal.links_made(node.id)
        )
        if made:
            node = replaced(node, nlink=node.nlink + made)
        f = self.files.get(self.inodes.inode_of(node.id) if inode is None else inode)
        sealed = self.journal.latest(node.id)
        attributes = self.journal.attributes(node.id)
        if f is not None:
            if f.dirty:  # what it holds was set after any row (setattr holds it meanwhile)
                return f.attributes(_with_rows(node, attributes, sealed))
            return _with_rows(f.attributes(node), attributes, sealed)
        if sealed is not None:
            ctime_ns = max(node.ctime_ns, sealed.created_ns)  # changed by the time it was closed
            node = sealed.held.applied_to(
                node, size=sealed.size, mtime_ns=sealed.mtime_ns, ctime_ns=ctime_ns
            )
        return _with_rows(node, attributes, sealed)

    # --- what a role allows ----------------------------------------------

    async def require_writable(self, inode: int) -> Node:
        """Refuses changes to a node shared with us read-only; the node as stored."""
        node = await self.stored(inode)
        if node.role != Role.READ:
            return node
        # The cached role may predate an upgrade whose event is still on its way.
        node = await self._call(self.meta.stat, self.inodes.node_of(inode))
        self.entries.keep(node)
        if node.role == Role.READ:
            raise errors.PermissionDenied(f"{node.name!r} is shared with you read-only")
        return node

    async def may_change_entry(self, parent_inode: int, name: str) -> None:
        """Refuses creating, removing or renaming name in parent_inode unless allowed."""
        if is_virtual(parent_inode):
            raise self.virtual.refusal(parent_inode)
        await self.require_writable(parent_inode)


def _with_rows(
    node: Node,
    attributes: tuple[AttributeChange, int | None, int] | None,
    sealed: PendingChange | None,
) -> Node:
    """node with the chmod/chown/utime the journal holds for it (Journal.attributes); an
    mtime set before the newest content was closed gives way to that content's."""
    if attributes is None:
        return node
    change, mtime_ns, when = attributes
    if mtime_ns is not None and (sealed is None or sealed.created_ns < when):
        return change.applied_to(node, mtime_ns=mtime_ns, ctime_ns=max(node.ctime_ns, when))
    return change.applied_to(node, ctime_ns=max(node.ctime_ns, when))
