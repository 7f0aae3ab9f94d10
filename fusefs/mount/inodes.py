"""Inode numbers, kernel lookup counts and the attribute cache of the mount.

Inode numbers are metad node ids (stable, never reused), except that the
drive's root is FUSE's ROOT_INODE (1); whatever node has id 1 takes the
root's id in exchange; and that a file saved over by a renamed one answers
to the renamed one's inode while it is there (alias). Entries that are not
metad nodes ("Shared with me", .drive-history and what is below it) get
numbers from VIRTUAL_BASE up, a range no node id reaches (ids are SQLite
AUTOINCREMENT values counting from 1), handed out by VirtualInodes. Lookup
counts follow pyfuse3's rules: every reply that hands the kernel an entry
adds one, forget() subtracts.

The attribute cache holds the last Node seen for each inode; change events
drop entries so the next getattr asks metad again. The owner of every inode
the kernel knows is kept beside it, so a change of someone's share can reach
every inode of their drive the kernel holds, cached attributes or not.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from fusefs.models import Node, replaced

ROOT_INODE = 1
VIRTUAL_BASE = 1 << 62


def is_virtual(inode: int) -> bool:
    return inode >= VIRTUAL_BASE


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What the kernel must forget: an inode's attrs/data, or a directory entry."""

    inode: int = 0
    attr_only: bool = False
    parent_inode: int = 0
    name: str = ""
    deleted_inode: int = 0


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One readdir entry; offset is what a later readdir resumes after."""

    name: str
    inode: int
    node: Node
    offset: int


class LookupCounts:
    """How many times the kernel was handed each inode, minus what it forgot."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def add(self, inode: int) -> None:
        self._counts[inode] = self._counts.get(inode, 0) + 1

    def drop(self, inode: int, count: int) -> bool:
        """Subtracts count; True when the kernel no longer knows the inode."""
        left = self._counts.get(inode, 0) - count
        if left > 0:
            self._counts[inode] = left
            return False
        self._counts.pop(inode, None)
        return True

    def __contains__(self, inode: int) -> bool:
        return inode in self._counts


