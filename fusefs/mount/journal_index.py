"""What the journal holds, by node, in memory: asked on every stat and lookup.

The rows are the truth (journal.py); these indexes follow each write and are
rebuilt for a node from its rows when a change touches several at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from fusefs.models import AttributeChange
from fusefs.mount.journal_rows import ENTRY_KINDS, LINK, MKDIR, XATTR, PendingChange


class PendingIndex:
    """Per node: its newest content, the row that makes it, the attributes and extended
    attributes its rows set, and how many removals and renames of it wait."""

    def __init__(self) -> None:
        self.latest: dict[int, PendingChange] = {}  # node id -> its newest commit
        self.creates: dict[int, PendingChange] = {}  # node id -> the row that makes it
        self.folders_made: Counter[int] = Counter()  # folder id -> MKDIR rows in it
        # node id -> attributes set by its ATTRIBUTES rows: (change, mtime or None, when)
        self.attributes: dict[int, tuple[AttributeChange, int | None, int]] = {}
        self.entry_changes: dict[int, int] = {}  # node id -> its DELETE, RENAME, LINK rows
        self.links: Counter[int] = Counter()  # node id -> its LINK rows (names metad lacks)
        # node id -> extended attributes its XATTR rows set (a value) or remove (None)
        self.xattrs: dict[int, dict[str, bytes | None]] = {}

    def clear(self) -> None:
        for index in (self.latest, self.creates, self.folders_made, self.attributes):
            index.clear()
        self.entry_changes.clear()
        self.links.clear()
        self.xattrs.clear()

    def has(self, node_id: int) -> bool:
        return (
            node_id in self.latest
            or node_id in self.creates
            or node_id in self.attributes
            or node_id in self.entry_changes
            or node_id in self.xattrs
        )

    def set_create(self, node_id: int, row: PendingChange | None) -> None:
        before = self.creates.pop(node_id, None)
        if before is not None and before.kind == MKDIR:
            self.folders_made[before.parent_id] -= 1
        if row is not None:
            self.creates[node_id] = row
            if row.kind == MKDIR:
                self.folders_made[row.parent_id] += 1

    def rebuild(
        self,
        node_id: int,
        rows: Iterable[PendingChange],
        value_of: Callable[[PendingChange], bytes],
    ) -> None:
        """The node's entries, from its rows in order (value_of: what an XATTR row sets)."""
        self.latest.pop(node_id, None)
        self.set_create(node_id, None)
        self.attributes.pop(node_id, None)
        self.entry_changes.pop(node_id, None)
        self.links.pop(node_id, None)
        self.xattrs.pop(node_id, None)
        for row in rows:
            if row.kind == XATTR:
                value = value_of(row) if row.inline else None
                self.xattrs.setdefault(node_id, {})[row.new_name] = value
            elif row.is_commit:
                self.latest[node_id] = row
            elif row.is_create:
                self.set_create(node_id, row)
            elif row.kind in ENTRY_KINDS:
                self.entry_changes[node_id] = self.entry_changes.get(node_id, 0) + 1
                if row.kind == LINK:
                    self.links[node_id] += 1
            else:
                change, mtime, _ = self.attributes.get(node_id, (AttributeChange(), None, 0))
                if row.sets_mtime:
                    mtime = row.mtime_ns
                self.attributes[node_id] = (change.then(row.held), mtime, row.created_ns)


class RowsInFlight:
    """Rows taken to be sent whose outcome is not recorded yet: by seq, and by node."""

    def __init__(self) -> None:
        self._node_of: dict[int, int] = {}  # seq -> node id
        self._per_node: Counter[int] = Counter()

    def __contains__(self, seq: int) -> bool:
        return seq in self._node_of

    def __len__(self) -> int:
        return len(self._node_of)

    def add(self, rows: Iterable[PendingChange]) -> None:
        for row in rows:
            self._node_of[row.seq] = row.node_id
            self._per_node[row.node_id] += 1

    def settled(self, seq: int) -> None:
        """The row's outcome is recorded (or it was put back): no longer on its way."""
        node_id = self._node_of.pop(seq, None)
        if node_id is not None:
            self._per_node[node_id] -= 1
            if not self._per_node[node_id]:
                del self._per_node[node_id]

    def has_node(self, node_id: int) -> bool:
        return node_id in self._per_node
