"""Quiet trash in the store: programs' temporaries leave no trace, people's files do.

Each engine (a SQLite file, a PostgreSQL database) and a test clock; through a
mount with real programs in test_mount_programs.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from metad.models import Actor, BlockRef
from metad.store import FIRST_USER_ID, Store

OWNER = Actor(FIRST_USER_ID, "laptop")
WINDOW_NS = 30 * 10**9


def scenario(
    database: Path | str, body: Callable[[Store, Callable[[int], None]], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        now = [1_800_000_000 * 10**9]

        def clock() -> int:
            now[0] += 1_000_000
            return now[0]

        def advance(ns: int) -> None:
            now[0] += ns

        store = await Store.open(database, clock=clock, quiet_ns=WINDOW_NS)
        try:
            return await body(store, advance)
        finally:
            await store.close()

    return asyncio.run(asyncio.wait_for(main(), timeout=60))


async def write(store: Store, node_id: int, content: int) -> None:
    node = await store.stat(FIRST_USER_ID, node_id)
    block = BlockRef(content.to_bytes(32, "big"), 0, 10, vouched=True)
    await store.commit_revision(OWNER, node_id, node.revision, 10, 0, [block])


async def trash_names(store: Store) -> list[str]:
    return sorted(e.node.name for e in await store.list_trash(FIRST_USER_ID, 0))


def test_temporaries_by_name_and_by_age_skip_the_trash(database: Path | str) -> None:
    async def body(store: Store, advance: Callable[[int], None]) -> None:
        root = await store.get_root(FIRST_USER_ID)
        git = await store.make_directory(OWNER, root.id, ".git", 0o755)
        born = {}
        for parent, name in [
            (root.id, ".notes.txt.swp"),
            (root.id, "report.docx~"),
            (root.id, "~$report.docx"),
            (root.id, ".~lock.report.odt#"),
            (root.id, "db.sqlite-journal"),
            (git.id, "index.lock"),
            (root.id, "index.lock"),  # a lock outside .git is a person's file
            (root.id, "quick.txt"),
        ]:
            born[name, parent] = await store.create_file(OWNER, parent, name, 0o644)
            await write(store, born[name, parent].id, 1)
        advance(WINDOW_NS)  # nothing is new any more: only names mark temporaries
        late = await store.create_file(OWNER, root.id, "late.txt", 0o644)
        for name, parent in born:
            if name != "quick.txt":
                await store.delete(OWNER, parent, name, directory=False)
        await store.delete(OWNER, root.id, "late.txt", directory=False)  # made a moment ago
        await store.delete(OWNER, root.id, "quick.txt", directory=False)
        assert await trash_names(store) == ["index.lock", "quick.txt"]
        assert late.id  # removed within the window: gone without a trace

    scenario(database, body)


def test_a_document_renamed_like_a_temporary_keeps_its_trash_entry_and_history(
    database: Path | str,
) -> None:
    """vim's backup: the original becomes "notes.txt~" and is removed after the save."""

    async def body(store: Store, advance: Callable[[int], None]) -> None:
        root = await store.get_root(FIRST_USER_ID)
        notes = await store.create_file(OWNER, root.id, "notes.txt", 0o644)
        for n in range(1, 4):
            await write(store, notes.id, n)
        advance(WINDOW_NS)
        await store.rename(OWNER, root.id, "notes.txt", root.id, "notes.txt~")
        await store.delete(OWNER, root.id, "notes.txt~", directory=False)
        assert await trash_names(store) == ["notes.txt~"]
        await store.restore_from_trash(OWNER, notes.id)
        revisions = await store.list_revisions(FIRST_USER_ID, notes.id)
        assert len(revisions) == 3

    scenario(database, body)
