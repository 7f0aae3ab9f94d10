"""A batch's plain runs written set-based (metad/bulk.py) give exactly the one-by-one outcomes.

Each scenario runs the same operations, decoded as ApplyBatch decodes them,
on two stores of the same engine (a real SQLite file, a database of a
throwaway PostgreSQL cluster) with the same frozen clock: once through
Store.write_each (set-based where it can) and once one by one
(Transaction.attempt_each in one write). The outcomes, the journal, the
folder, each file's revisions and the usage must match, journal sequences
compared by their order (PostgreSQL's sequences skip the numbers of undone
rows). A second store on the same database plays another metad replica that
takes a name after the batch was built. Request ids (first sent and
retried), commits that set attributes, new files in a folder someone else
owns, in a folder deleted meanwhile, in a file, and with a condemned block
are covered too.

Edits of existing files (metad/bulk_edits.py) get the same comparison: kept
and new blocks, attributes, a stale base revision, a file someone else owns
(shared for writing, and not shared), one deleted or edited by another replica
after the batch was built, a quota crossed by an edit that grows a file (also
one that a later shrink would make up for), a condemned block, a file twice in
a run, request ids first sent and retried, and extended attributes kept with
the new revision. Each check of the set-based writers, left out, fails this
test, but three the database makes too (a name taken, a file twice in a run, a
request id seen before: its keys refuse the run, which then goes one by one).
Runs longer than a PostgreSQL transaction's SAVEPOINT budget, and the budget
itself, too. Adds ~8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import blake3
import pytest

from metad import bulk, operations, requests
from metad.models import Actor, NodeKind, Role
from metad.store import Store
from metad.transaction import Transaction
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from tests.pgserver import ENGINES

NOW = 1_700_000_000_000_000_000


@pytest.fixture(params=ENGINES)
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Any]]:
    """Two empty databases of one engine."""
    if request.param == "sqlite":
        yield [tmp_path / "a.db", tmp_path / "b.db"]
    else:
        cluster = request.getfixturevalue("pg_cluster")
        yield [cluster.create_database(), cluster.create_database()]


@contextlib.asynccontextmanager
async def opened(database: Any) -> AsyncIterator[Store]:
    store = await Store.open(database, clock=lambda: NOW)
    try:
        yield store
    finally:
        await store.close()


class Scenario:
    """Builds the operations of one user's batch as ApplyBatch decodes them."""

    def __init__(self, key: auth.AuthKey, user_id: int, first_id: int) -> None:
        self.key, self.user_id, self.next_id = key, user_id, first_id
        self.caller = operations.Caller(user_id, key, quiet_ns=0)
        self.ids: dict[str, int] = {}  # file names (unique across the scenarios) → ids
        self.watched: list[int] = []  # files outside the scenario's folder to compare too
        self.watched_folders: list[int] = []  # folders, likewise
        self.watched_xattrs: list[dict[str, bytes]] = []  # what AFTER hooks read

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def create(self, parent: int, name: str, node_id: int, mtime_ns: int = 0) -> Any:
        request = pb.CreateFileRequest(
            parent_id=parent, name=name, mode=0o644, node_id=node_id, mtime_ns=mtime_ns
        )
        return operations.create_file(self.caller, request).body

    def commit(
        self, node_id: int, data: bytes, base: int = 1, forged: bool = False, **attributes: Any
    ) -> Any:
        digest = blake3.blake3(data).digest()
        receipt = b"x" * 32 if forged else self.key.receipt(self.user_id, digest, len(data))
        block = pb.BlockRef(hash=digest, offset=0, size=len(data), receipt=receipt)
        request = pb.CommitRevisionRequest(
            node_id=node_id,
            base_revision=base,
            size=len(data),
            blocks=[block],
            device="pc",
            **attributes,
        )
        return operations.commit_revision(self.caller, request).body

    def once(self, body: Any, request_id: str) -> Any:
        """body applied once for request_id, as ApplyBatch wraps an operation that has one."""
        key = requests.RequestKey(self.user_id, request_id, requests.digest_of("x", b"y"))
        return requests.once(key, body)

    def file(self, parent: int, name: str, data: bytes) -> list[Any]:
        node_id = self.ids[name] = self.new_id()
        return [self.create(parent, name, node_id), self.commit(node_id, data)]

    def edit(self, name: str, data: bytes, base: int = 2, **how: Any) -> Any:
        return self.commit(self.ids[name], data, base, **how)


