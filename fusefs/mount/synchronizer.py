"""Sends the write-back journal to the servers: uploads, then commits in batches.

A background task takes the oldest pending commits (one per file at a time,
many files per batch), cuts each sealed content file into blocks, uploads
the blocks blockd lacks over several streams at once (uploads.py: an upload
cut short resumes with the blocks already stored), and commits the batch
with one ApplyBatch call (one transaction on metad).

Nothing the journal holds is dropped: a commit refused because another
device committed first becomes a conflicted copy beside the file; one whose
file was deleted elsewhere, or whose share was taken away or made read-only,
lands in the user's own drive (next to where it was, or in RECOVERED_FOLDER);
a full quota keeps it pending and says so in status(). Servers that cannot
be reached pause the work until they are back (Reachability).

What landed is told to the layer above through `landed` (a channel of
values), never by calling into it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, MetadataClient
from fusefs.models import (
    BatchOutcome,
    BlockRef,
    Node,
    Removed,
    Renamed,
)
from fusefs.mount.batch_requests import make_node, request_for
from fusefs.mount.journal import Journal
from fusefs.mount.journal_rows import (
    ATTRIBUTES,
    DELETE,
    LINK,
    RENAME,
    XATTR,
    PendingChange,
)
from fusefs.mount.landings import EntrySettled, Landed
from fusefs.mount.reachability import Reachability
from fusefs.mount.sealed import Sealed, blocks_of, keep_in_cache
from fusefs.mount.uploads import SentBytes, Uploads, in_threads
from protos import names

log = logging.getLogger(__name__)

BATCH_FILES = 500
# A burst of changes (an untar, a build) goes in few batches rather than one per change:
# sending waits until none came for QUIET_SECONDS, or the first has waited
# GATHER_SECONDS, or a batch is full; at once when someone waits (fsync, drive sync).
QUIET_SECONDS = 0.05
GATHER_SECONDS = 0.5
BATCH_BYTES = 256 * 1024**2
RETRY_SECONDS = 10.0  # a full quota, or a collection holding our blocks: try again later
RECOVERED_FOLDER = "Recovered changes"
DRAIN_PATIENCE_SECONDS = 30.0
IDS_LOW = 5_000  # node ids in reserve below which more are asked for
IDS_BATCH = 20_000
IDS_CHECK_SECONDS = 1.0


def local_stamp(when: float) -> str:
    """A local time as names carry it: '2026-11-22 093015' (no colons)."""
    return time.strftime("%Y-%m-%d %H%M%S", time.localtime(when))


def conflict_name(name: str, device: str, when: float) -> str:
    """'report (conflicted copy from laptop 2026-11-22 093015).txt', ≤ 255 bytes."""
    return names.tagged(name, f"conflicted copy from {device} {local_stamp(when)}")


@dataclass
class Status:
    """This device's pending work, for `drive status` and `drive sync`."""

    files: int = 0
    bytes: int = 0
    sent_bytes: int = 0  # uploaded or committed since the mount started
    online: bool = True
    rate: float = 0.0  # bytes/s sent lately (uploads.SentBytes)
    problems: dict[int, str] = field(default_factory=dict)  # node id -> why it waits
    recovered: list[str] = field(default_factory=list)  # where refused content landed

    def as_json(self) -> bytes:
        """As `drive sync` and `drive status` read it (an attribute of the mount's root)."""
        return json.dumps(
            {
                "files": self.files,
                "bytes": self.bytes,
                "sent_bytes": self.sent_bytes,
                "rate": round(self.rate),
                "online": self.online,
                "problems": sorted(self.problems.values()),
                "recovered": self.recovered,
            }
        ).encode()


