"""What the store tests share: the owner acting, a store opened and closed, a run.

Used by test_metad_store.py, test_metad_schema.py and test_metad_changes.py
(each a test of metad below gRPC, on each engine through the `database`
fixture where a test is not about SQLite's file itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from metad.models import Actor, BlockRef
from metad.store import FIRST_USER_ID, Store

OWNER = Actor(FIRST_USER_ID, "laptop")


@contextlib.asynccontextmanager
async def open_store(path: Path, **kwargs: Any) -> AsyncIterator[Store]:
    store = await Store.open(path, **kwargs)
    try:
        yield store
    finally:
        await store.close()


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout=30))


def block(offset: int, size: int, fill: int = 1) -> BlockRef:
    """A block as the servicer hands it over: its receipt checked (vouched)."""
    return BlockRef(bytes([fill]) * 32, offset, size, vouched=True)