# A step: given the store's user, a folder and a Scenario, the batch's operations.
Step = Callable[[Scenario, int], list[Any]]


def happy(s: Scenario, folder: int) -> list[Any]:
    ops = [op for i in range(7) for op in s.file(folder, f"f{i}", b"x" * (i + 1))]
    node_id = s.new_id()  # one made "offline" an hour ago: the folder's times keep now
    hour_ago = NOW - 3600 * 10**9
    return [*ops, s.create(folder, "old", node_id, hour_ago), s.commit(node_id, b"o")]


def taken_before(s: Scenario, folder: int) -> list[Any]:
    """'taken' exists; 'late' is taken by another replica once the batch is built."""
    return [op for name in ("a", "taken", "b") for op in s.file(folder, name, b"data")]


def duplicate_names(s: Scenario, folder: int) -> list[Any]:
    return [op for name in ("a", "same", "same", "b") for op in s.file(folder, name, b"12")]


def quota_crossed(s: Scenario, folder: int) -> list[Any]:
    # The quota leaves 25 bytes: 10 and 10 fit, the third 10 does not, the 3 after it does.
    sizes = (10, 10, 10, 3, 10)
    return [op for i, size in enumerate(sizes) for op in s.file(folder, f"q{i}", b"q" * size)]


def stale(s: Scenario, folder: int) -> list[Any]:
    node_id = s.new_id()
    stale = [s.create(folder, "stale", node_id), s.commit(node_id, b"2", base=2)]
    return [*s.file(folder, "a", b"1"), *stale, *s.file(folder, "c", b"3")]


def unproven(s: Scenario, folder: int) -> list[Any]:
    node_id = s.new_id()
    forged = [s.create(folder, "forged", node_id), s.commit(node_id, b"2", forged=True)]
    return [*s.file(folder, "a", b"1"), *forged, *s.file(folder, "c", b"3")]


def not_reserved(s: Scenario, folder: int) -> list[Any]:
    nobodys = [s.create(folder, "nobody's", 10**9), s.commit(10**9, b"2")]
    return [*s.file(folder, "a", b"1"), *nobodys, *s.file(folder, "c", b"3")]


def attributes_and_ids(s: Scenario, folder: int) -> list[Any]:
    ops = []
    for index in range(4):
        node_id = s.new_id()
        commit = s.commit(node_id, b"a" * index + b"!", mode=0o100600, atime_ns=5, uid=7, gid=8)
        ops += [
            s.once(s.create(folder, f"a{index}", node_id), f"c{index}-{folder}"),
            s.once(commit, f"e{index}-{folder}"),
        ]
    return ops


RETRIED: list[Any] = []


def retried(s: Scenario, folder: int) -> list[Any]:
    """attributes_and_ids' batch sent again, once whole, once with new files after it."""
    RETRIED[:] = attributes_and_ids(s, folder)
    return RETRIED


def retried_again(s: Scenario, folder: int) -> list[Any]:
    return [*RETRIED, *s.file(folder, "n1", b"1"), *s.file(folder, "n2", b"2")]


def mixed(s: Scenario, folder: int) -> list[Any]:
    lone = s.new_id()
    mkdir = operations.make_directory(
        s.caller, pb.MakeDirectoryRequest(parent_id=folder, name="sub", mode=0o755)
    ).body
    return [
        *s.file(folder, "a", b"1"),
        *s.file(folder, "b", b"2"),
        mkdir,
        s.create(folder, "lone", lone),  # a create without its commit
        *s.file(folder, "c", b"3"),
        *s.file(folder, "d", b"4"),
        s.commit(lone, b"late"),
    ]


def new_in_their_folder(s: Scenario, folder: int) -> list[Any]:
    """New files in a folder another user shares for writing (they count for them)."""
    return [op for name in ("n0", "n1") for op in s.file(s.ids["their folder"], name, b"n")]


def new_in_deleted_folder(s: Scenario, folder: int) -> list[Any]:
    """The folder 'gone' is deleted through another replica once the batch is built."""
    return [op for name in ("g0", "g1") for op in s.file(s.ids["gone"], name, b"g")]