class Synchronizer:
    def __init__(
        self,
        meta: MetadataClient,
        blocks: BlockClient,
        journal: Journal,
        reachability: Reachability,
        cache: BlockCache,
        limiter: trio.CapacityLimiter,
    ) -> None:
        self._meta = meta
        self._cache = cache
        self._blocks = blocks
        self._journal = journal
        self._reachability = reachability
        self._work = trio.Event()
        self._since: float | None = None  # when the first change not taken yet came
        self._latest = 0.0  # when the last change came
        self._hurry = trio.Event()  # someone waits: stop gathering
        self._waiting = 0  # callers of flush and drain: send without gathering
        self._progress = trio.Event()
        self._save_recorded: trio.Event | None = None  # a save sent, set once recorded
        # Unbounded: a batch's landings are queued without a checkpoint between them,
        # and so recorded together.
        self._landed_send, self.landed = trio.open_memory_channel[Landed | EntrySettled](math.inf)
        self._sent = SentBytes()
        self._thread = in_threads(limiter)
        self._uploads = Uploads(blocks, journal, cache, self._thread, self._sent)
        self.problems: dict[int, str] = {}
        self.recovered: list[str] = []
        blocks.grants.add_receipts(journal.receipts())

    def wake(self) -> None:
        """A change was journaled."""
        self._latest = trio.current_time()
        if self._since is None:
            self._since = self._latest
        self._work.set()

    @property
    def online(self) -> bool:
        return self._reachability.up

    def went_away(self) -> None:
        """A call found the servers unreachable: work offline until the probe finds them."""
        self._reachability.failed()

    def status(self) -> Status:
        files, size = self._journal.totals()
        return Status(
            files, size, self._sent.total, self._reachability.up, self._sent.rate(),
            dict(self.problems), list(self.recovered),
        )  # fmt: skip

    @property
    def sent_bytes(self) -> int:
        return self._sent.total

    # --- waiting for it ---------------------------------------------------

    async def flush(self, node_id: int) -> None:
        """Returns once the node's journaled changes are on the drive, or the servers are away."""
        with self._hurried():
            while self._journal.pending_for(node_id) and self._reachability.up:
                await self._next_progress()

    async def drain(self, patience: float = DRAIN_PATIENCE_SECONDS) -> None:
        """Returns once the whole journal is committed, the servers are away, or nothing
        landed for patience seconds (e.g. a full quota): what is left stays journaled."""
        last, since = self._journal.totals(), trio.current_time()
        with self._hurried():
            while last[0] and self._reachability.up:
                await self._next_progress()
                now = self._journal.totals()
                if now != last:
                    last, since = now, trio.current_time()
                elif trio.current_time() - since > patience:
                    return

    @contextlib.contextmanager
    def _hurried(self) -> Iterator[None]:
        """Someone waits for what is journaled: it goes without gathering more."""
        self._waiting += 1
        self._work.set()
        self._hurry.set()
        try:
            yield
        finally:
            self._waiting -= 1

    async def _next_progress(self) -> None:
        with trio.move_on_after(1.0):  # also notices the servers going away
            await self._progress.wait()

    def _moved_on(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    def recorded(self) -> None:
        """The layer above recorded landings (their rows are done): whoever waits for
        them (fsync, drive sync) looks again now, not at the next batch; and so does run,
        which may have found a file's next commit held back by the one that landed (take)
        and gone to sleep: nothing else would wake it (at unmount, nothing else comes)."""
        self._work.set()
        self._moved_on()

    # --- the work -----------------------------------------------------------

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            if not self._reachability.up:
                await self._reachability.wait_until_up()
            await self._gather()
            self._since = None
            batch = self._journal.take(BATCH_FILES, BATCH_BYTES)
            if not batch:
                self._moved_on()
                await self._work.wait()
                self._work = trio.Event()
                continue
            try:
                await self._send(batch)
            except errors.Unavailable as exc:
                log.info("sending %d change(s) paused: %s", len(batch), exc)
                self._reachability.failed()
                for commit in batch:
                    self._journal.put_back(commit)
            except errors.DriveError as exc:
                log.error("sending %d change(s) failed, will retry: %s", len(batch), exc)
                for commit in batch:
                    self._journal.put_back(commit)
                await trio.sleep(RETRY_SECONDS)
            if self._save_recorded is not None:
                # take stopped after a save: the saved file's later rows are its own only
                # once the save is recorded (_saved).
                await self._save_recorded.wait()
                self._save_recorded = None
            self._moved_on()

    async def _gather(self) -> None:
        """Waits while changes keep coming, so that a burst goes as one batch (see
        QUIET_SECONDS)."""
        # Looked at every QUIET_SECONDS at most, not at each change (a burst is thousands).
        while not self._waiting and self._since is not None:
            until = min(self._latest + QUIET_SECONDS, self._since + GATHER_SECONDS)
            if until <= trio.current_time() or self._journal.totals()[0] >= BATCH_FILES:
                return
            self._hurry = trio.Event()
            with trio.move_on_at(until):
                await self._hurry.wait()

    async def _send(self, batch: list[PendingChange]) -> None:
        commits = [c for c in batch if c.is_commit]
        sources = self._journal.contents(commits)
        refs = await self._thread(lambda: {seq: blocks_of(c) for seq, c in sources.items()})
        contents = [(sources[c.seq], refs[c.seq]) for c in commits]
        await self._uploads.send_and_keep(contents)
        values = {
            row.seq: self._journal.xattr_value(row)
            for row in batch
            if row.kind == XATTR and row.inline
        }
        requests = [request_for(row, refs.get(row.seq, ()), values.get(row.seq)) for row in batch]
        outcomes = await self._thread(self._meta.apply_batch, requests)
        remade: set[int] = set()  # nodes made again elsewhere: what followed them is retried
        for row, outcome in zip(batch, outcomes, strict=True):
            if row.is_create:
                await self._settle_create(row, outcome, remade)
            elif row.kind in (ATTRIBUTES, XATTR):
                await self._settle_attributes(row, outcome, remade)
            elif row.kind in (DELETE, RENAME, LINK):
                await self._settle_entry(row, outcome)
            else:
                await self._settle(row, sources[row.seq], refs[row.seq], outcome, remade)

    async def _settle_create(
        self, create: PendingChange, outcome: Node | errors.DriveError, remade: set[int]
    ) -> None:
        """What becomes of a node made here, by metad's answer: made, or made elsewhere."""
        if isinstance(outcome, errors.Unavailable):
            self._journal.put_back(create)
            raise outcome
        why = ""
        if not isinstance(outcome, Node):
            remade.add(create.node_id)  # made below by a call of its own, after the batch
        if isinstance(outcome, errors.NotFound) and create.parent_id in remade:
            # Its folder was made again under another name just now: it goes there.
            outcome = await self._make(create, create.parent_id, create.name)
        elif isinstance(outcome, errors.AlreadyExists):
            # Another device took the name meanwhile: ours goes beside it.
            why = "name taken"
            name = conflict_name(create.name, self._meta.device, time.time())
            outcome = await self._make(create, create.parent_id, name)
        elif isinstance(outcome, errors.NotFound | errors.PermissionDenied):
            why = str(outcome)
            folder = await self._recovered_folder()
            outcome = await self._make(create, folder, create.name)
        elif isinstance(outcome, errors.DriveError):
            log.error("%r not made yet, will retry: %s", create.name, outcome)
            self._journal.put_back(create)
            await trio.sleep(RETRY_SECONDS)
            return
        if why:
            log.warning("%r made as %r (%s)", create.name, outcome.name, why)
            self.recovered.append(f"{outcome.name} ({why})")
        done = partial(self._journal.created, create)
        self._landed_send.send_nowait(Landed(create.node_id, outcome, (), why, create, done=done))

    async def _make(self, create: PendingChange, parent_id: int, name: str) -> Node:
        """Makes the node of a create row at parent_id/name, or beside it if that is taken."""
        try:
            return await self._thread(make_node, self._meta, create, parent_id, name)
        except errors.AlreadyExists:
            name = conflict_name(name, self._meta.device, time.time())
            return await self._thread(make_node, self._meta, create, parent_id, name)

    async def _settle_entry(self, row: PendingChange, outcome: BatchOutcome | errors.DriveError):
        """A removal, rename or link made offline: applied, put beside a name taken
        meanwhile, or refused (the layer above looks at the folders again; nothing is
        dropped)."""
        if isinstance(outcome, errors.Unavailable):
            self._journal.put_back(row)
            raise outcome
        if isinstance(outcome, errors.AlreadyExists) and row.kind == RENAME:
            outcome = await self._beside(
                row, "moved",
                lambda name: self._meta.rename(
                    row.parent_id, row.name, row.new_parent_id, name, True, expect_id=row.node_id
                ),
            )  # fmt: skip
        elif isinstance(outcome, errors.AlreadyExists) and row.kind == LINK:
            outcome = await self._beside(
                row, "linked", lambda name: self._meta.link(row.node_id, row.new_parent_id, name)
            )
        done = partial(self._journal.applied, row)
        if isinstance(outcome, Renamed) and outcome.saved_from:
            self._save_recorded = trio.Event()
            done = partial(self._saved, row, outcome, self._save_recorded)
        if isinstance(outcome, errors.DriveError):
            refused = str(outcome) or "refused"
            self._landed_send.send_nowait(EntrySettled(row, None, refused, done=done))
        else:
            assert isinstance(outcome, Renamed | Removed | Node)
            self._landed_send.send_nowait(EntrySettled(row, outcome, done=done))

    def _saved(self, row: PendingChange, saved: Renamed, recorded: trio.Event) -> None:
        """A save landed and the layer above recorded it: what of the moved node waits
        (content, a later move or removal) is the saved file's from now on.

        Not before: until the outcome is recorded, the mount shows the moved node under
        the name, and its rows answer for it (metad has no such node any more, so an
        open(2) that found none would fail with ENOENT). Nothing is taken meanwhile (run).
        """
        self._journal.saved_into(saved.saved_from, saved.node.id, saved.node.revision)
        self._journal.applied(row)
        recorded.set()

    async def _beside(
        self, row: PendingChange, done: str, call: Callable[[str], BatchOutcome]
    ) -> BatchOutcome | errors.DriveError:
        """A rename or link onto a name another device took meanwhile, made again beside
        it (call: with the new name); what that made, or why not."""
        name = conflict_name(row.new_name, self._meta.device, time.time())
        try:
            outcome = await self._thread(call, name)
        except errors.Unavailable:
            self._journal.put_back(row)
            raise
        except errors.DriveError as exc:
            return exc
        log.warning("%r %s as %r (name taken)", row.new_name, done, name)
        return outcome

    async def _settle_attributes(
        self, row: PendingChange, outcome: Node | errors.DriveError, remade: set[int]
    ) -> None:
        """chmod/chown/utime or an extended attribute: set, or moot (the node is gone);
        retried when it may yet be."""
        if isinstance(outcome, errors.Unavailable):
            self._journal.put_back(row)
            raise outcome
        if isinstance(outcome, errors.NotFound) and (
            row.node_id in remade or self._journal.creating(row.node_id)
        ):
            self._journal.put_back(row)  # its node is being made again
            return
        if isinstance(outcome, errors.DriveError):
            what = f"attribute {row.new_name!r}" if row.kind == XATTR else "attributes"
            log.warning("%s of node %d not set: %s", what, row.node_id, outcome)
            self._journal.applied(row)
            return
        done = partial(self._journal.applied, row)
        self._landed_send.send_nowait(Landed(row.node_id, outcome, (), attributes=True, done=done))

    async def keep_ids(self) -> None:
        """Runs until cancelled: keeps a reserve of node ids for files made here (offline too)."""
        while True:
            if self._reachability.up and self._journal.ids_left() < IDS_LOW:
                try:
                    first, count = await self._thread(self._meta.reserve_node_ids, IDS_BATCH)
                except errors.DriveError as exc:
                    log.info("node ids not reserved yet: %s", exc)
                else:
                    self._journal.add_ids(first, count)
                    continue
            await trio.sleep(IDS_CHECK_SECONDS)

    async def _settle(
        self,
        commit: PendingChange,
        content: Sealed,
        blocks: list[BlockRef],
        outcome: Node | errors.DriveError,
        remade: set[int],
    ) -> None:
        """What becomes of one commit of a batch, by metad's answer."""
        if isinstance(outcome, Node):  # (in the cache already: see _send)
            self.problems.pop(commit.node_id, None)
            self._sent.add(commit.size)
            done = partial(self._journal.committed, commit, outcome.revision)
            self._landed_send.send_nowait(Landed(commit.node_id, outcome, tuple(blocks), done=done))
            return
        if isinstance(outcome, errors.NotFound) and self._journal.discarded(commit.node_id):
            self._journal.drop(commit)  # we deleted it ourselves meanwhile
            return
        if isinstance(outcome, errors.NotFound) and (
            commit.node_id in remade or self._journal.creating(commit.node_id)
        ):
            self._journal.put_back(commit)  # its file is being made again (see _settle_create)
            return
        if isinstance(outcome, errors.QuotaExceeded | errors.BlocksCondemned):
            self.problems[commit.node_id] = str(outcome)
            log.warning("%r waits: %s", commit.name, outcome)
            self._journal.put_back(commit)
            await trio.sleep(RETRY_SECONDS)
            return
        if isinstance(outcome, errors.UnprovenBlocks):
            await self._uploads.send([(content, blocks)], everything=True)
            self._journal.put_back(commit)
            return
        if isinstance(outcome, errors.Unavailable):
            self._journal.put_back(commit)
            raise outcome
        await self._land_copy(commit, content, blocks, outcome)

    # --- content that cannot land where it was ------------------------------

    async def _land_copy(
        self,
        commit: PendingChange,
        content: Sealed,
        blocks: list[BlockRef],
        refusal: errors.DriveError,
    ) -> None:
        """Commits the content as a new file, so nothing is lost: a conflicted copy beside
        the file, or (its place gone or not ours to write) a copy in our own drive."""
        parent_id, name = await self._copy_place(commit, refusal)
        copy_name = conflict_name(name, self._meta.device, time.time())
        mode = commit.held.mode if commit.held.mode is not None else 0o644
        copy = await self._thread(self._meta.create_file, parent_id, copy_name, mode)
        landed = await self._thread(
            self._meta.commit_revision,
            copy.id, copy.revision, commit.size, commit.mtime_ns, blocks, commit.held,
        )  # fmt: skip
        await self._thread(keep_in_cache, self._cache, content, blocks)
        self._journal.moved(commit, landed.id, landed.revision)
        why = str(refusal)
        if isinstance(refusal, errors.StaleRevision):
            log.info("conflict on %r: local edits kept as %r", name, copy_name)
        else:
            log.warning("%r could not be saved (%s): kept as %r", commit.name, why, copy_name)
            self.recovered.append(f"{copy_name} ({why})")
        self._landed_send.send_nowait(Landed(commit.node_id, landed, tuple(blocks), why))

    async def _copy_place(
        self, commit: PendingChange, refusal: errors.DriveError
    ) -> tuple[int, str]:
        """Where a copy goes: beside the file if we may write there, else RECOVERED_FOLDER."""
        if isinstance(refusal, errors.StaleRevision):
            current = await self._thread(self._meta.stat, commit.node_id)
            if current.writable:
                return current.parent_id, current.name
        elif commit.mine and not isinstance(refusal, errors.PermissionDenied):
            try:
                parent = await self._thread(self._meta.stat, commit.parent_id)
            except errors.NotFound:
                pass
            else:
                if parent.writable:
                    return parent.id, commit.name
        return await self._recovered_folder(), commit.name

    async def _recovered_folder(self) -> int:
        root = await self._thread(self._meta.root)
        try:
            folder = await self._thread(self._meta.lookup, root.id, RECOVERED_FOLDER)
        except errors.NotFound:
            folder = await self._thread(self._meta.make_directory, root.id, RECOVERED_FOLDER, 0o755)
        return folder.id
