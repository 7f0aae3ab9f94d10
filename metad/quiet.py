"""Quiet trash: what programs make and remove by themselves leaves no trace.

Editors' swap files, lock files, SQLite journals and the like, and anything
created and removed again within a short while, are forgotten when removed
instead of going to the trash (their revisions with them), so the trash
holds what people deleted. Names follow the habits of the common programs:

    *.swp *.swo *.swx *~ *.tmp *.temp  .~lock.*#  ~$*  *-journal *-wal *-shm
    *.lock inside a .git folder

Runs on the writer's thread inside the removal's transaction.
"""

from __future__ import annotations

import fnmatch

from metad import access, rows
from metad.models import Node, NodeKind
from metad.transaction import Transaction

# A file removed this soon after it was created is taken for a temporary.
WINDOW_NS = 30 * 10**9
PATTERNS = (
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    "*.tmp",
    "*.temp",
    ".~lock.*#",
    "~$*",
    "*-journal",
    "*-wal",
    "*-shm",
)


def is_temporary(
    tx: Transaction, node: Node, window_ns: int = WINDOW_NS, *, remover_id: int
) -> bool:
    """Whether a node being removed is a program's temporary (see the module docstring).

    Names count only when the file was born with one: a document renamed to
    "notes.txt~" on its way out (vim's backup) keeps its trash entry and history.
    window_ns: anything removed this soon after it was created counts as one
    (git probes a new repository's symlinks and modes with such files).
    remover_id: who removes it; only the user who made it removes it quietly (a
    collaborator's delete of someone else's file, however new, goes to the trash).
    """
    created = rows.fetch_one(
        tx.conn,
        "SELECT time_ns, name, parent_id, actor_id FROM changes"
        " WHERE node_id = ? AND kind = 'created'"
        " ORDER BY sequence LIMIT 1",
        (node.id,),
    )
    if created is None:  # made before the journal kept creations: never a temporary
        return False
    born_ns, born_name, born_parent, maker_id = created
    if maker_id != remover_id:
        return False  # someone else's file: its owner may want it back, whatever its name
    if node.kind is NodeKind.FILE and born_name == node.name and born_parent == node.parent_id:
        if any(fnmatch.fnmatchcase(node.name, pattern) for pattern in PATTERNS):
            return True
        path = f"/{access.path_in_owner_drive(tx.conn, node.id)}"
        if node.name.endswith(".lock") and "/.git/" in path:
            return True
    return window_ns > 0 and tx.now_ns - born_ns < window_ns
