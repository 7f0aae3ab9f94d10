"""Garbage collection and scrubbing of the block store.

Owns the two long walks over the store. Garbage collection never decides
alone that a block is unreferenced: metad condemns each batch in the same
transaction that orders commits, so a commit racing the collector is either
already referencing the block (kept) or refused until the block is gone and
uploaded again. Must not handle requests (service.py streams what these
functions yield).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from blockd.fence import Fence
from blockd.store import BlockStore, StoredBlock
from blockd.storeerrors import BlockCorrupt, BlockDamaged, BlockNotFound

log = logging.getLogger(__name__)

BATCH = 1000  # blocks condemned, deleted and released together
PROGRESS_EVERY = 500  # blocks between progress reports
MISSING = "missing: referenced by a revision but not stored"


@dataclass(frozen=True, slots=True)
class GarbageProgress:
    scanned: int
    total: int
    deleted: int
    bytes_reclaimed: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    hash: bytes
    problem: str
    repaired: bool = False  # healed during the scrub


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    checked: int
    total: int
    referenced_checked: int
    problems: tuple[Problem, ...] = ()
    done: bool = False


@dataclass
class _Tally:
    scanned: int = 0
    deleted: int = 0
    reclaimed: int = 0
    batch: list[StoredBlock] = field(default_factory=list)


async def collect_garbage(
    store: BlockStore, fence: Fence, grace_seconds: float, *, dry_run: bool = False
) -> AsyncIterator[GarbageProgress]:
    total = store.stats().object_count
    tally = _Tally()
    log.info(
        "garbage collection%s started: %d blocks, grace %g s",
        " (dry run)" if dry_run else "",
        total,
        grace_seconds,
    )
    if not dry_run:
        await _finish_interrupted_run(store, fence)
    cutoff = time.time_ns() - int(grace_seconds * 1e9)
    async with contextlib.aclosing(store.objects()) as listing:
        async for block in listing:
            tally.scanned += 1
            if block.modified_ns <= cutoff:
                tally.batch.append(block)
            if len(tally.batch) >= BATCH:
                await _collect_batch(store, fence, tally, dry_run)
            if tally.scanned % PROGRESS_EVERY == 0:
                yield GarbageProgress(tally.scanned, total, tally.deleted, tally.reclaimed)
    await _collect_batch(store, fence, tally, dry_run)
    log.info(
        "garbage collection%s: %d blocks scanned, %d deleted, %d bytes reclaimed",
        " (dry run)" if dry_run else "",
        tally.scanned,
        tally.deleted,
        tally.reclaimed,
    )
    yield GarbageProgress(tally.scanned, total, tally.deleted, tally.reclaimed, done=True)


async def _collect_batch(store: BlockStore, fence: Fence, tally: _Tally, dry_run: bool) -> None:
    batch, tally.batch = tally.batch, []
    if not batch:
        return
    unreferenced = set(await fence.condemn([b.hash for b in batch]))
    doomed = [b for b in batch if b.hash in unreferenced]
    # A dry run only asks: it lifts the fence at once, deleting nothing.
    if not dry_run:
        for block in doomed:
            await store.delete(block)
    await fence.release([b.hash for b in doomed])
    tally.deleted += len(doomed)
    tally.reclaimed += sum(b.stored_size for b in doomed)


async def _finish_interrupted_run(store: BlockStore, fence: Fence) -> None:
    """Blocks a collector condemned before dying: delete them, lift the fence."""
    leftover = await fence.condemned()
    if not leftover:
        return
    for digest in leftover:
        await store.delete(StoredBlock(digest, 0, 0))
    await fence.release(leftover)
    log.info("finished an interrupted collection: %d condemned blocks deleted", len(leftover))


async def scrub(
    store: BlockStore, fence: Fence | None, only: Sequence[bytes] = ()
) -> AsyncIterator[ScrubProgress]:
    """Verifies every stored block (or only those), then that every referenced one is stored.

    A damaged block is quarantined by the store (and healed from its memory
    when it can be); one reported damaged is not reported missing again.
    """
    total = len(only) if only else store.stats().object_count
    checked = 0
    referenced_checked = 0
    found: list[Problem] = []
    reported: set[bytes] = set()
    async with contextlib.aclosing(_blocks(store, only)) as listing:
        async for digest in listing:
            problem = await _check(store, digest)
            checked += 1
            if problem is not None:
                found.append(problem)
                reported.add(digest)
            if checked % PROGRESS_EVERY == 0 or found:
                yield ScrubProgress(checked, total, 0, tuple(found))
                found = []
    if only:
        missing = await store.find_missing(list(only))
        found += [Problem(h, MISSING) for h in missing if h not in reported]
        referenced_checked = len(only)
    elif fence is not None:
        async for page in fence.referenced():
            missing = await store.find_missing(page)
            referenced_checked += len(page)
            found += [Problem(h, MISSING) for h in missing if h not in reported]
            yield ScrubProgress(checked, total, referenced_checked, tuple(found))
            found = []
    yield ScrubProgress(checked, total, referenced_checked, tuple(found), done=True)


async def _blocks(store: BlockStore, only: Sequence[bytes]) -> AsyncIterator[bytes]:
    """The hashes to verify: only those given that are stored, or every stored block."""
    if only:
        absent = set(await store.find_missing(list(only)))
        for digest in dict.fromkeys(only):
            if digest not in absent:
                yield digest
        return
    async with contextlib.aclosing(store.objects()) as listing:
        async for block in listing:
            yield block.hash


async def _check(store: BlockStore, digest: bytes) -> Problem | None:
    try:
        healed = await store.verify(digest)
    except BlockDamaged as exc:
        return Problem(digest, f"corrupt, quarantined: {exc}")
    except BlockCorrupt as exc:
        return Problem(digest, f"unreadable here (not quarantined): {exc}")
    except BlockNotFound:
        return None  # deleted while we walked
    if healed:
        return Problem(digest, "corrupt, rewritten from a verified copy in memory", repaired=True)
    return None
