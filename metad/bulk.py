"""Set-based writes for the plain runs of a batch: many new files in a few statements.

Owns finding a batch's plain runs (runs of new files, here; runs of edits of
existing files, written by bulk_edits.py), running each in a SAVEPOINT of its
own with the one-by-one path as its fallback, and the new files' writes.

A batch that uploads files sends, for each, a create with an id reserved to
the caller and the commit of its first content. Run one by one that is ~19
statements per file; this module checks a run of such pairs with one query per
kind of check, all sent before any answer is read (plain.py: on PostgreSQL one
wait for the lot, not one each), and writes it with one multi-row INSERT per
table (nodes, revisions, their blocks, the journal), one UPDATE of the new
nodes' journal stamps and one of each folder's times; request ids (every
operation of a mount's batch has one) are looked up in one query and recorded
in one INSERT, and a commit may set attributes. The owner's usage follows by
the triggers on nodes, once per file as for any write (on PostgreSQL a trigger
per statement instead measured no less CPU per file, 0.18 ms either way: a
run's 30 versions of the user's row cost little).

It writes only what it has proven will succeed: any check that fails (a name
taken, within the run or by anyone before, a quota the run would cross, a
stale base revision, an unproven or condemned block, a folder one may not
write, a foreign folder, a request id seen before) or any error at all
sends the whole run, undone, to the one-by-one path
(Transaction.attempt_each), which then gives every operation its own
outcome. So the outcomes are those of the one-by-one path
by construction, and the set-based writes only have to equal its final
state (the test suite compares both).

Journal order: the run's journal rows are one INSERT with its rows in the
operations' order, in the same write transaction (under the engine's one
writer lock, see schema.py), so their sequences are drawn in that order,
each pair's CREATED before its EDITED, as one by one.

Must not: run or commit a transaction (the engine does), know gRPC, or
decide what a change means (namespace.py and edits.py do; this writes the
same rows for the cases it accepts).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from metad import bulk_edits, edits, plain, requests, rules
from metad.models import ChangeKind, Node, NodeKind
from metad.plain import PlainCommit, PlainCreate, chunks, marks, unwrapped
from metad.sql import Sql
from metad.transaction import Transaction, Write

log = logging.getLogger(__name__)

# A shorter run goes the one-by-one way: the set-based checks cost a few queries.
MIN_PAIRS = 2
MIN_EDITS = 2

Outcome = tuple[Any, Exception | None]
# A set-based writer: the results of a run's operations in order, or None when a
# check fails (nothing written then).
Writer = Callable[[Transaction], "list[Node] | None"]


@dataclass(frozen=True)
class Pair:
    """A new file of a run: its create and its commit, each with its request id if any."""

    create: PlainCreate
    commit: PlainCommit
    keys: tuple[requests.RequestKey | None, requests.RequestKey | None]
    bodies: tuple[Write[Any], Write[Any]]  # as sent: what the one-by-one path runs


def _pair_at(bodies: Sequence[Write[Any]], index: int) -> Pair | None:
    """The create at index and the commit after it, if they make one new file."""
    if index + 1 >= len(bodies):
        return None
    (create, create_key), (commit, commit_key) = map(unwrapped, bodies[index : index + 2])
    if not (isinstance(create, PlainCreate) and isinstance(commit, PlainCommit)):
        return None
    if create.node_id != commit.node_id or create.actor.user_id != commit.actor.user_id:
        return None
    return Pair(create, commit, (create_key, commit_key), (bodies[index], bodies[index + 1]))


def _edits_at(bodies: Sequence[Write[Any]], index: int) -> list[PlainCommit]:
    """The commits from index on that no create comes with (edits of existing files)."""
    found: list[PlainCommit] = []
    for body in bodies[index:]:
        commit, _ = unwrapped(body)
        if not isinstance(commit, PlainCommit):
            break
        found.append(commit)
    return found


def attempt_each(
    tx: Transaction, bodies: Sequence[Write[Any]], savepoints: int | None = None
) -> list[Outcome]:
    """Transaction.attempt_each(bodies), with each run of plain pairs (new files) and of
    plain commits (edits) written set-based.

    Outcomes and final state are those of the one-by-one path, in order.
    savepoints: at most this many SAVEPOINTs (subtransactions) in all (at least 3);
    then only the outcomes of a first part of bodies come back (at least one), the rest
    untouched for the caller's next transaction. A set-based run takes one, and
    one by one takes one per change when any fails: Store.write_each lets a
    transaction of many plain changes stay under PostgreSQL's 64 cached
    subtransactions even when a run goes one by one (engine.Driver says why).
    """
    if savepoints is not None and savepoints < 3:
        raise ValueError("a run that goes one by one needs 3 SAVEPOINTs to make progress")
    budget = _Budget(savepoints)
    outcomes: list[Outcome] = []
    others: list[Write[Any]] = []
    index = 0
    while index < len(bodies):
        run: list[Pair] = []
        while (pair := _pair_at(bodies, index + 2 * len(run))) is not None:
            run.append(pair)
        if len(run) >= MIN_PAIRS:
            sent = [body for pair in run for body in pair.bodies]
            write: Writer = lambda tx, run=run: _write(tx, run)  # noqa: E731
        else:
            commits = _edits_at(bodies, index)
            if len(commits) < MIN_EDITS:
                others.append(bodies[index])
                index += 1
                continue
            sent = list(bodies[index : index + len(commits)])
            keys = [unwrapped(body)[1] for body in sent]
            write = lambda tx, c=commits, k=keys: bulk_edits.write(tx, c, k)  # noqa: E731
        done = budget.each(tx, others)
        outcomes += done
        if len(done) < len(others):
            return outcomes
        others = []
        if not budget.take(1):
            return outcomes
        written = _set_based(tx, sent, write)
        done = budget.each(tx, sent) if written is None else written
        outcomes += done
        if len(done) < len(sent):
            return outcomes
        index += len(sent)
    return outcomes + budget.each(tx, others)


class _Budget:
    """The SAVEPOINTs a transaction may still take (None: no bound)."""

    def __init__(self, savepoints: int | None) -> None:
        self.left = savepoints

    def take(self, count: int) -> bool:
        if self.left is None:
            return True
        if count > self.left:
            return False
        self.left -= count
        return True

    def each(self, tx: Transaction, bodies: Sequence[Write[Any]]) -> list[Outcome]:
        """tx.attempt_each of as many of bodies as the budget allows at worst (one
        SAVEPOINT for all, then one each); their outcomes."""
        if self.left is not None:
            bodies = bodies[: max(self.left - 1, 0)]
        if not bodies:
            return []
        done = tx.attempt_each(bodies)
        if self.left is not None:
            failed = any(error is not None for _, error in done)
            self.left -= len(bodies) if len(bodies) < 2 else 1 + len(bodies) * failed
        return done


def _set_based(tx: Transaction, bodies: list[Write[Any]], write: Writer) -> list[Outcome] | None:
    """The run's outcomes if it went set-based (every check passed), else None with
    nothing of it written.

    Request ids: if none was applied before (the writers ask), each is recorded
    with its operation's result, as requests.Once would.
    """
    last_sequence, concerns = tx.last_sequence, set(tx.concerns)
    tx.conn.execute("SAVEPOINT plain")
    try:
        written = write(tx)
        if written is not None:
            records = [
                requests.record_row(key, result, tx.now_ns)
                for (_, key), result in zip(map(unwrapped, bodies), written, strict=True)
                if key is not None
            ]
            if records:
                plain.insert_rows(tx.conn, requests.RECORD, records)
        tx.conn.flush()
    except Exception as error:
        if not tx.conn.in_transaction:
            raise
        log.debug("a plain run goes one by one: %s", error)
        written = None
    if written is None:
        tx.conn.execute("ROLLBACK TO plain")
        tx.conn.execute("RELEASE plain")
        tx.last_sequence, tx.concerns = last_sequence, concerns
        return None
    tx.conn.execute("RELEASE plain")
    return [(node, None) for node in written]


def _write(tx: Transaction, run: list[Pair]) -> list[Node] | None:
    """Checks then writes a run of new files; the results of its operations in order, or
    None when a check fails (nothing written then)."""
    conn = tx.conn
    user_id = run[0].create.actor.user_id
    if any(pair.create.actor.user_id != user_id for pair in run):
        return None
    places = [(pair.create.parent_id, pair.create.name) for pair in run]
    if len(set(places)) != len(places):
        return None  # a name twice in the run: the second is refused, one by one
    if any(pair.commit.base_revision != 1 for pair in run):
        return None
    if not all(block.vouched for pair in run for block in pair.commit.blocks):
        return None  # unvouched blocks need possession's queries, one by one
    ids = [pair.create.node_id for pair in run]
    hashes = {block.hash for pair in run for block in pair.commit.blocks}
    # Every question goes out before any answer is read: one wait for all.
    applied = plain.ask_applied(conn, user_id, [key for pair in run for key in pair.keys if key])
    folders = plain.ask_own_live(conn, user_id, [parent_id for parent_id, _ in places])
    taken = _ask_names_taken(conn, places)
    reserved = _ask_reserved(conn, user_id, ids)
    room = plain.ask_room(conn, user_id)
    probe = conn.ahead(edits.ANY_CONDEMNED)
    if applied():
        return None  # a retry (or an id used twice): the request log answers, one by one
    parents = folders()
    if any(
        parent_id not in parents or parents[parent_id].kind is not NodeKind.DIRECTORY
        for parent_id, _ in places
    ):
        return None  # a folder gone, not a folder, or someone else's (counts for them)
    if taken() or not reserved():
        return None
    if not room([sum(pair.commit.size for pair in run)]):
        return None
    if edits.condemned_among(conn, hashes, probe):
        return None
    return _insert(tx, run, parents)


def _ask_names_taken(conn: Sql, places: list[tuple[int, str]]) -> Callable[[], bool]:
    """Whether any (folder, name) is taken by a live node or a further name."""
    by_parent: dict[int, list[str]] = {}
    for parent_id, name in places:
        by_parent.setdefault(parent_id, []).append(name)
    found = [
        conn.ahead(
            f"SELECT 1 FROM nodes WHERE parent_id = ? AND name IN ({marks(chunk)})"
            f" AND deleted_ns IS NULL UNION ALL SELECT 1 FROM links WHERE parent_id = ?"
            f" AND name IN ({marks(chunk)}) LIMIT 1",
            (parent_id, *chunk, parent_id, *chunk),
        )
        for parent_id, names in by_parent.items()
        for chunk in chunks(names)
    ]
    return lambda: any(cursor.fetchall() for cursor in found)


def _ask_reserved(conn: Sql, user_id: int, ids: list[int]) -> Callable[[], bool]:
    """Whether every id is reserved to user_id and no node has it yet (reservations.claim's
    rule: the range starting last at or below the id is the user's and reaches it)."""
    low, high = min(ids), max(ids)
    ranges_found = conn.ahead(
        "SELECT first_id, last_id, user_id FROM node_id_reservations"
        " WHERE first_id <= ? AND first_id >= (SELECT COALESCE(MAX(first_id), 0)"
        " FROM node_id_reservations WHERE first_id <= ?) ORDER BY first_id",
        (high, low),
    )
    used = [
        conn.ahead(f"SELECT 1 FROM nodes WHERE id IN ({marks(chunk)}) LIMIT 1", chunk)
        for chunk in chunks(ids)
    ]

    def answer() -> bool:
        ranges = ranges_found.fetchall()
        firsts = [row[0] for row in ranges]
        for node_id in ids:
            at = bisect.bisect_right(firsts, node_id) - 1
            if at < 0 or ranges[at][2] != user_id or node_id > ranges[at][1]:
                return False
        return not any(cursor.fetchall() for cursor in used)

    return answer


def _insert(tx: Transaction, run: list[Pair], parents: dict[int, Node]) -> list[Node]:
    """Writes what the run's creates and commits leave behind, and returns their results.

    One by one, a create writes revision 1 (empty) and its commit drops it for
    revision 2: here only revision 2 is written, as the commit leaves it.
    """
    conn, now = tx.conn, tx.now_ns
    created: list[Node] = []
    edited: list[Node] = []  # as each commit's attributes leave it (edits.with_attributes)
    nodes, revisions, blocks, journal = [], [], [], []
    for pair in run:
        create, commit = pair.create, pair.commit
        parent = parents[create.parent_id]
        mtime = create.mtime_ns or now
        born = min(create.mtime_ns, now)
        mode = rules.permission_bits(create.mode)
        made = Node(
            id=create.node_id,
            owner_id=parent.owner_id,
            parent_id=parent.id,
            name=create.name,
            kind=NodeKind.FILE,
            mode=mode,
            size=0,
            mtime_ns=mtime,
            ctime_ns=born or now,
            revision=1,
            symlink_target=None,
            change_sequence=0,
            uid=create.owner.uid,
            gid=create.owner.gid,
            rdev=0,
            atime_ns=mtime,
            role=parent.role,
        )
        created.append(made)
        edited_mtime = commit.mtime_ns or now
        final = edits.with_attributes(made, commit.attributes)
        edited.append(final)
        nodes.append(
            (
                made.id,
                made.owner_id,
                made.parent_id,
                made.name,
                NodeKind.FILE.value,
                final.mode,
                edited_mtime,
                now,
                2,
                commit.size,
                None,
                final.uid,
                final.gid,
                0,
                final.atime_ns,
            )
        )
        revisions.append(
            (
                made.id,
                2,
                commit.size,
                edited_mtime,
                final.mode,
                commit.actor.user_id,
                commit.actor.device,
                now,
            )
        )
        blocks += [
            (made.id, 2, index, block.hash, block.offset, block.size)
            for index, block in enumerate(commit.blocks)
        ]
        for kind, number, actor in (
            (ChangeKind.CREATED, 1, create.actor),
            (ChangeKind.EDITED, 2, commit.actor),
        ):
            journal.append(
                (
                    made.owner_id,
                    kind.value,
                    made.id,
                    NodeKind.FILE.value,
                    made.parent_id,
                    made.name,
                    None,
                    None,
                    number,
                    actor.user_id,
                    actor.device,
                    now,
                    None,
                )
            )
    plain.insert_rows(
        conn,
        "INSERT INTO nodes (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
        " revision, size, symlink_target, uid, gid, rdev, atime_ns)",
        nodes,
    )
    plain.insert_rows(
        conn,
        "INSERT INTO revisions (node_id, number, size, mtime_ns, mode, author_id, device,"
        " created_ns)",
        revisions,
    )
    if blocks:
        plain.insert_rows(
            conn,
            "INSERT INTO revision_blocks (node_id, revision, block_index, hash, file_offset, size)",
            blocks,
        )
    sequences_of = plain.journal(tx, journal)
    _touch_folders(tx, run)
    sequences = sequences_of()
    results: list[Node] = []
    for made, final, pair in zip(created, edited, run, strict=True):
        commit = pair.commit
        results.append(
            replace(made, change_sequence=sequences[(made.id, ChangeKind.CREATED.value)])
        )
        results.append(
            replace(
                final,
                revision=2,
                size=commit.size,
                mtime_ns=commit.mtime_ns or now,
                ctime_ns=now,
                change_sequence=sequences[(made.id, ChangeKind.EDITED.value)],
            )
        )
    return results


def _touch_folders(tx: Transaction, run: list[Pair]) -> None:
    """Each folder's times as the run's creates leave them (Transaction.touch_directory
    in turn): now if any create was made now, else the latest of their times if later."""
    latest: dict[int, int] = {}
    for create in (pair.create for pair in run):
        born = min(create.mtime_ns, tx.now_ns)
        previous = latest.get(create.parent_id)
        latest[create.parent_id] = 0 if previous == 0 or not born else max(previous or 0, born)
    for parent_id, born in latest.items():
        tx.touch_directory(parent_id, born)
