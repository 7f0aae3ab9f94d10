"""Inode numbers, kernel lookup counts and the attribute cache of the mount.

Inode numbers are metad node ids (stable, never reused), except that the
drive's root is FUSE's ROOT_INODE (1); whatever node has id 1 takes the
root's id in exchange. Lookup counts follow pyfuse3's rules: every reply that
hands the kernel an entry adds one, forget() subtracts.

The attribute cache holds the last Node seen for each inode; change events
drop entries so the next getattr asks metad again.
"""

from __future__ import annotations

from dataclasses import replace

from fusefs.models import Node

ROOT_INODE = 1


class InodeTable:
    def __init__(self, root_node_id: int) -> None:
        self.root_node_id = root_node_id
        self._lookups: dict[int, int] = {}
        self._nodes: dict[int, Node] = {}

    def inode_of(self, node_id: int) -> int:
        if node_id == self.root_node_id:
            return ROOT_INODE
        if node_id == ROOT_INODE:
            return self.root_node_id
        return node_id

    def node_of(self, inode: int) -> int:
        # The mapping is its own inverse.
        return self.inode_of(inode)

    # --- kernel lookup counts ------------------------------------------

    def remember(self, node: Node) -> int:
        """Records a node handed to the kernel; returns its inode."""
        inode = self.inode_of(node.id)
        self._lookups[inode] = self._lookups.get(inode, 0) + 1
        self._nodes[inode] = node
        return inode

    def forget(self, inode: int, count: int) -> bool:
        """Drops count lookups; True when the kernel no longer knows the inode."""
        left = self._lookups.get(inode, 0) - count
        if left > 0:
            self._lookups[inode] = left
            return False
        self._lookups.pop(inode, None)
        if inode != ROOT_INODE:
            self._nodes.pop(inode, None)
        return True

    def known(self, inode: int) -> bool:
        return inode == ROOT_INODE or inode in self._lookups

    # --- attribute cache -------------------------------------------------

    def cached(self, inode: int) -> Node | None:
        return self._nodes.get(inode)

    def update(self, node: Node) -> None:
        self._nodes[self.inode_of(node.id)] = node

    def invalidate(self, inode: int) -> None:
        self._nodes.pop(inode, None)

    def touch(self, inode: int, time_ns: int) -> None:
        """Our own change to a directory's entries: its times move, nothing else.

        Cheaper than dropping the entry, which would cost a Stat on the next
        getattr of the directory after every create in it.
        """
        node = self._nodes.get(inode)
        if node is not None:
            self._nodes[inode] = replace(node, mtime_ns=time_ns, ctime_ns=time_ns)
