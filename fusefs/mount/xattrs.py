"""Extended attributes of the drive's nodes: read once per change, set through metad,
or kept in the journal while offline.

A node without attributes costs no call (the kernel asks for
security.capability before every write); one with attributes is read once
per change of the node. Online, setting and removing are calls to metad, made
after what the journal holds of the node, so that the drive sees changes in
the order they were made. Offline (or while earlier offline ones wait) they
are journaled (XATTR rows) and shown over what metad last said until sent; a
removal offline needs the node's attributes read before, as a read does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Node
from fusefs.mount.entries import EntryChanges
from fusefs.mount.journal import Journal
from fusefs.mount.synchronizer import Synchronizer
from protos import xattr_limits as limits


class ExtendedAttributes:
    def __init__(
        self,
        meta: MetadataClient,
        entries: EntryChanges,
        journal: Journal,
        sync: Synchronizer,
    ) -> None:
        self._meta = meta
        self._entries = entries
        self._journal = journal
        self._sync = sync
        # inode -> (the node's change_sequence when read, its extended attributes)
        self._read: dict[int, tuple[int, dict[str, bytes]]] = {}

    async def _call(self, fn, *args):
        return await self._entries.names.ask(fn, *args)

    def none_on(self, node: Node) -> bool:
        """Whether node surely has no attributes: metad says none, none journaled."""
        return node.xattrs == 0 and not self._journal.xattrs(node.id)

    async def of(self, inode: int, node: Node) -> dict[str, bytes]:
        """node's attributes (node: as the replica has it), with those changed offline."""
        pending = self._journal.xattrs(node.id)
        stored = await self._stored(inode, node)
        if not pending:
            return stored
        merged = {**stored, **pending}
        return {name: value for name, value in merged.items() if value is not None}

    async def _stored(self, inode: int, node: Node) -> dict[str, bytes]:
        if node.xattrs == 0:
            return {}
        cached = self._read.get(inode)
        if cached is not None and cached[0] == node.change_sequence:
            return cached[1]
        found = await self._call(self._meta.get_xattrs, node.id)
        self._read[inode] = (node.change_sequence, found)
        return found

    async def set(self, inode: int, node: Node, name: str, value: bytes) -> None:
        _check(name, value)
        call = partial(self._meta.set_xattr, node.id, name, value)
        if await self._sent_now(inode, node.id, call):
            return
        try:
            present = await self.of(inode, node)
        except errors.Unavailable:
            present = {}  # never read: metad counts them when this is sent
        if limits.total_bytes({**present, name: value}) > limits.MAX_TOTAL_BYTES:
            raise errors.NoSpace(
                f"a node's attributes are at most {limits.MAX_TOTAL_BYTES} bytes together"
            )
        self._journal.record_xattr(node.id, name, value)
        self._sync.wake()

    async def remove(self, inode: int, node: Node, name: str) -> None:
        if await self._sent_now(inode, node.id, partial(self._meta.remove_xattr, node.id, name)):
            return
        if name not in await self.of(inode, node):
            raise errors.NoAttribute(f"no attribute {name!r}")
        self._journal.record_xattr(node.id, name, None)
        self._sync.wake()

    async def _sent_now(self, inode: int, node_id: int, call: Callable[[], Node]) -> bool:
        """Made as a call to metad (True), unless it is to be journaled: offline, earlier
        changes made offline wait, or metad turns out to be away now."""
        if self._journaling(node_id):
            return False
        try:
            await self._entries.settle(node_id)
            self._entries.keep(await self._call(call))
        except errors.Unavailable as exc:
            self._entries.went_away(exc)
            return False
        self._read.pop(inode, None)
        return True

    def _journaling(self, node_id: int) -> bool:
        """Offline, or earlier changes made offline wait: in the journal, in order."""
        return not self._sync.online or bool(self._journal.xattrs(node_id))


def _check(name: str, value: bytes) -> None:
    """What metad would refuse, refused now (a journaled change must not be refused later)."""
    if not limits.well_formed(name):
        raise errors.InvalidArgument(f"an attribute name has 1 to {limits.MAX_NAME_BYTES} bytes")
    if not limits.supported(name):
        raise errors.NotSupported(f"attribute {name[:64]!r}: not in a namespace the drive keeps")
    if len(value) > limits.MAX_VALUE_BYTES:
        raise errors.FileTooLarge(f"an attribute value is at most {limits.MAX_VALUE_BYTES} bytes")
