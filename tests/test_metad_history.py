"""Revisions, trash, snapshots and retention in the store, on each engine (SQLite, PostgreSQL).

The store's clock is a test clock, so "thirty days later" takes no time; the
gRPC and command-line surfaces are tested in test_sharing.py and the CLI tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from metad.housekeeping import Housekeeping, run_once
from metad.models import Actor, BlockRef, NodeKind
from metad.retention import DAY_NS, Retention
from metad.store import FIRST_USER_ID, Store

OWNER = Actor(FIRST_USER_ID, "laptop")
START_NS = 1_800_000_000 * 10**9


class Clock:
    def __init__(self) -> None:
        self.now = START_NS

    def __call__(self) -> int:
        self.now += 1_000_000  # every write a millisecond later
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


def scenario(database: Path | str, body: Callable[[Store, Clock], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        clock = Clock()
        # Quick removals still go to the trash here: these tests are about the trash.
        store = await Store.open(database, clock=clock, quiet_ns=0)
        try:
            return await body(store, clock)
        finally:
            await store.close()

    return asyncio.run(asyncio.wait_for(main(), timeout=60))


def blocks_of(content: int, size: int = 100) -> list[BlockRef]:
    """One block standing for 'content number n' (its hash says which)."""
    return [BlockRef(content.to_bytes(32, "big"), 0, size, vouched=True)]


async def write(store: Store, node_id: int, content: int, size: int = 100) -> None:
    node = await store.stat(FIRST_USER_ID, node_id)
    await store.commit_revision(OWNER, node_id, node.revision, size, 0, blocks_of(content, size))


async def content(store: Store, node_id: int, number: int = 0) -> bytes:
    revision = await store.get_revision(FIRST_USER_ID, node_id, number)
    return b"".join(b.hash for b in revision.blocks)


def test_restore_revision_3_after_ten_edits_keeps_everything(database: Path | str) -> None:
    async def body(store: Store, clock: Clock) -> None:
        root = await store.get_root(FIRST_USER_ID)
        plan = await store.create_file(OWNER, root.id, "plan.txt", 0o644)
        for n in range(1, 11):
            await write(store, plan.id, n)  # revisions 2..11 hold contents 1..10
        third = await content(store, plan.id, 3)
        restored = await store.restore_revision(OWNER, plan.id, 3)
        assert restored.revision == 12
        assert await content(store, plan.id) == third
        numbers = [r.number for r in await store.list_revisions(FIRST_USER_ID, plan.id)]
        # Nothing overwritten; the empty revision 1 gave way to the first content.
        assert numbers == list(range(12, 1, -1))

    scenario(database, body)


async def _tree(store: Store, folder_id: int) -> dict[str, Any]:
    """{name: subtree or file content}: what a person would see."""
    page = await store.list_directory(FIRST_USER_ID, folder_id)
    tree: dict[str, Any] = {}
    for node in page.entries:
        if node.kind is NodeKind.DIRECTORY:
            tree[node.name] = await _tree(store, node.id)
        else:
            tree[node.name] = await content(store, node.id)
    return tree


def test_a_folder_comes_back_from_trash_with_its_whole_tree(database: Path | str) -> None:
    async def body(store: Store, clock: Clock) -> None:
        root = await store.get_root(FIRST_USER_ID)
        docs = await store.make_directory(OWNER, root.id, "docs", 0o755)
        sub = await store.make_directory(OWNER, docs.id, "sub", 0o755)
        for parent, name, n in ((docs, "a.txt", 1), (sub, "b.txt", 2), (sub, "c.txt", 3)):
            await write(store, (await store.create_file(OWNER, parent.id, name, 0o644)).id, n)
        old = await store.create_file(OWNER, docs.id, "old.txt", 0o644)
        await store.delete(OWNER, docs.id, "old.txt", directory=False)  # trashed on its own
        await write(store, (await store.lookup(FIRST_USER_ID, docs.id, "a.txt")).id, 4)
        before = await _tree(store, docs.id)

        # rm -r: the entries one by one, then the folders.
        for parent, name, is_dir in (
            (sub, "b.txt", False), (sub, "c.txt", False), (docs, "sub", True),
            (docs, "a.txt", False), (root, "docs", True),
        ):  # fmt: skip
            await store.delete(OWNER, parent.id, name, directory=is_dir)
        trash = await store.list_trash(FIRST_USER_ID, 30 * DAY_NS)
        assert [(e.path, e.node.id) for e in trash] == [("docs", docs.id)]
        assert trash[0].purge_ns == trash[0].deleted_ns + 30 * DAY_NS

        # Someone made a new "docs" meanwhile: the old one comes back beside it.
        await store.make_directory(OWNER, root.id, "docs", 0o755)
        restored = await store.restore_from_trash(OWNER, docs.id)
        assert restored.path == "docs (restored)"
        assert restored.files == 5  # docs, sub, a, b, c: not old.txt, deleted before
        assert await _tree(store, docs.id) == before
        assert [e.node.id for e in await store.list_trash(FIRST_USER_ID, 0)] == [old.id]

    scenario(database, body)


def test_purged_trash_and_thinned_revisions_release_their_blocks(database: Path | str) -> None:
    async def body(store: Store, clock: Clock) -> None:
        root = await store.get_root(FIRST_USER_ID)
        gone = await store.create_file(OWNER, root.id, "gone.txt", 0o644)
        await write(store, gone.id, 100)
        await store.delete(OWNER, root.id, "gone.txt", directory=False)
        plan = await store.create_file(OWNER, root.id, "plan.txt", 0o644)
        for day in range(60):  # one edit every six hours for 60 days
            for quarter in range(4):
                await write(store, plan.id, 1000 + day * 4 + quarter)
                clock.advance(DAY_NS // 4)
        before = await store.list_revisions(FIRST_USER_ID, plan.id)

        assert await store.purge_trash(clock.now - 30 * DAY_NS) == (1, 100)
        assert await store.list_trash(FIRST_USER_ID, 0) == []
        dropped = await store.thin_revisions(Retention.from_days(30, 45, 0))
        after = await store.list_revisions(FIRST_USER_ID, plan.id)
        assert dropped == len(before) - len(after) > 0
        now = clock.now
        recent = [r for r in before if now - r.created_ns < 30 * DAY_NS]
        assert {r.number for r in recent} <= {r.number for r in after}  # all kept
        daily = [r for r in after if 30 * DAY_NS <= now - r.created_ns < 45 * DAY_NS]
        assert len({r.created_ns // DAY_NS for r in daily}) == len(daily)  # one a day
        weekly = [r for r in after if now - r.created_ns >= 45 * DAY_NS]
        assert len({r.created_ns // (7 * DAY_NS) for r in weekly}) == len(weekly)

        referenced, _ = await store.referenced_blocks(b"", 10_000)
        kept = {b.hash for r in after for b in (await store.get_revision(
            FIRST_USER_ID, plan.id, r.number)).blocks}  # fmt: skip
        assert set(referenced) == kept  # gone.txt's and thinned blocks can be collected

    scenario(database, body)


def test_a_snapshot_lists_and_restores_the_tree_as_it_was(database: Path | str) -> None:
    async def body(store: Store, clock: Clock) -> None:
        root = await store.get_root(FIRST_USER_ID)
        docs = await store.make_directory(OWNER, root.id, "docs", 0o755)
        plan = await store.create_file(OWNER, docs.id, "plan.txt", 0o644)
        await write(store, plan.id, 1)
        notes = await store.create_file(OWNER, docs.id, "notes.txt", 0o644)
        await write(store, notes.id, 2, size=50)
        clock.advance(3600 * 10**9)
        then = clock.now
        before = await _tree(store, docs.id)
        clock.advance(3600 * 10**9)

        await write(store, plan.id, 3)
        await store.rename(OWNER, docs.id, "notes.txt", root.id, "moved.txt")
        await store.create_file(OWNER, docs.id, "new.txt", 0o644)
        await store.delete(OWNER, docs.id, "new.txt", directory=False)
        await store.create_file(OWNER, docs.id, "later.txt", 0o644)

        listed = await store.list_snapshot(FIRST_USER_ID, docs.id, then)
        assert [(e.name, e.size, e.content_kept) for e in listed] == [
            ("notes.txt", 50, True),
            ("plan.txt", 100, True),
        ]
        at_root = await store.list_snapshot(FIRST_USER_ID, 0, then)
        assert [e.name for e in at_root] == ["docs"]

        restored = await store.restore_snapshot(OWNER, docs.id, then)
        assert (restored.files, restored.skipped) == (2, 0)
        now = await _tree(store, docs.id)
        # Both files read as they were; later.txt is left alone; moved.txt too.
        assert {k: now[k] for k in before} == before
        assert "later.txt" in now
        assert await content(store, (await store.lookup(FIRST_USER_ID, root.id, "moved.txt")).id)

    scenario(database, body)


def test_housekeeping_purges_trash_older_than_the_trash_period(database: Path | str) -> None:
    async def body(store: Store, clock: Clock) -> None:
        root = await store.get_root(FIRST_USER_ID)
        for name, n in (("old.txt", 1), ("recent.txt", 2)):
            node = await store.create_file(OWNER, root.id, name, 0o644)
            await write(store, node.id, n)
            await store.delete(OWNER, root.id, name, directory=False)
            clock.advance(20 * DAY_NS)
        policy = Housekeeping(trash_ns=30 * DAY_NS)
        await run_once(store, policy, now_ns=clock.now)
        assert [e.path for e in await store.list_trash(FIRST_USER_ID, 0)] == ["recent.txt"]
        referenced, _ = await store.referenced_blocks(b"", 100)
        assert referenced == [(2).to_bytes(32, "big")]

    scenario(database, body)
