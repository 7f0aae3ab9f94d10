"""Extended attributes of the drive's nodes: read once per change, set through metad.

A node without attributes costs no call (the kernel asks for
security.capability before every write); one with attributes is read once
per change of the node. Setting and removing are calls to metad, made after
what the journal holds of the node, so that the drive sees changes in the
order they were made (offline they fail at once).
"""

from __future__ import annotations

import trio

from fusefs.clients import MetadataClient
from fusefs.models import Node
from fusefs.mount.entries import EntryChanges


class ExtendedAttributes:
    def __init__(
        self, meta: MetadataClient, entries: EntryChanges, limiter: trio.CapacityLimiter
    ) -> None:
        self._meta = meta
        self._entries = entries
        self._limiter = limiter
        # inode -> (the node's change_sequence when read, its extended attributes)
        self._read: dict[int, tuple[int, dict[str, bytes]]] = {}

    async def _call(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def of(self, inode: int, node: Node) -> dict[str, bytes]:
        """node's attributes (node: as the mount shows it now)."""
        if node.xattrs == 0:
            return {}
        cached = self._read.get(inode)
        if cached is not None and cached[0] == node.change_sequence:
            return cached[1]
        found = await self._call(self._meta.get_xattrs, node.id)
        self._read[inode] = (node.change_sequence, found)
        return found

    async def set(self, inode: int, node_id: int, name: str, value: bytes) -> None:
        await self._entries.settle(node_id)
        self._entries.keep(await self._call(self._meta.set_xattr, node_id, name, value))
        self._read.pop(inode, None)

    async def remove(self, inode: int, node_id: int, name: str) -> None:
        await self._entries.settle(node_id)
        self._entries.keep(await self._call(self._meta.remove_xattr, node_id, name))
        self._read.pop(inode, None)
