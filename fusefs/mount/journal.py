"""The write-back journal: changes that close() and other calls confirmed, waiting to
be committed.

close(2) returns once a file's new content and its journal row are durable on
local disk (small content inside the row; larger content fsynced and moved
into the journal folder; the row committed with SQLite's full sync); the
synchronizer sends it to the servers later, in order, in batches. A kill -9
of the mount, a reboot or a server outage loses nothing close confirmed: the
next mount finds the rows and sends them.

Rows are of these kinds: a file's new content (COMMIT), a file, folder or
symbolic link made here with a node id reserved in advance (CREATE, MKDIR,
SYMLINK), chmod/chown/utime of a node (ATTRIBUTES), and, made offline, a
removal or rename (DELETE, RENAME) and an extended attribute set or removed
(XATTR). Owns what a change does to the rows
waiting (which it replaces, joins or follows), their indexes by node, which
rows are taken to be sent and what each outcome does, and the base revision
each commit is made on. A file closed again before its previous content was
sent replaces that content (only the newest is committed); one closed while
its previous content is on its way is committed on top of the revision that
one makes. Rows are sent in order (Journal.take).
Also keeps the upload receipts blockd gave this device (they never expire), so
an upload interrupted by a crash resumes with the blocks already stored.

Must not: run SQL or touch the content folder itself (journal_store.py owns
the database, its transactions and the durability rule), or send anything.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from fusefs.models import AttributeChange, Kind, Ownership, replaced
from fusefs.mount.journal_index import PendingIndex, RowsInFlight
from fusefs.mount.journal_rows import (
    AFTER_PREVIOUS,
    ATTRIBUTES,
    COMMIT,
    DELETE,
    DIRECTORY,
    EXCHANGE,
    LINK,
    MAKES,
    NEW_FILE_REVISION,
    NO_REPLACE,
    RENAME,
    XATTR,
    PendingChange,
    new_row,
)
from fusefs.mount.journal_store import JournalStore, NotSynced, disk_error

log = logging.getLogger(__name__)


class Journal:
    """Rows and content files under one folder (a JournalStore).

    Sealing runs in worker threads (it waits for the disk); every use of the
    store and of the indexes holds one lock.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._mutex = threading.RLock()
        self._store = JournalStore(directory)
        self._in_flight = RowsInFlight()
        self._committed: dict[int, int] = {}  # node id -> revision our last commit made
        self._discarded: set[int] = set()  # nodes we deleted: their commits are moot
        self._by_node = PendingIndex()
        self._index()

    def close(self) -> None:
        self._store.close()

    def claim(self, owner: str) -> None:
        """Binds the journal to one user of one drive (owner: any text naming them).

        Rows and reserved ids are that user's: a journal holding unsent rows of
        another refuses (ValueError), one with none starts afresh for this one.
        """
        with self._mutex:
            self._store.claim(owner)

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """What is done inside (rows applied, committed, created: a batch's landings) is
        written in one transaction rather than one each.

        If it cannot commit (the local disk full), the rows the body dropped stay
        on disk and come back into the indexes: they are sent again (their request
        ids make that harmless); raises OSError (ENOSPC or EIO).
        """
        with self._mutex:
            try:
                with self._store.transaction():
                    yield
            except sqlite3.OperationalError as exc:
                self._index()
                raise disk_error(exc) from exc
            except BaseException:
                self._index()
                raise

    # --- what is pending ----------------------------------------------------

    def pending(self) -> list[PendingChange]:
        with self._mutex:
            return self._store.select()

    def content(self, commit: PendingChange) -> Path | bytes:
        """A commit's sealed content: its file, or the bytes kept in its row."""
        return self.contents([commit])[commit.seq]

    def contents(self, commits: list[PendingChange]) -> dict[int, Path | bytes]:
        """content() of each commit by seq, the bytes kept in rows read in one query
        (a batch of small files: one statement under the lock instead of one each)."""
        inline = [c.seq for c in commits if c.inline]
        with self._mutex:
            kept = self._store.data_of(inline) if inline else {}
        found: dict[int, Path | bytes] = {}
        for commit in commits:
            if commit.inline:
                if commit.seq not in kept:
                    raise KeyError(f"journal row {commit.seq} is gone")
                found[commit.seq] = kept[commit.seq]
            else:
                assert commit.content is not None
                found[commit.seq] = commit.content
        return found

    def scratch(self) -> Path:
        """A path on the journal's disk for a file the caller makes and removes (swept
        at the next start if a crash leaves it)."""
        return self._store.scratch()

    def xattr_value(self, row: PendingChange) -> bytes:
        """The value an XATTR row sets."""
        with self._mutex:
            return self._store.data(row.seq)

    def xattrs(self, node_id: int) -> dict[str, bytes | None]:
        """Extended attributes set (a value) or removed (None) offline and not sent yet."""
        return self._by_node.xattrs.get(node_id, {})

    def latest(self, node_id: int) -> PendingChange | None:
        """The newest content closed for a node and not committed yet (asked on every stat)."""
        return self._by_node.latest.get(node_id)

    def attributes(self, node_id: int) -> tuple[AttributeChange, int | None, int] | None:
        """What chmod/chown/utime set on a node and did not send yet: (the change,
        the mtime or None, when it was made); asked on every stat."""
        return self._by_node.attributes.get(node_id)

    def _index(self) -> None:
        with self._mutex:
            self._by_node.clear()
            self._reindex(*self._store.nodes())

    def _reindex(self, *node_ids: int) -> None:
        """The indexes of these nodes, from their rows (cheap: by node)."""
        for node_id in node_ids:
            rows = self._store.of_node(node_id)
            self._by_node.rebuild(node_id, rows, self.xattr_value)

    def creating(self, node_id: int) -> bool:
        """Whether the node was made here and metad has not got it yet."""
        return node_id in self._by_node.creates

    def folders_made_in(self, dir_id: int) -> int:
        """Folders made here in dir_id that metad has not got yet (its st_nlink lacks them)."""
        return self._by_node.folders_made[dir_id]

    def links_made(self, node_id: int) -> int:
        """Names made here for the node (hard links) that metad has not got yet (its
        st_nlink lacks them, as a folder's lacks folders_made_in)."""
        return self._by_node.links[node_id]

    def creating_in(self, dir_id: int) -> list[int]:
        return [c.node_id for c in self._by_node.creates.values() if c.parent_id == dir_id]

    def pending_for(self, node_id: int) -> bool:
        """Whether any change of the node waits in the journal."""
        return self._by_node.has(node_id)

    def in_flight_for(self, node_id: int) -> bool:
        """Whether a row of the node is being sent (its outcome will be recorded)."""
        return self._in_flight.has_node(node_id)

    def moving(self, node_id: int) -> bool:
        """Whether a removal, rename or link of the node waits: its names here are newer
        than metad's until that lands."""
        return node_id in self._by_node.entry_changes

    def moves_pending(self) -> bool:
        """Whether renames or removals made offline wait: later ones go after them."""
        return bool(self._by_node.entry_changes)

    def totals(self) -> tuple[int, int]:
        """(files, bytes) waiting."""
        with self._mutex:
            return self._store.count, self._store.total_bytes

    def take(self, max_files: int, max_bytes: int) -> list[PendingChange]:
        """The oldest rows not on their way yet, in order, up to the first that must wait:
        a commit of a node whose earlier commit is in this batch or on its way (it goes
        on top of the revision that one makes), or whatever follows a rename over
        another entry (a save gives the moved node's later rows to the saved file)."""
        with self._mutex:
            taken: list[PendingChange] = []
            # Rows on their way are the oldest: among these. Only (seq, node, kind) of those
            # is read (up to 500 of them, at every batch): whole rows only of the others.
            head = self._store.head(len(self._in_flight) + max_files)
            committing = {n for seq, n, kind in head if seq in self._in_flight and kind == COMMIT}
            waiting = [seq for seq, _, _ in head if seq not in self._in_flight]
            rows = self._store.rows(waiting) if waiting else []
            size = 0
            for row in rows:
                if taken and (len(taken) >= max_files or size + row.size > max_bytes):
                    break
                if row.is_commit:
                    if row.node_id in committing:
                        break
                    committing.add(row.node_id)
                taken.append(row)
                size += row.size
                if row.kind == RENAME and not row.flags & (NO_REPLACE | EXCHANGE):
                    break  # maybe a save: later rows of the node are the saved file's
            self._in_flight.add(taken)
            if taken:
                self._store.sync_wal()  # nothing leaves before it is on disk here
            return taken

    def put_back(self, commit: PendingChange) -> None:
        """Not sent after all (the servers went away): taken again later."""
        with self._mutex:
            self._in_flight.settled(commit.seq)

    # --- recording --------------------------------------------------------

    def seal(
        self, *, node_id: int, parent_id: int, name: str, mine: bool, base_revision: int,
        size: int, mtime_ns: int, held: AttributeChange, staging: Path | None = None,
        staging_fd: int | None = None, data: bytes | None = None,
    ) -> PendingChange:  # fmt: skip
        """Makes a closed file's content durable as the node's next commit; returns its row.

        Small content (data) goes in the row itself: one commit to wait for.
        Else the staging file is fsynced and moved into the journal (the
        caller's descriptor stays valid and now reads the sealed content).
        """
        if data is not None:
            try:
                with self._mutex:
                    return self._record(
                        node_id, parent_id, name, mine, base_revision, size, mtime_ns, held,
                        "", data,
                    )  # fmt: skip
            except sqlite3.OperationalError as exc:
                raise disk_error(exc) from exc
        assert staging is not None and staging_fd is not None
        name_on_disk = self._store.move_in(staging, staging_fd)
        try:
            with self._mutex:
                return self._record(
                    node_id, parent_id, name, mine, base_revision, size, mtime_ns, held,
                    name_on_disk, None,
                )  # fmt: skip
        except NotSynced:
            raise  # its row is committed: the content stays with it
        except sqlite3.OperationalError as exc:
            self._store.move_out(name_on_disk, staging)
            raise disk_error(exc) from exc
        except BaseException:
            self._store.move_out(name_on_disk, staging)
            raise

    def _record(
        self, node_id: int, parent_id: int, name: str, mine: bool, base_revision: int,
        size: int, mtime_ns: int, held: AttributeChange, name_on_disk: str, data: bytes | None,
    ) -> PendingChange:  # fmt: skip
        self._discarded.discard(node_id)
        # Only content (or the node's making) is replaced: a move or removal between
        # two closes stays where it is, in order. The newest of these rows is indexed.
        base = self._committed.get(node_id, base_revision)
        replaced = None
        rows = (self._by_node.latest.get(node_id), self._by_node.creates.get(node_id))
        last = max((r for r in rows if r), key=lambda r: r.seq, default=None)
        if last is not None:
            if last.is_create:
                base = NEW_FILE_REVISION
            elif last.seq in self._in_flight:
                base = AFTER_PREVIOUS
            else:
                base, replaced = last.base_revision, last
                held = last.held.then(held)  # attributes it carried stay set
        row = new_row(
            COMMIT, node_id, parent_id=parent_id, name=name, mine=mine, base_revision=base,
            size=size, mtime_ns=mtime_ns, held=held, content=name_on_disk, sets_mtime=True,
        )  # fmt: skip
        try:
            with self._store.transaction(durable=True):
                if replaced is not None:
                    self._store.delete(replaced.seq)
                sealed = self._store.insert(row, data)
        except NotSynced:
            # Committed, maybe not on disk: close(2) fails, and the row is sent all the same.
            self._by_node.latest[node_id] = sealed
            raise
        if replaced is not None:
            self._store.remove_content(replaced.content)
        self._by_node.latest[node_id] = sealed
        return sealed

    def record_create(
        self, *, node_id: int, parent_id: int, name: str, mode: int, owner: Ownership,
        mtime_ns: int, kind: Kind = Kind.FILE, target: str = "", later: bool = False,
    ) -> PendingChange:  # fmt: skip
        """A new empty file, folder or symbolic link made here with a reserved id: kept
        when this returns (see journal_store); later: when the next row is written, most
        often the file's content as it is closed (see write_made)."""
        with self._mutex:
            row = new_row(
                MAKES[kind], node_id, parent_id=parent_id, name=name, mtime_ns=mtime_ns,
                held=AttributeChange(mode, None, owner), target=target, sets_mtime=True,
            )  # fmt: skip
            if later:
                made = self._store.defer(row, node_id)
            else:
                with self._store.transaction():
                    made = self._store.insert(row)
                    self._store.ids.spend(node_id)
            self._by_node.set_create(node_id, made)
            return made

    def write_made(self) -> bool:
        """Writes the rows of files made here (record_create later) not written yet: at
        a close with nothing to seal, and before anyone waits for them to be sent.
        Whether there were any."""
        try:
            with self._mutex:
                return self._store.write_deferred()
        except sqlite3.OperationalError as exc:
            raise disk_error(exc) from exc

    def record_attributes(
        self, node_id: int, change: AttributeChange, mtime_ns: int | None, into_commit: bool
    ) -> None:
        """chmod/chown/utime of a node: kept when this returns (see journal_store). Joins the
        node's last row when that is one of these not on its way yet (untar sets three
        in a row), or, into_commit, its content closed and not on its way yet (untar sets
        them right after the close: they go with that commit)."""
        with self._mutex:
            last = self._store.newest_of(node_id)
            now = time.time_ns()
            # One statement each (its own transaction); the indexes follow in memory.
            before, before_mtime, _ = self._by_node.attributes.get(
                node_id, (AttributeChange(), None, 0)
            )
            if (
                into_commit
                and last
                and last.is_commit
                and last.seq not in self._in_flight
                and node_id not in self._by_node.attributes  # (shown over the commit's)
            ):
                held = last.held.then(change)
                mtime = mtime_ns if mtime_ns is not None else last.mtime_ns
                self._store.set_held(last.seq, held, mtime, now)
                updated = replaced(last, held=held, mtime_ns=mtime, created_ns=now)
                self._by_node.latest[node_id] = updated
                return
            if last and last.kind == ATTRIBUTES and last.seq not in self._in_flight:
                held = last.held.then(change)
                sets_mtime = mtime_ns is not None or last.sets_mtime
                mtime = mtime_ns if mtime_ns is not None else last.mtime_ns
                self._store.set_held(last.seq, held, mtime, now, sets_mtime)
            else:
                row = new_row(
                    ATTRIBUTES, node_id, mtime_ns=mtime_ns or 0, held=change, created_ns=now,
                    sets_mtime=mtime_ns is not None,
                )  # fmt: skip
                self._store.insert(row)
            mtime = mtime_ns if mtime_ns is not None else before_mtime
            self._by_node.attributes[node_id] = (before.then(change), mtime, now)

    def record_delete(self, node_id: int, parent_id: int, name: str, directory: bool) -> None:
        """unlink/rmdir of node_id's name made offline: kept when this returns."""
        flags = DIRECTORY if directory else 0
        row = new_row(DELETE, node_id, parent_id=parent_id, name=name, flags=flags)
        self._record_entry_change(row)

    def record_rename(
        self,
        node_id: int,
        parent_id: int,
        name: str,
        new_parent_id: int,
        new_name: str,
        no_replace: bool,
        exchange: bool = False,
    ) -> None:
        """rename(2) of node_id made offline (exchange: RENAME_EXCHANGE): kept when this
        returns."""
        flags = (NO_REPLACE if no_replace else 0) | (EXCHANGE if exchange else 0)
        row = new_row(
            RENAME, node_id, parent_id=parent_id, name=name, new_parent_id=new_parent_id,
            new_name=new_name, flags=flags,
        )  # fmt: skip
        self._record_entry_change(row)

    def record_link(self, node_id: int, new_parent_id: int, new_name: str, entry_id: int) -> None:
        """link(2) made offline (entry_id: a reserved id the new name shows until sent):
        kept when this returns."""
        with self._mutex:
            with self._store.transaction():
                row = new_row(
                    LINK, node_id, base_revision=entry_id, new_parent_id=new_parent_id,
                    new_name=new_name,
                )  # fmt: skip
                self._store.insert(row)
                self._store.ids.spend(entry_id)
            self._reindex(node_id)

    def record_xattr(self, node_id: int, name: str, value: bytes | None) -> None:
        """An extended attribute set (value) or removed (None) offline: kept when this
        returns (see journal_store)."""
        with self._mutex:
            self._store.insert(new_row(XATTR, node_id, new_name=name), value)
            self._by_node.xattrs.setdefault(node_id, {})[name] = value

    def _record_entry_change(self, row: tuple) -> None:
        with self._mutex:
            self._store.insert(row)  # one statement: its own transaction
            self._reindex(row[0])

    def saved_into(self, moved_id: int, node_id: int, revision: int) -> None:
        """A rename made the moved node's content node_id's revision (a save): what of the
        moved node is still to send (content, attributes, a later move or removal) is
        node_id's now, content on top of that revision."""
        with self._mutex:
            self._committed[node_id] = revision
            self._store.move_rows(moved_id, node_id, revision)
            self._reindex(moved_id, node_id)

    def applied(self, row: PendingChange) -> None:
        """metad applied an ATTRIBUTES, DELETE, RENAME or XATTR row (or it has nothing left
        to do)."""
        with self._mutex:
            self._in_flight.settled(row.seq)
            now_of = self._store.node_of(row.seq) or row.node_id  # (moved by a save?)
            self._store.delete(row.seq)
            self._reindex(*{row.node_id, now_of})

    def created(self, create: PendingChange) -> None:
        """metad made the file (a commit of it may follow)."""
        with self._mutex:
            self._in_flight.settled(create.seq)
            self._store.delete(create.seq)
            self._by_node.set_create(create.node_id, None)

    def cancel(self, node_id: int) -> bool:
        """Forgets a node made here that metad never got, with its content (deleted before
        it was sent: a temporary file costs the servers nothing). False if on its way, or
        if other changes hang on it (it was moved, maybe over another file, or held
        something): then its removal is sent after them."""
        with self._mutex:
            create = self._by_node.creates.get(node_id)
            rows = self._store.of_node(node_id)
            if create is None or any(
                r.seq in self._in_flight or r.kind in (RENAME, LINK) for r in rows
            ):
                return False
            if self._store.holds(node_id):
                return False
            for row in rows:
                self._drop(row)
            return True

    # --- node ids reserved to this user -------------------------------------

    def take_id(self) -> int | None:
        """A node id for a file made here, or None when the reserve is spent.

        Taken in memory; record_create marks it used on disk with its row.
        """
        with self._mutex:
            return self._store.ids.take()

    def ids_left(self) -> int:
        with self._mutex:
            return self._store.ids.left()

    def add_ids(self, first: int, count: int) -> None:
        with self._mutex:
            self._store.ids.add(first, count)

    def committed(self, commit: PendingChange, revision: int) -> None:
        """The commit landed as revision: the next one of the node goes on top of it."""
        with self._mutex:
            self._in_flight.settled(commit.seq)
            now_of = self._store.node_of(commit.seq)
            if now_of is not None and now_of != commit.node_id:
                # A save (saved_into) moved the row to the saved file while it was on
                # its way: that file's revision is made from this one already.
                self._store.delete(commit.seq)
                self._store.remove_content(commit.content)
                self._reindex(commit.node_id, now_of)
                return
            self._committed[commit.node_id] = revision
            # At most one later commit of the node waits (a newer close replaces it).
            later = self._by_node.latest.get(commit.node_id)
            if later is None or later.seq == commit.seq:
                self._by_node.latest.pop(commit.node_id, None)
                self._store.delete(commit.seq)
            elif later.base_revision != AFTER_PREVIOUS:
                self._store.delete(commit.seq)
            else:
                with self._store.transaction():
                    self._store.delete(commit.seq)
                    self._store.rebase(later.seq, revision)
                self._by_node.latest[commit.node_id] = replaced(later, base_revision=revision)
            self._store.remove_content(commit.content)

    def moved(self, commit: PendingChange, node_id: int, revision: int) -> None:
        """The commit landed elsewhere (a conflicted or recovered copy, node_id at revision):
        the node's later commits follow it there."""
        with self._mutex:
            self._in_flight.settled(commit.seq)
            self._committed[node_id] = revision
            with self._store.transaction():
                self._store.delete(commit.seq)
                self._store.move_rows(commit.node_id, node_id, revision, (COMMIT, ATTRIBUTES))
            self._store.remove_content(commit.content)
            self._reindex(commit.node_id, node_id)

    def deleting(self, node_id: int) -> None:
        """We are deleting the node: a refusal of its content as "not found" is ours."""
        with self._mutex:
            self._discarded.add(node_id)

    def undelete(self, node_id: int) -> None:
        """The delete failed (or the node stays reachable): its content counts again."""
        with self._mutex:
            self._discarded.discard(node_id)

    def discard(self, node_id: int) -> None:
        """We deleted the node (its last name, nothing open): its content and attributes
        not sent yet are dropped (the change that deleted it is kept)."""
        with self._mutex:
            self._discarded.add(node_id)
            for row in self._store.of_node(node_id):
                if row.seq not in self._in_flight and row.kind in (COMMIT, ATTRIBUTES, XATTR):
                    self._drop(row)

    def discarded(self, node_id: int) -> bool:
        return node_id in self._discarded

    def drop(self, commit: PendingChange) -> None:
        """Forgets a commit that has nothing left to do (its node was deleted here)."""
        with self._mutex:
            self._in_flight.settled(commit.seq)
            self._drop(commit)

    def _drop(self, commit: PendingChange) -> None:
        now_of = self._store.node_of(commit.seq) or commit.node_id  # (moved by a save?)
        self._store.delete(commit.seq)
        self._store.remove_content(commit.content)
        self._reindex(*{commit.node_id, now_of})

    # --- receipts ---------------------------------------------------------

    def receipts(self) -> list[tuple[bytes, int, bytes]]:
        with self._mutex:
            return self._store.receipts()

    def add_receipts(self, receipts: Iterable[tuple[bytes, int, bytes]]) -> None:
        with self._mutex:
            self._store.add_receipts(receipts)
