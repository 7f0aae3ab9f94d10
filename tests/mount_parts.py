"""A mount without the kernel: its own parts (Vfs, replica, journal, synchronizer) over
real daemons, driven as the FUSE layer drives them (handlers call Vfs; forget counts).

Kernel-free tests use it to reach what a real kernel does only now and then: forget
an inode (memory pressure, drop_caches), or hold back the recording of landings.
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


@asynccontextmanager
async def mount_parts(metad, blockd, cache_dir: Path) -> AsyncIterator[SimpleNamespace]:
    """A mount without the kernel (as lifecycle assembles one): its synchronizer runs,
    what it landed is recorded only while the test runs vfs.take_landed."""
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


async def write_file(vfs: Vfs, name: bytes, data: bytes) -> int:
    """create, write, close: the file's inode."""
    fh, inode, _ = await vfs.create(ROOT_INODE, name, 0o644)
    await vfs.write(fh, 0, data)
    await vfs.flush(fh)
    await vfs.release(fh)
    return inode


async def read_file(vfs: Vfs, inode: int) -> bytes:
    fh = await vfs.open(inode)
    try:
        return bytes(await vfs.read(fh, 0, 1000))
    finally:
        await vfs.release(fh)
