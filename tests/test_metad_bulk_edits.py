"""Edits of existing files written set-based (metad/bulk_edits.py) give the one-by-one outcomes.

The comparison of test_metad_bulk.py (harness: tests/bulk_scenarios.py) over: kept
and new blocks, attributes, a stale base revision, a file someone else owns
(shared for writing, and not shared), one deleted or edited by another replica
after the batch was built, a quota crossed by an edit that grows a file (also
one that a later shrink would make up for), a condemned block, a file twice in
a run, request ids first sent and retried, and extended attributes kept with
the new revision. Each check of the set-based writers, left out, fails this
test or test_metad_bulk.py's, but three the database makes too (a name taken, a
file twice in a run, a request id seen before: its keys refuse the run, which
then goes one by one).
Runs longer than a PostgreSQL transaction's SAVEPOINT budget, too. Adds ~4 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metad import operations
from metad.models import Actor
from metad.store import Store
from protos.drive.v1 import metadata_pb2 as pb
from tests.bulk_scenarios import (
    NOW,
    Plan,
    Scenario,
    compared,
    condemn,
    files,
    foreign_files,
)
from tests.pgserver import ENGINES


# Each scenario's files are made by its setup batch first (PLAN.setup).
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


RETRIED: list[Any] = []


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
    by its setup), the 90th stale."""
    names = [f"n{i}" for i in range(130)]
    names[99] = names[9]
    new = [op for i, name in enumerate(names) for op in s.file(folder, name, b"%d" % i)]
    edits = [s.edit(f"b{i}", b"e%d" % i, base=7 if i == 89 else 2) for i in range(130)]
    return new + edits


def _lone_create(s: Scenario, folder: int) -> list[Any]:
    """p0 only created (its revision 1 is the empty placeholder); p1 committed once."""
    s.ids["p0"] = s.new_id()
    return [s.create(folder, "p0", s.ids["p0"]), *s.file(folder, "p1", b"1")]


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


PLAN = Plan(
    steps=[
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
    ],
    setup={
        edits_happy: files("e", 5),
        edits_stale: files("s", 3),
        edits_unproven: files("u", 3),
        edits_condemned: files("c", 3),
        edits_twice: files("t", 2),
        edits_placeholder: _lone_create,
        edits_deleted: files("d", 3),
        edits_raced: files("x", 3),
        edits_foreign: files("mine", 1),
        edits_quota: files("q", 4, size=30),
        edits_with_ids: files("i", 3),
        big_runs: files("b", 130),
        edits_with_xattrs: files("a", 2),
    },
    before={edits_with_xattrs: _set_xattr, edits_foreign: foreign_files},
    meanwhile={edits_condemned: condemn, edits_deleted: _delete, edits_raced: _edit},
    after={edits_with_xattrs: _restore_with_xattrs},
    tight_quota=frozenset({edits_quota}),
)


@pytest.mark.parametrize("engine", ENGINES)
def test_set_based_edits_give_the_one_by_one_outcomes_and_state(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    errors = compared(PLAN, engine, request, tmp_path)
    # The scenarios do reach the hard cases.
    assert {"QuotaExceeded", "StaleRevision", "UnprovenBlocks", "BlocksCondemned"} <= errors
    assert "NotFound" in errors
