"""metad below gRPC: store transactions, usage, group commit, the journal, rules, ids.

Runs the store through asyncio.run on each engine (the `database` fixture: a
real SQLite file, a database of a throwaway PostgreSQL cluster) where a test
is not about SQLite's file itself; the gRPC surface is tested in
test_metad_tree.py, test_metad_errors.py and their neighbours; the schema and its
upgrades in test_metad_schema.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import psycopg
import pytest

from metad import namespace, rules
from metad.engine import MAX_GROUP_COMMIT
from metad.errors import (
    AlreadyExists,
    BlocksCondemned,
    InvalidArgument,
    InvalidBlocks,
    InvalidName,
    NameTooLong,
    NotFound,
)
from metad.models import BlockRef, ChangeKind, NodeKind
from metad.store import FIRST_USER_ID
from metad.transaction import Transaction
from tests.metad_stores import OWNER, block, open_store, run

# -- usage ----------------------------------------------------------------------------------


def _sum_of_live_files(db: Path | str) -> int:
    """The usage a quota is about, added up the slow way from the nodes themselves."""
    query = (
        "SELECT COALESCE(SUM(size), 0) FROM nodes"
        " WHERE owner_id = 1 AND kind = 'file' AND deleted_ns IS NULL"
    )
    if isinstance(db, Path):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return conn.execute(query).fetchone()[0]
    with psycopg.connect(db) as conn:
        return int(conn.execute(query).fetchone()[0])


def test_usage_is_the_sum_of_live_files_through_every_kind_of_change(
    database: Path | str,
) -> None:
    db = database

    async def scenario() -> None:
        async with open_store(db, quiet_ns=0) as store:

            async def usage_is(expected: int) -> None:
                assert (await store.get_usage(FIRST_USER_ID)).used_bytes == expected
                assert _sum_of_live_files(db) == expected

            root = await store.get_root(FIRST_USER_ID)
            folder = await store.make_directory(OWNER, root.id, "d", 0o755)
            a = await store.create_file(OWNER, folder.id, "a", 0o644)
            b = await store.create_file(OWNER, root.id, "b", 0o644)
            await store.commit_revision(OWNER, a.id, 1, 600, 0, [block(0, 600)])
            await store.commit_revision(OWNER, b.id, 1, 50, 0, [block(0, 50, 2)])
            await usage_is(650)
            await store.commit_revision(OWNER, a.id, 2, 200, 0, [block(0, 200, 3)])
            await usage_is(250)
            await store.delete(OWNER, root.id, "b", directory=False)
            await usage_is(200)
            await store.restore_from_trash(OWNER, b.id)
            await usage_is(250)
            await store.restore_revision(OWNER, a.id, 2)  # its 600 bytes again
            await usage_is(650)
            await store.delete(OWNER, folder.id, "a", directory=False)
            await store.delete(OWNER, root.id, "d", directory=True)
            await usage_is(50)
            await store.empty_trash(FIRST_USER_ID)
            await usage_is(50)
            await store.delete(OWNER, root.id, "b", directory=False)
            await store.empty_trash(FIRST_USER_ID)
            await usage_is(0)

    run(scenario)


# -- transactions and the journal --------------------------------------------------------------


def test_every_change_stamps_its_node_with_its_journal_row(database: Path | str) -> None:
    published: list[int] = []

    async def scenario() -> None:
        async with open_store(database, on_commit=lambda head, _: published.append(head)) as store:
            root = await store.get_root(FIRST_USER_ID)
            directory = await store.make_directory(OWNER, root.id, "d", 0o755)
            file = await store.create_file(OWNER, directory.id, "f", 0o644)
            edited = await store.commit_revision(OWNER, file.id, 1, 3, 0, [block(0, 3)])
            moved, _, _, _ = await store.rename(OWNER, directory.id, "f", root.id, "g")
            touched = await store.set_attributes(OWNER, moved.id, mode=0o600, mtime_ns=None)
            for node, expected in zip(
                (directory, file, edited, moved, touched), range(1, 6), strict=True
            ):
                assert node.change_sequence == expected
                assert (await store.stat(FIRST_USER_ID, node.id)).change_sequence >= expected
            deleted_id, _ = await store.delete(OWNER, root.id, "g", directory=False)
            events = (await store.read_changes(FIRST_USER_ID, 0, 100)).events
            assert [e.kind for e in events] == [
                ChangeKind.CREATED,
                ChangeKind.CREATED,
                ChangeKind.EDITED,
                ChangeKind.MOVED,
                ChangeKind.ATTRIBUTES,
                ChangeKind.DELETED,
            ]
            assert events[-1].node_id == deleted_id == file.id
            assert all(e.device == "laptop" and e.actor_id == FIRST_USER_ID for e in events)
            # Failed writes leave neither rows nor journal entries.
            with pytest.raises(AlreadyExists):
                await store.make_directory(OWNER, root.id, "d", 0o755)
            with pytest.raises(NotFound):
                await store.delete(OWNER, root.id, "g", directory=False)
            assert await store.last_sequence() == 6
            assert published == [1, 2, 3, 4, 5, 6]

    run(scenario)


def test_server_clock_fills_zero_times_and_moves_parent_times(database: Path | str) -> None:
    now = iter(range(1_000, 100_000, 1_000))

    async def scenario() -> None:
        async with open_store(database, clock=lambda: next(now)) as store:
            root = await store.get_root(FIRST_USER_ID)  # created at 1000
            a = await store.create_file(OWNER, root.id, "a", 0o644)  # 2000
            assert (a.mtime_ns, a.ctime_ns) == (2_000, 2_000)
            b = await store.create_file(OWNER, root.id, "b", 0o644, mtime_ns=42)  # 3000
            assert (b.mtime_ns, b.ctime_ns) == (42, 3_000)
            root = await store.stat(FIRST_USER_ID, root.id)
            assert (root.mtime_ns, root.ctime_ns) == (3_000, 3_000)
            b2 = await store.commit_revision(OWNER, b.id, 1, 1, 0, [block(0, 1)])  # 4000
            assert (b2.mtime_ns, b2.ctime_ns) == (4_000, 4_000)
            assert (await store.stat(FIRST_USER_ID, root.id)).mtime_ns == 3_000
            revision = await store.get_revision(FIRST_USER_ID, b.id, 0)
            assert (revision.number, revision.created_ns, revision.device) == (2, 4_000, "laptop")

    run(scenario)


def test_group_commit_fails_only_the_failing_writes(database: Path | str) -> None:
    published: list[int] = []

    async def scenario() -> None:
        async with open_store(database, on_commit=lambda head, _: published.append(head)) as store:
            names = [f"n{i % 40}" for i in range(50)]  # ten names are taken twice
            results = await asyncio.gather(
                *(store.create_file(OWNER, 1, name, 0o644) for name in names),
                return_exceptions=True,
            )
            created = [r for r in results if not isinstance(r, BaseException)]
            failed = [r for r in results if isinstance(r, BaseException)]
            assert len(created) == 40
            assert len(failed) == 10 and all(isinstance(e, AlreadyExists) for e in failed)
            assert sorted(n.change_sequence for n in created) == list(range(1, 41))
            events = (await store.read_changes(FIRST_USER_ID, 0, 100)).events
            assert [e.sequence for e in events] == list(range(1, 41))
            assert {e.node_id for e in events} == {n.id for n in created}
            page = await store.list_directory(FIRST_USER_ID, 1)
            assert sorted(n.name for n in page.entries) == sorted(set(names))
            assert published[-1] == 40
            assert published == sorted(published)
            # Fewer commits than writes: concurrent writes shared a transaction.
            assert len(published) < 40

    run(scenario)


def test_a_statement_that_fails_unread_fails_its_own_change_only(database: Path | str) -> None:
    """PostgreSQL sends a change's statements without waiting for each: an error the
    change never read is still its own, not the next change's, nor the batch's."""

    def unread_failure(tx: Transaction) -> str:
        # The first user's id again: the database refuses it; nothing reads the answer.
        tx.conn.execute(
            "INSERT INTO users (id, name, quota_bytes, created_ns) VALUES (?, 'again', 0, 0)",
            (FIRST_USER_ID,),
        )
        return "not reached on SQLite; not kept on PostgreSQL"

    async def scenario() -> None:
        async with open_store(database) as store:
            outcomes = await store.write_each(
                [
                    namespace.make_directory(OWNER, 1, "before", 0o755),
                    unread_failure,
                    namespace.make_directory(OWNER, 1, "after", 0o755),
                ]
            )
            assert [error is None for _, error in outcomes] == [True, False, True]
            with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
                await store.write(unread_failure)  # alone: the write fails
            names = [e.name for e in (await store.read_changes(FIRST_USER_ID, 0, 10)).events]
            assert names == ["before", "after"]

    run(scenario)


def test_writes_beyond_one_group_commit_are_chained_in_order(database: Path | str) -> None:
    published: list[int] = []
    count = 2 * MAX_GROUP_COMMIT + 88

    async def scenario() -> None:
        async with open_store(database, on_commit=lambda head, _: published.append(head)) as store:
            nodes = await asyncio.gather(
                *(store.create_file(OWNER, 1, f"f{i}", 0o644) for i in range(count))
            )
            assert sorted(n.change_sequence for n in nodes) == list(range(1, count + 1))
            # Reads on the readers see every acknowledged write.
            lookups = await asyncio.gather(
                *(store.lookup(FIRST_USER_ID, 1, f"f{i}") for i in range(count))
            )
            assert [n.id for n in lookups] == [n.id for n in nodes]
        # Announced in commit order, one transaction holding at most MAX_GROUP_COMMIT writes.
        assert published == sorted(published) and published[-1] == count
        assert len(published) >= 3

    run(scenario)


def test_a_write_whose_caller_gave_up_still_commits_and_is_announced(database: Path | str) -> None:
    published: list[int] = []
    db = database

    async def scenario() -> None:
        async with open_store(db, on_commit=lambda head, _: published.append(head)) as store:
            task = asyncio.create_task(store.make_directory(OWNER, 1, "d", 0o755))
            await asyncio.sleep(0)  # the write is queued
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        # Announced; on PostgreSQL the journal watch may announce the same head again
        # (its poll can read the head before its own notice arrives): a wake-up is a hint.
        assert published and set(published) == {1}
        async with open_store(db) as store:
            assert (await store.lookup(FIRST_USER_ID, 1, "d")).kind is NodeKind.DIRECTORY

    run(scenario)


def test_a_batch_longer_than_a_transaction_keeps_each_outcome_and_the_journal_order(
    database: Path | str,
) -> None:
    """PostgreSQL commits a long batch in several transactions, and every engine runs a
    transaction's changes together first: outcomes stay per change."""

    async def scenario() -> None:
        async with open_store(database) as store:
            names = [f"f{i}" for i in range(250)]
            names[120] = names[20]  # taken by then: fails alone, in a later transaction
            names[125] = names[122]  # taken by a change of its own transaction
            outcomes = await store.write_each(
                [namespace.create_file(OWNER, 1, name, 0o644) for name in names]
            )
            failed = [i for i, (_, error) in enumerate(outcomes) if error is not None]
            assert failed == [120, 125]
            assert all(isinstance(outcomes[i][1], AlreadyExists) for i in failed)
            made = [node.change_sequence for node, error in outcomes if error is None]
            assert made == sorted(made) and len(set(made)) == 248
            page = await store.read_changes(FIRST_USER_ID, 0, 1000)
            assert [event.sequence for event in page.events] == made

    run(scenario)