def new_condemned(s: Scenario, folder: int) -> list[Any]:
    """The block of k1 is condemned once the batch is built."""
    data = [b"k0", b"doomed new", b"k2"]
    return [op for i in range(3) for op in s.file(folder, f"k{i}", data[i])]


def new_in_a_file(s: Scenario, folder: int) -> list[Any]:
    """New files whose 'folder' is a file (new_condemned's k0)."""
    return [op for name in ("z0", "z1") for op in s.file(s.ids["k0"], name, b"z")]


# Edits of existing files: each scenario's files are made by its SETUP batch first.
def _files(prefix: str, count: int, size: int = 4) -> Callable[[Scenario, int], list[Any]]:
    def setup(s: Scenario, folder: int) -> list[Any]:
        return [op for i in range(count) for op in s.file(folder, f"{prefix}{i}", b"s" * size)]

    return setup


def edits_happy(s: Scenario, folder: int) -> list[Any]:
    return [
        s.edit("e0", b"grown to more bytes"),
        s.edit("e1", b"ss"),  # shrunk
        s.edit("e2", b"ssss", forged=True),  # the same block again: kept, no receipt needed
        s.edit("e3", b"with attributes", mode=0o100600, atime_ns=5, uid=7, gid=8),
        s.edit("e4", b"4", mtime_ns=NOW - 10**9),
    ]


# Each of these has one thing the set-based writer must refuse, so that any of its
# checks left out changes the outcome (a file twice in a run and a retried id are
# refused by the database's keys too).
def edits_stale(s: Scenario, folder: int) -> list[Any]:
    return [s.edit("s0", b"fine"), s.edit("s1", b"stale", base=7), s.edit("s2", b"fine too")]


def edits_unproven(s: Scenario, folder: int) -> list[Any]:
    forged = s.edit("u1", b"a new block without its receipt", forged=True)
    return [s.edit("u0", b"fine"), forged, s.edit("u2", b"fine too")]


def edits_condemned(s: Scenario, folder: int) -> list[Any]:
    """The block of c1 is condemned once the batch is built."""
    return [s.edit("c0", b"fine"), s.edit("c1", b"doomed block"), s.edit("c2", b"fine too")]


def edits_twice(s: Scenario, folder: int) -> list[Any]:
    """The same file twice in one run, the second on the first's revision."""
    return [s.edit("t0", b"one"), s.edit("t0", b"two", base=3), s.edit("t1", b"fine")]


def edits_placeholder(s: Scenario, folder: int) -> list[Any]:
    """p0 is still at the empty revision 1 a lone create left (dropped by its commit)."""
    return [s.edit("p0", b"first", base=1), s.edit("p1", b"fine")]


def edits_deleted(s: Scenario, folder: int) -> list[Any]:
    """d1 is deleted through another replica once the batch is built."""
    return [s.edit(f"d{i}", f"edit {i}".encode()) for i in range(3)]


def edits_raced(s: Scenario, folder: int) -> list[Any]:
    """x1 is edited through another replica once the batch is built."""
    return [s.edit(f"x{i}", f"edit {i}".encode()) for i in range(3)]


def edits_foreign(s: Scenario, folder: int) -> list[Any]:
    """Another user's files: one shared for writing (the commit counts for them), one not."""
    return [s.edit("mine0", b"mine"), s.edit("theirs", b"theirs!"), s.edit("hidden", b"no")]


def edits_quota(s: Scenario, folder: int) -> list[Any]:
    # The quota leaves 25 bytes: +10 fits, +30 does not (though all four add up to
    # +24, which would), -20 and +4 do.
    return [
        s.edit("q0", b"q" * 40),
        s.edit("q1", b"q" * 60),
        s.edit("q2", b"q" * 10),
        s.edit("q3", b"q" * 34),
    ]


def edits_with_ids(s: Scenario, folder: int) -> list[Any]:
    ops = [s.once(s.edit(f"i{i}", b"i" * (i + 9)), f"edit-i{i}") for i in range(3)]
    RETRIED[:] = ops
    return ops


def edits_retried(s: Scenario, folder: int) -> list[Any]:
    """edits_with_ids' batch sent again, then with new edits after it."""
    return [*RETRIED, s.edit("i0", b"again", base=3), s.edit("i1", b"again", base=3)]


