"""The mount's local copy of the drive's metadata: one SQLite file in its cache folder.

Holds every node the mount has seen (own drive and shares) with its
attributes, the entries of folders (all of them once a folder was listed in
full: a name missing there does not exist), the block lists of revisions
read, the usage figures, and the journal sequence all of it reflects. The
mount answers lookup, getattr, readdir, readlink and statfs from it without
a call, also after a remount and while the servers are unreachable.

It is a cache of metad's truth, never an authority: rows are only written
from metad's answers and change events, each stamped with the node's change
sequence so an older answer never overwrites a newer one. Writes gather in
one transaction committed by flush() (about once a second); a crash loses
the last rows together with the cursor that covers them, so the follower
replays those changes and nothing is missed. Nothing here is durable user
data (that is the write-back journal's job): a damaged or foreign file is
simply started afresh.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from fusefs.models import Node, Revision, Usage, replaced
from fusefs.mount.replica_rows import (
    JOINED_COLUMNS,
    NODE_COLUMNS,
    PUT_LINKED_NODE,
    PUT_NODE,
    SCHEMA,
    SCHEMA_VERSION,
    node_of,
    node_row,
    pack_blocks,
    unpack_blocks,
)

log = logging.getLogger(__name__)

_NODES_KEPT = 50_000  # nodes kept in memory (some 25 MB at most)
_LISTED_FROM_MEMORY = 4096  # folders up to this many entries are listed from memory


class Replica:
    """Nodes, entries, listings and revisions as metad last told us; see the module doc."""

    def __init__(self, path: Path, drive: str) -> None:
        """Opens (or starts afresh) the replica at path for drive (who, where: any text).

        A replica made for another drive or user, or by another schema, or
        damaged, is discarded: it holds nothing that metad cannot tell again.
        """
        self.path = path
        try:
            self._db = self._open(path, drive)
        except sqlite3.DatabaseError as exc:
            log.warning("metadata replica %s unusable (%s): starting afresh", path, exc)
            self._discard(path)
            self._db = self._open(path, drive)
        # Nodes read by id (each stat, each change heard): node id -> (node, stale),
        # updated with every write of a node's row.
        self._nodes: dict[int, tuple[Node, bool]] = {}
        # Entries read or written: parent id -> name -> (node id, entry id); and the
        # folders listed whole (all of them, from the table).
        self._entries: dict[int, dict[str, tuple[int, int]]] = {}
        self._entries_kept = 0
        # Folders whose every recorded entry is kept (a name missing there is not in the
        # table either); all_entries: every folder's.
        self._complete: set[int] = set()
        self._all_entries = False
        self._listed = {row[0] for row in self._db.execute("SELECT dir_id FROM listed")}
        self._warm()
        # Facts are read on every change and stat: kept here, written with each flush.
        self._facts = dict(self._db.execute("SELECT key, value FROM facts"))
        self._facts_changed: set[str] = set()
        self._disk_full = False  # the last flush found the cache disk full

    def _warm(self) -> None:
        """Reads what it holds into memory, up to _NODES_KEPT nodes and entries: after a
        remount, stat and lookup answer at once (a few hundred ms for 50,000 nodes)."""
        query = f"SELECT {NODE_COLUMNS}, stale FROM nodes LIMIT {_NODES_KEPT}"
        for row in self._db.execute(query):
            self._keep_node(node_of(row[:-1]), bool(row[-1]))
        query = f"SELECT parent_id, name, node_id, entry_id FROM entries LIMIT {_NODES_KEPT}"
        for parent_id, name, node_id, entry_id in self._db.execute(query):
            self._keep_entry(parent_id, name, (node_id, entry_id))
        self._all_entries = self._entries_kept < _NODES_KEPT

    @staticmethod
    def _discard(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return db

    def _open(self, path: Path, drive: str) -> sqlite3.Connection:
        db = self._connect(path)
        facts = dict(db.execute("SELECT key, value FROM facts"))
        if facts and (facts.get("drive") != drive or facts.get("schema") != SCHEMA_VERSION):
            db.close()
            log.info("metadata replica %s was for another drive: starting afresh", path)
            self._discard(path)
            db = self._connect(path)
            facts = {}
        if not facts:
            db.executemany(
                "INSERT INTO facts VALUES (?, ?)",
                [("drive", drive), ("schema", SCHEMA_VERSION), ("cursor", None)],
            )
            db.commit()
        return db

    def flush(self) -> None:
        """Makes what was written so far survive a crash of the mount (not of the machine).

        With the cache disk full it does not fail: the rows wait for a later flush
        (or, if SQLite rolled them back, go, with the cursor that covered them: a
        restart replays those changes). The replica is a cache; the mount goes on.
        """
        try:
            if self._facts_changed:
                self._db.executemany(
                    "INSERT OR REPLACE INTO facts VALUES (?, ?)",
                    [(key, self._facts[key]) for key in self._facts_changed],
                )
            self._db.commit()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_FULL" and not exc.sqlite_errorname.startswith(
                "SQLITE_IOERR"
            ):
                raise
            if not self._db.in_transaction:
                self._facts_changed = set(self._facts)  # rolled back: written again next time
                # Entries kept in memory may be gone from the table: read them from it again
                # (put_entry skips one memory says is recorded).
                self._entries.clear()
                self._complete.clear()
                self._all_entries, self._entries_kept = False, 0
            if not self._disk_full:
                log.warning("cache disk full: the replica's newest rows wait in memory (%s)", exc)
            self._disk_full = True
            return
        self._facts_changed.clear()
        if self._disk_full:
            log.info("the replica is written to disk again")
            self._disk_full = False

    def close(self) -> None:
        self.flush()
        self._db.close()

    def reset(self) -> None:
        """Forgets everything, its cursor too (it fell too far behind to catch up on)."""
        for table in ("nodes", "entries", "listed", "revisions"):
            self._db.execute(f"DELETE FROM {table}")
        self._nodes.clear()
        self._entries.clear()
        self._listed.clear()
        self._all_entries, self._entries_kept = True, 0
        self._set_fact("cursor", None)

    # --- the journal sequence it reflects ----------------------------------

    @property
    def cursor(self) -> int:
        """The sequence of the last change applied (0: none, or none yet)."""
        return self._fact("cursor", None) or 0

    @cursor.setter
    def cursor(self, sequence: int) -> None:
        self._set_fact("cursor", sequence)

    def begin(self, root: Node, head: int, max_behind: int) -> int:
        """The sequence to follow the journal from, for a mount that found root's drive
        with its journal at head: the cursor; or head for a replica that never had one,
        was another user's, or is more than max_behind changes behind (it starts afresh
        then: catching up one change at a time would be slower).

        A cursor of 0 is a cursor like any other (a drive whose journal was empty when
        the replica began, and whose first changes were not applied yet when the mount
        was killed): what the replica holds is kept, and those changes replayed.
        """
        self.set_root(root)
        if self._fact("cursor", None) is None or head - self.cursor > max_behind:
            self.reset()
            self.set_root(root)
            self.cursor = head
        return self.cursor

    def _fact(self, key: str, default):
        return self._facts.get(key, default)

    def _set_fact(self, key: str, value) -> None:
        self._facts[key] = value
        self._facts_changed.add(key)

    # --- whose drive ------------------------------------------------------

    def root(self) -> Node | None:
        """The root of the drive it was filled for (to mount without metad)."""
        root_id = self._fact("root_id", 0)
        return self.node(root_id, stale_too=True) if root_id else None

    def set_root(self, root: Node) -> None:
        """The drive's root as metad gave it now; a replica of another user's drive is reset."""
        if self._fact("user_id", root.owner_id) != root.owner_id:
            self.reset()
        self._set_fact("user_id", root.owner_id)
        self._set_fact("root_id", root.id)
        self.put(root)

    def node(self, node_id: int, *, stale_too: bool = False) -> Node | None:
        """A node's own attributes; a stale one (changed since) only when stale_too."""
        known = self._known(node_id)
        if known is None or (known[1] and not stale_too):
            return None
        return known[0]

    def _known(self, node_id: int) -> tuple[Node, bool] | None:
        """(node, stale) as recorded; None if not."""
        known = self._nodes.get(node_id)
        if known is None:
            row = self._db.execute(
                f"SELECT {NODE_COLUMNS}, stale FROM nodes WHERE id = ?",
                (node_id,),
            ).fetchone()
            if row is None:
                return None
            known = self._keep_node(node_of(row[:-1]), bool(row[-1]))
        return known

    def _keep_node(self, node: Node, stale: bool) -> tuple[Node, bool]:
        if len(self._nodes) >= _NODES_KEPT and node.id not in self._nodes:
            # The oldest quarter goes (a drive bigger than the bound keeps most of
            # what it uses, rather than starting empty each time it fills up).
            for node_id in list(itertools.islice(self._nodes, max(1, _NODES_KEPT // 4))):
                del self._nodes[node_id]
        known = self._nodes[node.id] = (node, stale)
        return known

    def put(self, node: Node) -> None:
        """Records a node as metad showed it, unless a newer state is recorded already.

        A node seen under a further name (a hard link: entry_id is not its
        id) keeps the parent and name recorded as its own.
        """
        own_name = node.entry_id in (0, node.id)
        row = node_row(node)
        written = self._db.execute(PUT_NODE if own_name else PUT_LINKED_NODE, row).rowcount
        if written and own_name:
            # The row now says what node says (frozen: shared safely), so the node is kept
            # as given, not read back from the row (~40 % of a put); an entry_id left
            # unset is filled in as a read of the row would.
            if node.entry_id != node.id:
                node = replaced(node, entry_id=node.id)
            self._keep_node(node, False)
        else:
            self._nodes.pop(node.id, None)  # kept as it was, or partly: read again

    def mark_stale(self, node_id: int) -> None:
        """The node changed; its row still answers when metad cannot be asked."""
        self._db.execute("UPDATE nodes SET stale = 1 WHERE id = ?", (node_id,))
        known = self._nodes.get(node_id)
        if known is not None:
            self._nodes[node_id] = (known[0], True)

    def touch(self, node_id: int, time_ns: int) -> None:
        """Our own change to a folder's entries moved its times (forward only)."""
        self._db.execute(
            "UPDATE nodes SET mtime_ns = ?, ctime_ns = ? WHERE id = ? AND mtime_ns < ?",
            (time_ns, time_ns, node_id, time_ns),
        )
        known = self._nodes.get(node_id)
        if known is not None and known[0].mtime_ns < time_ns:
            self._nodes[node_id] = (
                replaced(known[0], mtime_ns=time_ns, ctime_ns=time_ns),
                known[1],
            )

    def accessed(self, node_id: int, atime_ns: int) -> None:
        self._db.execute(
            "UPDATE nodes SET atime_ns = ? WHERE id = ? AND atime_ns < ?",
            (atime_ns, node_id, atime_ns),
        )
        known = self._nodes.get(node_id)
        if known is not None and known[0].atime_ns < atime_ns:
            self._nodes[node_id] = (replaced(known[0], atime_ns=atime_ns), known[1])

    def drop(self, node_id: int) -> None:
        """The node left the drive (or our sight): it, its names and its listing go."""
        self._db.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
        self._nodes.pop(node_id, None)
        named = "SELECT parent_id, name FROM entries WHERE node_id = ?"
        for parent_id, name in self._db.execute(named, (node_id,)).fetchall():
            self._forget_entry(parent_id, name)
        self._db.execute("DELETE FROM entries WHERE node_id = ?", (node_id,))
        self._db.execute("DELETE FROM entries WHERE parent_id = ?", (node_id,))
        self._forget_folder(node_id)
        self._db.execute("DELETE FROM listed WHERE dir_id = ?", (node_id,))
        self._listed.discard(node_id)
        self._db.execute("DELETE FROM revisions WHERE node_id = ?", (node_id,))

    def forget_owners(self, keep_owner: int, only_owner: int = 0) -> None:
        """Drops the nodes of other people's drives (only_owner's, if given).

        Shares changed: what we may see of their drives is asked again. The folders
        that named them are listed again too: a node left our sight, not its folder,
        and a folder still marked listed would say its names do not exist.
        """
        if only_owner:
            ids = self._db.execute("SELECT id FROM nodes WHERE owner_id = ?", (only_owner,))
        else:
            ids = self._db.execute("SELECT id FROM nodes WHERE owner_id != ?", (keep_owner,))
        for (node_id,) in ids.fetchall():
            named_in = "SELECT DISTINCT parent_id FROM entries WHERE node_id = ?"
            for (parent_id,) in self._db.execute(named_in, (node_id,)).fetchall():
                self.unlist(parent_id)
            self.drop(node_id)

    # --- entries of folders ------------------------------------------------

    def listed(self, dir_id: int) -> bool:
        """Whether every entry of the folder is here (a missing name does not exist)."""
        return dir_id in self._listed

    def unlist(self, dir_id: int) -> None:
        """Entries of the folder may be missing now: lookups ask metad again."""
        self._db.execute("DELETE FROM listed WHERE dir_id = ?", (dir_id,))
        self._listed.discard(dir_id)

    def lookup(self, parent_id: int, name: str) -> tuple[Node, bool] | None:
        """The entry's node as the entry shows it, and whether it is stale; None: not recorded."""
        entry = self._entry(parent_id, name)
        known = None if entry is None else self._known(entry[0])
        if known is None:
            return None
        node, stale = known
        entry_id = entry[1] or node.id
        if (node.parent_id, node.name, node.entry_id) != (parent_id, name, entry_id):
            node = replaced(node, parent_id=parent_id, name=name, entry_id=entry_id)
        return node, stale

    def _entry(self, parent_id: int, name: str) -> tuple[int, int] | None:
        """(node id, entry id) of a recorded entry."""
        entry = self._entries.get(parent_id, {}).get(name)
        if entry is None and not (self._all_entries or parent_id in self._complete):
            entry = self._db.execute(
                "SELECT node_id, entry_id FROM entries WHERE parent_id = ? AND name = ?",
                (parent_id, name),
            ).fetchone()
            if entry is not None:
                self._keep_entry(parent_id, name, entry)
        return entry

    def _keep_entry(self, parent_id: int, name: str, entry: tuple[int, int]) -> None:
        names = self._entries.get(parent_id)
        if names is None or name not in names:
            if self._entries_kept >= _NODES_KEPT:
                self._let_folders_go(keep=parent_id)
            self._entries_kept += 1
        self._entries.setdefault(parent_id, {})[name] = entry

    def _forget_entry(self, parent_id: int, name: str) -> None:
        if self._entries.get(parent_id, {}).pop(name, None) is not None:
            self._entries_kept -= 1

    def _let_folders_go(self, keep: int) -> None:
        """The folders kept longest go until a quarter of the bound is free (keep stays)."""
        self._all_entries = False
        for dir_id in list(self._entries):
            if self._entries_kept <= _NODES_KEPT * 3 // 4:
                break
            if dir_id != keep:
                self._forget_folder(dir_id)
        if self._entries_kept >= _NODES_KEPT:  # keep alone fills it
            self._forget_folder(keep)

    def _forget_folder(self, dir_id: int) -> None:
        """Every kept entry of the folder goes (it is no longer complete in memory)."""
        self._entries_kept -= len(self._entries.pop(dir_id, {}))
        self._complete.discard(dir_id)

    def entry_target(self, parent_id: int, name: str) -> int | None:
        """The node id an entry names, stale or not."""
        entry = self._entry(parent_id, name)
        return None if entry is None else entry[0]

    def has_entry(self, parent_id: int, name: str) -> bool:
        return self.entry_target(parent_id, name) is not None

    def put_entry(self, node: Node) -> None:
        """Records node under the entry it shows (its parent_id, name and entry_id)."""
        self.put(node)
        entry = (node.id, node.entry_id or node.id)
        if self._entries.get(node.parent_id, {}).get(node.name) == entry:
            return  # recorded so already (memory holds what the table holds): a landing
        self._db.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
            (node.parent_id, node.name, *entry),
        )
        self._keep_entry(node.parent_id, node.name, entry)

    def remove_entry(self, parent_id: int, name: str, node_id: int | None = None) -> None:
        """The name is gone from the folder (only if it still names node_id, when given)."""
        if node_id is None:
            self._db.execute(
                "DELETE FROM entries WHERE parent_id = ? AND name = ?", (parent_id, name)
            )
            self._forget_entry(parent_id, name)
        else:
            self._db.execute(
                "DELETE FROM entries WHERE parent_id = ? AND name = ? AND node_id = ?",
                (parent_id, name, node_id),
            )
            if self._entries.get(parent_id, {}).get(name, (node_id,))[0] == node_id:
                self._forget_entry(parent_id, name)

    def mark_listed(self, dir_id: int) -> None:
        """The folder's entries recorded are all it has (one made here: nothing is unknown)."""
        self._db.execute("INSERT OR IGNORE INTO listed VALUES (?)", (dir_id,))
        self._listed.add(dir_id)

    def set_listing(self, dir_id: int, nodes: Iterable[Node]) -> None:
        """The folder's complete entries, as just listed."""
        self._db.execute("DELETE FROM entries WHERE parent_id = ?", (dir_id,))
        self._forget_folder(dir_id)
        count = 0
        for node in nodes:
            self.put_entry(node)
            count += 1
        if len(self._entries.get(dir_id, {})) == count:  # none let go meanwhile
            self._complete.add(dir_id)
        self._db.execute("INSERT OR IGNORE INTO listed VALUES (?)", (dir_id,))
        self._listed.add(dir_id)

    def entries(self, dir_id: int, after_entry_id: int, limit: int) -> list[Node]:
        """A listed folder's entries in entry id order, after after_entry_id.

        Stale nodes are listed as last known: a listing is answered whole. From
        memory when all of it is kept there (no page of the file read: after a
        remount with a cold page cache, the first `ls -lR` read one or two per folder).
        """
        kept = self._kept_entries(dir_id)
        if kept is not None:
            return [node for node in kept if node.entry_id > after_entry_id][:limit]
        rows = self._db.execute(
            f"SELECT {JOINED_COLUMNS}, "
            "e.name, e.entry_id FROM entries e JOIN nodes n ON n.id = e.node_id "
            "WHERE e.parent_id = ? AND e.entry_id > ? ORDER BY e.entry_id LIMIT ?",
            (dir_id, after_entry_id, limit),
        ).fetchall()
        return [node_of(r[:-2], dir_id, r[-2], r[-1]) for r in rows]

    def _kept_entries(self, dir_id: int) -> list[Node] | None:
        """A folder's entries as the table would list them, if memory holds all of them
        (every entry, every node: the table's join leaves out entries without a node
        row, so one missing here sends the listing there) and they are not many."""
        if not (self._all_entries or dir_id in self._complete):
            return None
        kept = self._entries.get(dir_id, {})
        if len(kept) > _LISTED_FROM_MEMORY:
            return None
        listed = []
        for name, (node_id, entry_id) in kept.items():
            known = self._nodes.get(node_id)
            if known is None:
                return None
            node, entry_id = known[0], entry_id or node_id
            if (node.parent_id, node.name, node.entry_id) != (dir_id, name, entry_id):
                node = replaced(node, parent_id=dir_id, name=name, entry_id=entry_id)
            listed.append(node)
        listed.sort(key=lambda node: node.entry_id)
        return listed

    # --- revisions and usage -----------------------------------------------

    def revision(self, node_id: int, number: int) -> Revision | None:
        row = self._db.execute(
            "SELECT size, mtime_ns, blocks FROM revisions WHERE node_id = ? AND number = ?",
            (node_id, number),
        ).fetchone()
        if row is None:
            return None
        return Revision(node_id, number, row[0], row[1], unpack_blocks(row[2]))

    def put_revision(self, revision: Revision) -> None:
        """Keeps a revision's block list (the newest per node: older ones are not read again)."""
        self.put_revisions([revision])

    def put_revisions(self, revisions: list[Revision]) -> None:
        """put_revision of many (a batch's landings), with one statement each way."""
        newest = {r.node_id: r for r in revisions}.values()  # (the last of a node wins)
        self._db.executemany(
            "DELETE FROM revisions WHERE node_id = ?", [(r.node_id,) for r in newest]
        )
        self._db.executemany(
            "INSERT INTO revisions VALUES (?, ?, ?, ?, ?)",
            [(r.node_id, r.number, r.size, r.mtime_ns, pack_blocks(r.blocks)) for r in newest],
        )

    def usage(self) -> Usage | None:
        used = self._fact("used_bytes", None)
        if used is None:
            return None
        return Usage(used, self._fact("quota_bytes", 0), self._fact("node_count", 0))

    def put_usage(self, usage: Usage) -> None:
        self._set_fact("used_bytes", usage.used_bytes)
        self._set_fact("quota_bytes", usage.quota_bytes)
        self._set_fact("node_count", usage.node_count)