class InodeTable:
    def __init__(self, root_node_id: int) -> None:
        self.root_node_id = root_node_id
        self._lookups = LookupCounts()
        self._nodes: dict[int, Node] = {}
        self._owners: dict[int, int] = {}  # inode -> owner id, while the kernel knows it
        # A node answering to another node's inode: a file saved over by a renamed one
        # keeps its id, but the kernel moved the renamed file's inode to the name (see
        # alias). For as long as the node is there, not only while the kernel knows
        # the inode: a stat after the kernel forgot it must show the same number.
        self._alias: dict[int, int] = {}  # node id -> inode
        self._aliased: dict[int, int] = {}  # inode -> node id

    def inode_of(self, node_id: int) -> int:
        aliased = self._alias.get(node_id)
        if aliased is not None:
            return aliased
        if node_id == self.root_node_id:
            return ROOT_INODE
        if node_id == ROOT_INODE:
            return self.root_node_id
        return node_id

    def node_of(self, inode: int) -> int:
        node_id = self._aliased.get(inode)
        if node_id is not None:
            return node_id
        # Otherwise the mapping is its own inverse.
        if inode == ROOT_INODE:
            return self.root_node_id
        if inode == self.root_node_id:
            return ROOT_INODE
        return inode

    def alias(self, node_id: int, inode: int) -> None:
        """node_id answers to inode from now on, until it leaves the namespace (unaliased).

        Not until the kernel forgets inode: it forgets what it does not use (memory
        pressure, drop_caches) and looks the name up again, and an inode number that
        changed then breaks what programs keep of it (find, rsync, tar, pjdfstest).
        """
        before = self._alias.get(node_id)
        if before is not None and before != inode and before not in self._lookups:
            self._aliased.pop(before, None)  # (else when the kernel forgets it)
        had = self._aliased.get(inode)
        if had is not None and self._alias.get(had) == inode:
            del self._alias[had]  # a saved file saved over in turn: gone from metad
        self._alias[node_id] = inode
        self._aliased[inode] = node_id

    def unalias(self, inode: int) -> None:
        """The node answering to inode left the namespace: an alias of it ends (its
        inode's side once the kernel forgets inode; an open file may still use it)."""
        node_id = self._aliased.get(inode)
        if node_id is None or self._alias.get(node_id) != inode:
            return
        del self._alias[node_id]
        if inode not in self._lookups:
            del self._aliased[inode]

    # --- kernel lookup counts ------------------------------------------

    def remember(self, node: Node) -> int:
        """Records a node handed to the kernel; returns its inode."""
        inode = self.inode_of(node.id)
        self._lookups.add(inode)
        self._nodes[inode] = node  # (update's two lines: asked on every lookup)
        self._owners[inode] = node.owner_id
        return inode

    def forget(self, inode: int, count: int) -> bool:
        """Drops count lookups; True when the kernel no longer knows the inode."""
        if not self._lookups.drop(inode, count):
            return False
        if inode != ROOT_INODE:
            self._nodes.pop(inode, None)
            self._owners.pop(inode, None)
            node_id = self._aliased.get(inode)
            if node_id is not None and self._alias.get(node_id) != inode:
                del self._aliased[inode]  # the node answers to another inode now, or left
        return True

    def known(self, inode: int) -> bool:
        return inode == ROOT_INODE or inode in self._lookups

    def owned(self, match: Callable[[int], bool]) -> list[int]:
        """Inodes (known or cached) whose owner id satisfies match."""
        return [inode for inode, owner in self._owners.items() if match(owner)]

    # --- attribute cache -------------------------------------------------

    def cached(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def update(self, node: Node) -> None:
        inode = self.inode_of(node.id)
        self._nodes[inode] = node
        self._owners[inode] = node.owner_id

    def invalidate(self, inode: int) -> None:
        self._nodes.pop(inode, None)

    def accessed(self, inode: int, atime_ns: int) -> None:
        """A read moved the node's atime (nothing else of it is newer for that)."""
        node = self._nodes.get(inode)
        if node is not None and node.atime_ns < atime_ns:
            self._nodes[inode] = replaced(node, atime_ns=atime_ns)

    def touch(self, inode: int, time_ns: int) -> None:
        """Our own change to a directory's entries: its times move, nothing else.

        Cheaper than dropping the entry, which would cost a Stat on the next
        getattr of the directory after every create in it.
        """
        node = self._nodes.get(inode)
        if node is not None and node.mtime_ns < time_ns:
            self._nodes[inode] = replaced(node, mtime_ns=time_ns, ctime_ns=time_ns)


class VirtualInodes:
    """Inode numbers of entries that are not metad nodes, one per key.

    A key (any hashable value naming what the entry shows, e.g. "revision 3 of
    node 12") keeps its number while the kernel knows it, so a second lookup
    finds the same inode; once the kernel forgets it, the number is retired
    (never reused) and the key gets a new one next time. Fixed entries keep
    their number for the life of the mount.
    """

    def __init__(self, first_free: int) -> None:
        assert is_virtual(first_free)
        self._next = first_free
        self._by_key: dict[Hashable, int] = {}
        self._keys: dict[int, Hashable] = {}
        self._lookups = LookupCounts()
        self._fixed: set[int] = set()

    def fix(self, inode: int, key: Hashable) -> None:
        assert is_virtual(inode) and inode < self._next
        self._by_key[key] = inode
        self._keys[inode] = key
        self._fixed.add(inode)

    def inode(self, key: Hashable) -> int:
        """The number of key, allocated on first use."""
        inode = self._by_key.get(key)
        if inode is None:
            inode = self._next
            self._next += 1
            self._by_key[key] = inode
            self._keys[inode] = key
        return inode

    def key(self, inode: int) -> Hashable | None:
        return self._keys.get(inode)

    def remember(self, inode: int) -> None:
        self._lookups.add(inode)

    def forget(self, inode: int, count: int) -> bool:
        """Drops count lookups; True when the number was retired."""
        if not self._lookups.drop(inode, count) or inode in self._fixed:
            return False
        key = self._keys.pop(inode, None)
        if key is not None and self._by_key.get(key) == inode:
            del self._by_key[key]
        return True

    def known(self, inode: int) -> bool:
        return inode in self._lookups or inode in self._fixed