def edits_with_xattrs(s: Scenario, folder: int) -> list[Any]:
    """a0 has an extended attribute: its new revision keeps it (restoring that revision
    later brings it back)."""
    return [s.edit("a0", b"new"), s.edit("a1", b"new too")]


def big_runs(s: Scenario, folder: int) -> list[Any]:
    """Runs longer than a PostgreSQL transaction's SAVEPOINT budget (store.BULK_CHUNKS):
    130 new files, the 100th's name taken by the 10th, then 130 edits of b0..b129 (made
    by its SETUP), the 90th stale."""
    names = [f"n{i}" for i in range(130)]
    names[99] = names[9]
    new = [op for i, name in enumerate(names) for op in s.file(folder, name, b"%d" % i)]
    edits = [s.edit(f"b{i}", b"e%d" % i, base=7 if i == 89 else 2) for i in range(130)]
    return new + edits


STEPS: list[Step] = [
    happy,
    taken_before,
    duplicate_names,
    quota_crossed,
    stale,
    unproven,
    not_reserved,
    mixed,
    attributes_and_ids,
    retried,
    retried_again,
    new_in_their_folder,
    new_in_deleted_folder,
    new_condemned,
    new_in_a_file,
    edits_happy,
    edits_stale,
    edits_unproven,
    edits_condemned,
    edits_twice,
    edits_placeholder,
    edits_deleted,
    edits_raced,
    edits_foreign,
    edits_quota,
    edits_with_ids,
    edits_retried,
    edits_with_xattrs,
    big_runs,
]

SETUP: dict[Step, Step] = {
    edits_happy: _files("e", 5),
    edits_stale: _files("s", 3),
    edits_unproven: _files("u", 3),
    edits_condemned: _files("c", 3),
    edits_twice: _files("t", 2),
    edits_deleted: _files("d", 3),
    edits_raced: _files("x", 3),
    edits_foreign: _files("mine", 1),
    edits_quota: _files("q", 4, size=30),
    edits_with_ids: _files("i", 3),
    big_runs: _files("b", 130),
    edits_with_xattrs: _files("a", 2),
}


def _lone_create(s: Scenario, folder: int) -> list[Any]:
    """p0 only created (its revision 1 is the empty placeholder); p1 committed once."""
    s.ids["p0"] = s.new_id()
    return [s.create(folder, "p0", s.ids["p0"]), *s.file(folder, "p1", b"1")]


SETUP[edits_placeholder] = _lone_create

# What another user or replica does before the batch is built (BEFORE) and after
# (MEANWHILE): (the store, another store on its database, the scenario, the folder).
Hook = Callable[[Store, Store, Scenario, int], Awaitable[None]]


