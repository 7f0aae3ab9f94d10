"""Access times with relatime semantics: a read is noted, not written, per read.

Linux's default (relatime) moves a file's atime on a read only when the
atime is not after its mtime or ctime, or is a day old: "was this read since
it last changed?" stays answerable without a write per read. The mount notes
such reads here and sends the ids to metad in one MarkAccessed a second, off
the read path; offline, the notes are dropped (an atime is not worth a retry).

Must not: call metad or the kernel (the VFS sends what `take` returns).
"""

from __future__ import annotations

from fusefs.models import Node

DAY_NS = 24 * 3600 * 10**9
MAX_BATCH = 1000  # metad's limit per MarkAccessed
FLUSH_SECONDS = 1.0


def read_moves_atime(node: Node, now_ns: int) -> bool:
    """Whether a read of node now moves its atime (relatime)."""
    atime = node.atime_ns  # 0: never read since it was made
    return atime <= node.mtime_ns or atime <= node.ctime_ns or now_ns - atime >= DAY_NS


class AccessTimes:
    """Node ids read since the last flush whose atime a read moves."""

    def __init__(self) -> None:
        self._due: dict[int, int] = {}  # node id -> inode, in the order read

    def note(self, inode: int, node: Node, now_ns: int) -> None:
        if node.id not in self._due and read_moves_atime(node, now_ns):
            self._due[node.id] = inode

    def keep(self, node_id: int, inode: int) -> None:
        """A read taken that must wait for the next flush (its node is not on metad yet)."""
        self._due.setdefault(node_id, inode)

    def take(self) -> dict[int, int]:
        """Up to MAX_BATCH noted reads (node id -> inode), forgotten here."""
        ids = list(self._due)[:MAX_BATCH]
        return {node_id: self._due.pop(node_id) for node_id in ids}
