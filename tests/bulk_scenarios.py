"""The comparison of metad/bulk.py's set-based writers with the one-by-one path.

A Plan names steps (each builds one user's batch as ApplyBatch decodes it) and
what happens around them: setup batches, and what another user or replica does
before the batch is built, meanwhile (built, not yet run) and after it ran.
`compared` runs a plan twice, set-based and one by one, each on a database of
its own (with a second store on it playing another metad replica), and asserts
that outcomes, journal and state came out the same.

Used by test_metad_bulk.py (new files) and test_metad_bulk_edits.py (edits).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import blake3
import pytest

from metad import operations, requests
from metad.models import Actor, NodeKind, Role
from metad.store import Store
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb

NOW = 1_700_000_000_000_000_000


def two_databases(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> list[Any]:
    """Two empty databases of engine (one of tests.pgserver.ENGINES)."""
    if engine == "sqlite":
        return [tmp_path / "a.db", tmp_path / "b.db"]
    cluster = request.getfixturevalue("pg_cluster")
    return [cluster.create_database(), cluster.create_database()]


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
        self.watched_xattrs: list[dict[str, bytes]] = []  # what `after` hooks read

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


# A step: given a Scenario and a folder made for the step, the batch's operations.
Step = Callable[[Scenario, int], list[Any]]
# What another user or replica does around a step's batch: (the store, another store
# on its database, the scenario, the step's folder).
Hook = Callable[[Store, Store, Scenario, int], Awaitable[None]]


@dataclass
class Plan:
    steps: list[Step]
    setup: dict[Step, Step] = field(default_factory=dict)  # a batch written first
    before: dict[Step, Hook] = field(default_factory=dict)  # before the batch is built
    meanwhile: dict[Step, Hook] = field(default_factory=dict)  # built, not yet run
    after: dict[Step, Hook] = field(default_factory=dict)  # once it ran: what reads it
    tight_quota: frozenset[Step] = frozenset()  # run with 25 bytes of quota left


def files(prefix: str, count: int, size: int = 4) -> Step:
    """A setup step (Plan.setup): count files named prefix0, prefix1, … of size bytes."""

    def setup(s: Scenario, folder: int) -> list[Any]:
        return [op for i in range(count) for op in s.file(folder, f"{prefix}{i}", b"s" * size)]

    return setup


async def foreign_files(store: Store, replica: Store, s: Scenario, folder: int) -> None:
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


async def condemn(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    """The blocks of b"doomed block" and b"doomed new", condemned (steps use them)."""
    doomed = [blake3.blake3(data).digest() for data in (b"doomed block", b"doomed new")]
    assert await replica.condemn_blocks(doomed)


async def _outcomes_and_state(
    store: Store, replica: Store, key: auth.AuthKey, plan: Plan, set_based: bool
) -> list[Any]:
    """Runs plan on store, set-based or one by one; what came out and what is stored.

    replica: another store on the same database (another metad), for the hooks.
    """
    user = (await store.create_user("bulk", "hash", quota_bytes=0, admin=False)).id
    root = (await store.get_root(user)).id
    first, _ = await store.reserve_node_ids(user, 600)
    scenario = Scenario(key, user, first)
    seen: list[Any] = []
    all_outcomes: list[Any] = []
    for step in plan.steps:
        folder_change = operations.make_directory(
            scenario.caller, pb.MakeDirectoryRequest(parent_id=root, name=step.__name__, mode=0o755)
        )
        folder = (await store.write(folder_change.body)).id
        if step in plan.setup:
            made = plan.setup[step](scenario, folder)
            done = await store.write_each(made)
            assert all(error is None for _, error in done), done
        if step in plan.before:
            await plan.before[step](store, replica, scenario, folder)
        used = (await store.get_usage(user)).used_bytes
        await store.set_quota(user, used + 25 if step in plan.tight_quota else 0)
        bodies = step(scenario, folder)
        if step in plan.meanwhile:
            await plan.meanwhile[step](store, replica, scenario, folder)
        if set_based:
            outcomes = await store.write_each(bodies)
        else:
            outcomes = await store.write(lambda tx, bodies=bodies: tx.attempt_each(bodies))
        outcomes = [(value, None if e is None else (type(e), str(e))) for value, e in outcomes]
        if step in plan.after:
            await plan.after[step](store, replica, scenario, folder)
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


def compared(plan: Plan, engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> set[str]:
    """Runs plan set-based and one by one, each on a database of engine of its own, and
    asserts both came out the same; returns the names of the errors they came to."""
    key = auth.load_or_create_key(tmp_path / "auth.key")
    databases = two_databases(engine, request, tmp_path)

    async def both() -> tuple[list[Any], list[Any]]:
        async with opened(databases[0]) as store, opened(databases[0]) as replica:
            set_based = await _outcomes_and_state(store, replica, key, plan, set_based=True)
        async with opened(databases[1]) as store, opened(databases[1]) as replica:
            one_by_one = await _outcomes_and_state(store, replica, key, plan, set_based=False)
        return set_based, one_by_one

    set_based, one_by_one = asyncio.run(asyncio.wait_for(both(), timeout=60))
    assert _by_rank(set_based) == _by_rank(one_by_one)
    return {error[0].__name__ for _, error in set_based[-1] if error is not None}


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