# -- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/", "a\0b"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidName):
        rules.check_name(name)


def test_a_device_number_beyond_what_is_stored_is_refused_and_nothing_made(
    database: Path | str,
) -> None:
    async def scenario() -> None:
        async with open_store(database) as store:
            root = await store.get_root(FIRST_USER_ID)
            for rdev in (2**63, 2**64 - 1, -1):
                with pytest.raises(InvalidArgument, match="device number"):
                    await store.make_node(OWNER, root.id, "dev", NodeKind.CHAR_DEVICE, 0o600, rdev)
            largest = await store.make_node(
                OWNER, root.id, "dev", NodeKind.CHAR_DEVICE, 0o600, rules.MAX_RDEV
            )
            assert (await store.stat(FIRST_USER_ID, largest.id)).rdev == rules.MAX_RDEV

    run(scenario)


def test_name_length_counts_utf8_bytes() -> None:
    rules.check_name("x" * 255)
    rules.check_name("é" * 127)  # 254 bytes
    rules.check_name("...")
    with pytest.raises(NameTooLong):
        rules.check_name("x" * 256)
    with pytest.raises(NameTooLong):
        rules.check_name("é" * 128)  # 256 bytes


@pytest.mark.parametrize(
    ("size", "blocks"),
    [
        (10, [block(1, 9)]),  # does not start at 0
        (10, [block(0, 4), block(5, 5)]),  # gap
        (10, [block(0, 6), block(5, 5)]),  # overlap
        (10, [block(0, 4)]),  # short
        (3, [block(0, 4)]),  # long
        (0, [block(0, 0)]),  # empty block
        (4, [BlockRef(b"x" * 31, 0, 4)]),  # hash not 32 bytes
        (-1, []),
    ],
)
def test_invalid_block_lists(size: int, blocks: list[BlockRef]) -> None:
    with pytest.raises(InvalidBlocks):
        rules.check_blocks(size, blocks)


