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
retried) and commits that set attributes are covered too. Adds ~6 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import blake3
import pytest

from metad import operations, requests
from metad.models import NodeKind
from metad.store import Store
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
        node_id = self.new_id()
        return [self.create(parent, name, node_id), self.commit(node_id, data)]


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
]


async def _outcomes_and_state(
    store: Store, replica: Store, key: auth.AuthKey, set_based: bool
) -> list[Any]:
    """replica: another store on the same database (another metad), which takes a name
    after the batch was built and before it runs."""
    user = (await store.create_user("bulk", "hash", quota_bytes=0, admin=False)).id
    root = (await store.get_root(user)).id
    first, _ = await store.reserve_node_ids(user, 200)
    scenario = Scenario(key, user, first)
    seen: list[Any] = []
    all_outcomes: list[Any] = []
    for step in STEPS:
        folder_change = operations.make_directory(
            scenario.caller, pb.MakeDirectoryRequest(parent_id=root, name=step.__name__, mode=0o755)
        )
        folder = (await store.write(folder_change.body)).id
        if step is taken_before:
            await replica.write(scenario.create(folder, "taken", scenario.new_id()))
        used = (await store.get_usage(user)).used_bytes
        await store.set_quota(user, used + 25 if step is quota_crossed else 0)
        bodies = step(scenario, folder)
        if step is taken_before:  # by another replica, once the batch was built
            await replica.write(scenario.create(folder, "late", scenario.new_id()))
            late = scenario.new_id()
            bodies += [scenario.create(folder, "late", late), scenario.commit(late, b"l")]
        if set_based:
            outcomes = await store.write_each(bodies)
        else:
            outcomes = await store.write(lambda tx, bodies=bodies: tx.attempt_each(bodies))
        outcomes = [(value, None if e is None else (type(e), str(e))) for value, e in outcomes]
        seen.append(outcomes)
        all_outcomes += outcomes
        listed = await store.list_directory(user, folder)
        seen.append(listed.entries)
        seen.append(await store.stat(user, folder))
        for entry in listed.entries:
            if entry.kind is NodeKind.FILE:
                seen.append(await store.list_revisions(user, entry.id))
        seen.append(await store.get_usage(user))
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
