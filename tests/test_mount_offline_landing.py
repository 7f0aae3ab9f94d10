"""What the mount shows between metad applying offline changes and the mount recording it.

Kernel-free: the mount's own parts (Vfs, replica, journal, synchronizer)
over real daemons, driven as the FUSE layer drives them. The synchronizer
runs; the task that records what it landed (Vfs.take_landed) is held back,
so a test can look into the window that is otherwise a scheduler's turn wide
(after a restart, the first reads of the tree race the replay's first batch).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import trio

from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, GrantBook, MetadataClient
from fusefs.mount.inodes import ROOT_INODE
from fusefs.mount.journal import Journal
from fusefs.mount.namespace import Namespace
from fusefs.mount.reachability import Reachability
from fusefs.mount.replica import Replica
from fusefs.mount.synchronizer import Synchronizer
from fusefs.mount.vfs import Vfs
from tests import signin
from tests.offline import OFFLINE_LOGS

WAIT_SECONDS = 20.0


@asynccontextmanager
async def _mount_parts(metad, blockd, cache_dir: Path) -> AsyncIterator[SimpleNamespace]:
    """A mount without the kernel (as lifecycle assembles one): its synchronizer runs,
    what it landed is recorded only while `recording` is started."""
    cache_dir.mkdir()
    token = signin.token()
    grants = GrantBook()
    meta = MetadataClient(metad.address, "dev-a", lambda: token, grants)
    blocks = BlockClient(blockd.address, lambda: token, grants)
    replica = Replica(cache_dir / "replica.sqlite3", drive=metad.address)
    journal = Journal(cache_dir / "journal")
    try:
        root = meta.root()
        replica.set_root(root)
        replica.cursor = meta.journal_head()
        journal.add_ids(*meta.reserve_node_ids(100))
        (cache_dir / "staging").mkdir()
        limiter = trio.CapacityLimiter(4)
        reachability = Reachability("the drive")
        cache = BlockCache(cache_dir, blocks.download, capacity_bytes=64 * 1024**2, limiter=limiter)
        names = Namespace(meta, replica, limiter, reachability, journal)
        sync = Synchronizer(meta, blocks, journal, reachability, cache, limiter)
        vfs = Vfs(
            meta, names, journal, sync, blocks, cache, root, cache_dir / "staging",
            limiter=limiter,
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            vfs.files.start(nursery)
            nursery.start_soon(sync.run)
            yield SimpleNamespace(
                vfs=vfs, sync=sync, meta=meta, reachability=reachability, nursery=nursery
            )
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
        replica.close()
        meta.close()
        blocks.close()


async def _write(vfs: Vfs, name: bytes, data: bytes) -> int:
    """create, write, close: the file's inode."""
    fh, inode, _ = await vfs.create(ROOT_INODE, name, 0o644)
    await vfs.write(fh, 0, data)
    await vfs.flush(fh)
    await vfs.release(fh)
    return inode


async def _read(vfs: Vfs, inode: int) -> bytes:
    fh = await vfs.open(inode)
    try:
        return bytes(await vfs.read(fh, 0, 1000))
    finally:
        await vfs.release(fh)


async def _until(condition, what: str) -> None:
    with trio.move_on_after(WAIT_SECONDS):
        while not await condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"not {what} after {WAIT_SECONDS} s")


def test_a_save_made_offline_stays_readable_while_its_landing_is_recorded(
    metad, blockd, tmp_path: Path, allowed_log_patterns
) -> None:
    """An editor's save made offline (.report.txt.swp renamed over report.txt) reaches
    metad as a new revision of report.txt; the temporary file's node is gone there at
    once. Until the mount has recorded that outcome it shows report.txt as the
    temporary's node: listed, it must open and read (it gave ENOENT: the journal had
    already handed the temporary's rows to report.txt, so the open asked metad for a
    node it no longer has)."""
    allowed_log_patterns += OFFLINE_LOGS

    async def scenario() -> None:
        async with _mount_parts(metad, blockd, tmp_path / "cache") as m:
            vfs, sync = m.vfs, m.sync
            async with trio.open_nursery() as recording:
                recording.start_soon(vfs.take_landed)
                await _write(vfs, b"report.txt", b"report v1")
                await sync.drain()
                recording.cancel_scope.cancel()
            report_id = (await vfs.lookup(ROOT_INODE, b"report.txt"))[1].id

            m.reachability.failed()  # offline: the save is journaled
            await _write(vfs, b".report.txt.swp", b"report v2, saved offline")
            await vfs.rename(ROOT_INODE, b".report.txt.swp", ROOT_INODE, b"report.txt", False)
            inode, shown = await vfs.lookup(ROOT_INODE, b"report.txt")
            assert shown.id != report_id  # the temporary's node, until the save lands

            m.reachability.succeeded()  # back: the synchronizer sends the save

            async def applied_and_told() -> bool:
                revisions = await trio.to_thread.run_sync(m.meta.list_revisions, report_id)
                return len(revisions) == 2 and sync.landed.statistics().current_buffer_used > 0

            await _until(applied_and_told, "applied by metad and told by the synchronizer")
            await trio.sleep(0.1)  # (the synchronizer goes on as far as it would)
            listed = [e for e in (await vfs.readdir(ROOT_INODE, 0))[0] if e.name == "report.txt"]
            assert [e.inode for e in listed] == [inode]
            assert await _read(vfs, inode) == b"report v2, saved offline"

            async with trio.open_nursery() as recording:
                recording.start_soon(vfs.take_landed)
                await sync.drain()
                recording.cancel_scope.cancel()
            again, node = await vfs.lookup(ROOT_INODE, b"report.txt")
            assert node.id == report_id and again == inode  # the inode the kernel holds
            assert await _read(vfs, inode) == b"report v2, saved offline"
            assert [e.name for e in (await vfs.readdir(ROOT_INODE, 0))[0]][2:] == ["report.txt"]

    trio.run(scenario)