def test_valid_block_lists() -> None:
    rules.check_blocks(0, [])
    rules.check_blocks(10, [block(0, 4), block(4, 6)])


# -- garbage collection fence --------------------------------------------------------------


def test_condemned_blocks_are_refused_by_commits_until_released(database: Path | str) -> None:
    db = database
    kept, orphan = block(0, 10, fill=1), block(0, 10, fill=2)

    async def scenario() -> None:
        async with open_store(db) as store:
            actor = OWNER
            root = await store.get_root(FIRST_USER_ID)
            node = await store.create_file(actor, root.id, "f", 0o644)
            node = await store.commit_revision(actor, node.id, node.revision, 10, 0, [kept])
            # Only the hash no revision refers to is condemned.
            condemned = await store.condemn_blocks([kept.hash, orphan.hash])
            assert condemned == [orphan.hash]
            assert await store.list_condemned_blocks() == [orphan.hash]
            # A commit that deduplicated against the condemned block is refused...
            with pytest.raises(BlocksCondemned):
                await store.commit_revision(actor, node.id, node.revision, 10, 0, [orphan])
            assert (await store.get_revision(FIRST_USER_ID, node.id)).blocks == (kept,)
            # ...until the collector has deleted it and lifted the fence.
            await store.release_blocks(condemned)
            assert await store.list_condemned_blocks() == []
            after = await store.commit_revision(actor, node.id, node.revision, 10, 0, [orphan])
            assert after.revision == node.revision + 1
            # Now referenced: a later collection leaves it alone.
            assert await store.condemn_blocks([orphan.hash]) == []
            summary = await store.storage_summary()
            assert (summary.logical_bytes, summary.referenced_blocks) == (10, 2)
            assert summary.referenced_bytes == 20

    run(scenario)


# -- node ids ------------------------------------------------------------------------------------


def test_reserved_ids_are_used_once_and_ordinary_creates_land_beyond_them(
    database: Path | str,
) -> None:
    async def scenario() -> None:
        async with open_store(database) as store:
            first, count = await store.reserve_node_ids(FIRST_USER_ID, 3)
            assert count == 3
            made = await store.make_directory(OWNER, 1, "offline", 0o755, node_id=first + 1)
            assert made.id == first + 1
            ordinary = await store.make_directory(OWNER, 1, "online", 0o755)
            assert ordinary.id > first + 2
            again, _ = await store.reserve_node_ids(FIRST_USER_ID, 2)
            assert again > ordinary.id
        async with open_store(database) as store:  # the counter is kept
            assert (await store.make_directory(OWNER, 1, "later", 0o755)).id > again + 1

    run(scenario)
