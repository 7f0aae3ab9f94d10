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

Edits of existing files get the same comparison in test_metad_bulk_edits.py
(with runs longer than a PostgreSQL transaction's SAVEPOINT budget); the
harness is tests/bulk_scenarios.py. The budget itself is tested here.
Adds ~4 s.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from metad import bulk, operations
from metad.store import Store
from metad.transaction import Transaction
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from tests.bulk_scenarios import (
    NOW,
    Plan,
    Scenario,
    compared,
    condemn,
    foreign_files,
    opened,
)
from tests.pgserver import ENGINES


def happy(s: Scenario, folder: int) -> list[Any]:
    ops = [op for i in range(7) for op in s.file(folder, f"f{i}", b"x" * (i + 1))]
    node_id = s.new_id()  # one made "offline" an hour ago: the folder's times keep now
    hour_ago = NOW - 3600 * 10**9
    return [*ops, s.create(folder, "old", node_id, hour_ago), s.commit(node_id, b"o")]


def taken_before(s: Scenario, folder: int) -> list[Any]:
    """'taken' exists; 'late' is taken by another replica once the batch is built."""
    ops = [op for name in ("a", "taken", "b") for op in s.file(folder, name, b"data")]
    s.ids["late, elsewhere"] = s.new_id()
    late = s.new_id()
    return [*ops, s.create(folder, "late", late), s.commit(late, b"l")]


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


# What another replica does around a step's batch (see bulk_scenarios.Plan).
async def _take_name(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    await replica.write(s.create(folder, "taken", s.new_id()))


async def _take_late(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    await replica.write(s.create(folder, "late", s.ids["late, elsewhere"]))


async def _folder_to_delete(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    made = pb.MakeDirectoryRequest(parent_id=folder, name="gone", mode=0o755)
    s.ids["gone"] = (await replica.write(operations.make_directory(s.caller, made).body)).id


async def _delete_folder(store: Store, replica: Store, s: Scenario, folder: int) -> None:
    request = pb.DeleteRequest(parent_id=folder, name="gone", directory=True)
    await replica.write(operations.delete(s.caller, request).body)


PLAN = Plan(
    steps=[
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
    ],
    before={
        taken_before: _take_name,
        new_in_their_folder: foreign_files,
        new_in_deleted_folder: _folder_to_delete,
    },
    meanwhile={
        taken_before: _take_late,
        new_in_deleted_folder: _delete_folder,
        new_condemned: condemn,
    },
    tight_quota=frozenset({quota_crossed}),
)


@pytest.mark.parametrize("engine", ENGINES)
def test_set_based_runs_give_the_one_by_one_outcomes_and_state(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    errors = compared(PLAN, engine, request, tmp_path)
    # The scenarios do reach the hard cases.
    assert {"AlreadyExists", "QuotaExceeded", "StaleRevision", "UnprovenBlocks"} <= errors
    assert "NodeIdNotReserved" in errors
    assert {"NotFound", "BlocksCondemned"} <= errors


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