async def _foreign_files(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    """Another user's files 'theirs' (shared for writing) and 'hidden', and 'their folder'
    (shared for writing)."""
    if "theirs" in s.ids:
        return
    other_id = (await replica.create_user("other", "hash", quota_bytes=0, admin=False)).id
    other_root = (await replica.get_root(other_id)).id
    first, _ = await replica.reserve_node_ids(other_id, 10)
    other = Scenario(s.key, other_id, first)
    made = [*other.file(other_root, "theirs", b"t"), *other.file(other_root, "hidden", b"h")]
    assert all(error is None for _, error in await replica.write_each(made))
    shared = pb.MakeDirectoryRequest(parent_id=other_root, name="their folder", mode=0o755)
    their_folder = await replica.write(operations.make_directory(other.caller, shared).body)
    for node_id in (other.ids["theirs"], their_folder.id):
        await replica.share(Actor(other_id, "pc"), node_id, "bulk", Role.WRITE)
    s.ids.update(theirs=other.ids["theirs"], hidden=other.ids["hidden"])
    s.ids["their folder"] = their_folder.id
    s.watched.append(other.ids["theirs"])
    s.watched_folders.append(their_folder.id)


async def _folder_to_delete(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    made = pb.MakeDirectoryRequest(parent_id=folder, name="gone", mode=0o755)
    s.ids["gone"] = (await replica.write(operations.make_directory(s.caller, made).body)).id


async def _delete_folder(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    request = pb.DeleteRequest(parent_id=folder, name="gone", directory=True)
    await replica.write(operations.delete(s.caller, request).body)


async def _condemn(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    doomed = [blake3.blake3(data).digest() for data in (b"doomed block", b"doomed new")]
    assert await replica.condemn_blocks(doomed)


async def _delete(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    gone = operations.delete(s.caller, pb.DeleteRequest(parent_id=folder, name="d1"))
    await replica.write(gone.body)


async def _edit(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    await replica.write(s.edit("x1", b"edited elsewhere"))


async def _set_xattr(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    request = pb.SetXattrRequest(node_id=s.ids["a0"], name="user.k", value=b"kept")
    await replica.write(operations.set_xattr(s.caller, request).body)


async def _restore_with_xattrs(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    request = pb.SetXattrRequest(node_id=s.ids["a0"], name="user.k", value=b"changed")
    await store.write(operations.set_xattr(s.caller, request).body)
    await store.restore_revision(Actor(s.user_id, "pc"), s.ids["a0"], 3)
    s.watched_xattrs.append(await store.get_xattrs(s.user_id, s.ids["a0"]))


BEFORE: dict[Step, Hook] = {
    edits_with_xattrs: _set_xattr,
    new_in_their_folder: _foreign_files,
    new_in_deleted_folder: _folder_to_delete,
    edits_foreign: _foreign_files,
}
# After the batch ran: what reads what it wrote.
AFTER: dict[Step, Hook] = {edits_with_xattrs: _restore_with_xattrs}
MEANWHILE: dict[Step, Hook] = {
    new_in_deleted_folder: _delete_folder,
    new_condemned: _condemn,
    edits_condemned: _condemn,
    edits_deleted: _delete,
    edits_raced: _edit,
}


async def _outcomes_and_state(
    store: Store, replica: Store, key: auth.AuthKey, set_based: bool
) -> list[Any]:
    """replica: another store on the same database (another metad), which takes a name
    after the batch was built and before it runs."""
    user = (await store.create_user("bulk", "hash", quota_bytes=0, admin=False)).id
    root = (await store.get_root(user)).id
    first, _ = await store.reserve_node_ids(user, 600)
    scenario = Scenario(key, user, first)
    seen: list[Any] = []
    all_outcomes: list[Any] = []
    for step in STEPS:
        folder_change = operations.make_directory(
            scenario.caller, pb.MakeDirectoryRequest(parent_id=root, name=step.__name__, mode=0o755)
        )
        folder = (await store.write(folder_change.body)).id
        if step in SETUP:
            made = SETUP[step](scenario, folder)
            done = await store.write_each(made)
            assert all(error is None for _, error in done), done
        if step in BEFORE:
            await BEFORE[step](store, replica, scenario, folder)
        if step is taken_before:
            await replica.write(scenario.create(folder, "taken", scenario.new_id()))
        used = (await store.get_usage(user)).used_bytes
        await store.set_quota(user, used + 25 if step in (quota_crossed, edits_quota) else 0)
        bodies = step(scenario, folder)
        if step is taken_before:  # by another replica, once the batch was built
            await replica.write(scenario.create(folder, "late", scenario.new_id()))
            late = scenario.new_id()
            bodies += [scenario.create(folder, "late", late), scenario.commit(late, b"l")]
        if step in MEANWHILE:
            await MEANWHILE[step](store, replica, scenario, folder)
        if set_based:
            outcomes = await store.write_each(bodies)
        else:
            outcomes = await store.write(lambda tx, bodies=bodies: tx.attempt_each(bodies))
        outcomes = [(value, None if e is None else (type(e), str(e))) for value, e in outcomes]
        if step in AFTER:
            await AFTER[step](store, replica, scenario, folder)
        seen.append(outcomes)
        all_outcomes += outcomes
        listed = await store.list_directory(user, folder)
        seen.append(listed.entries)
        seen.append(await store.stat(user, folder))
        for entry in listed.entries:
            if entry.kind is NodeKind.FILE:
                seen.append(await store.list_revisions(user, entry.id))
        seen.append(await store.get_usage(user))
    for node_id in scenario.watched:
        seen.append(await store.list_revisions(user, node_id))
        seen.append(await store.stat(user, node_id))
    for node_id in scenario.watched_folders:
        seen.append((await store.list_directory(user, node_id)).entries)
    seen.append(scenario.watched_xattrs)
    seen.append((await store.read_changes(user, 0, 10_000)).events)
    seen.append(all_outcomes)  # last, for the test to see which errors came
    return seen


def _by_rank(seen: list[Any]) -> list[Any]:
    """seen with every journal sequence replaced by its rank among them (gaps do not count)."""
    sequences: set[int] = set()

    def collect(value: Any) -> None:
        if isinstance(value, list | tuple):
            for each in value:
                collect(each)
        elif hasattr(value, "change_sequence"):
            sequences.add(value.change_sequence)
        elif hasattr(value, "sequence") and hasattr(value, "kind"):
            sequences.add(value.sequence)

    collect(seen)
    rank = {sequence: index for index, sequence in enumerate(sorted(sequences))}

    def renumber(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return type(value)(renumber(each) for each in value)
        if hasattr(value, "change_sequence"):
            return replace(value, change_sequence=rank[value.change_sequence])
        if hasattr(value, "sequence") and hasattr(value, "kind"):
            return replace(value, sequence=rank[value.sequence])
        return value

    return renumber(seen)


def test_set_based_runs_give_the_one_by_one_outcomes_and_state(
    two_databases: list[Any], tmp_path: Path
) -> None:
    key = auth.load_or_create_key(tmp_path / "auth.key")

    async def both() -> tuple[list[Any], list[Any]]:
        async with opened(two_databases[0]) as store, opened(two_databases[0]) as replica:
            set_based = await _outcomes_and_state(store, replica, key, set_based=True)
        async with opened(two_databases[1]) as store, opened(two_databases[1]) as replica:
            one_by_one = await _outcomes_and_state(store, replica, key, set_based=False)
        return set_based, one_by_one

    set_based, one_by_one = asyncio.run(asyncio.wait_for(both(), timeout=60))
    assert _by_rank(set_based) == _by_rank(one_by_one)
    # The scenarios do reach the hard cases.
    refused = {error[0].__name__ for _, error in set_based[-1] if error is not None}
    assert {"AlreadyExists", "QuotaExceeded", "StaleRevision", "UnprovenBlocks"} <= refused
    assert "NodeIdNotReserved" in refused
    assert {"NotFound", "BlocksCondemned"} <= refused


class _CountingSavepoints:
    """A connection that counts the SAVEPOINTs (subtransactions) it is asked for."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.savepoints = conn, 0

    def execute(self, sql: str, params: Any = (), /) -> Any:
        self.savepoints += sql.startswith("SAVEPOINT")
        return self.conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_bounded_transaction_takes_at_most_its_savepoints_and_returns_a_first_part(
    database: Any, tmp_path: Path
) -> None:
    """A run that goes one by one stops where the budget would run out; what it returns
    is done, the rest is left for the next transaction (Store.write_each)."""
    key = auth.load_or_create_key(tmp_path / "auth.key")

    async def run() -> tuple[int, list[Any], int]:
        async with opened(database) as store:
            user = (await store.create_user("bulk", "hash", quota_bytes=0, admin=False)).id
            root = (await store.get_root(user)).id
            first, _ = await store.reserve_node_ids(user, 200)
            s = Scenario(key, user, first)
            # Two runs that go one by one (a name taken), a folder made between them.
            names = [f"f{i}" for i in range(4)] + [f"g{i}" for i in range(50)]
            names[2] = names[0]
            names[6] = names[5]
            files = [op for name in names for op in s.file(root, name, b"x")]
            made = pb.MakeDirectoryRequest(parent_id=root, name="d", mode=0o755)
            mkdir = operations.make_directory(s.caller, made).body
            bodies = [*files[:8], mkdir, *files[8:]]
            counting: list[_CountingSavepoints] = []

            def body(tx: Transaction) -> list[Any]:
                counting.append(_CountingSavepoints(tx.conn))
                return bulk.attempt_each(Transaction(counting[0], tx.now_ns), bodies, 20)

            outcomes = await store.write(body)
            listed = len((await store.list_directory(user, root)).entries)
            return counting[0].savepoints, outcomes, listed

    savepoints, outcomes, listed = asyncio.run(asyncio.wait_for(run(), timeout=30))
    assert savepoints <= 20
    assert 9 < len(outcomes) < 109
    errors = [type(error).__name__ for _, error in outcomes if error is not None]
    assert errors[:2] == ["AlreadyExists", "NotFound"]  # f0 again, and its commit
    assert listed == len({value.id for value, error in outcomes if error is None})
