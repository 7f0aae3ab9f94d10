"""A chmod/chown keeps the ctime stat(2) showed for it once it reaches the drive.

The mount journals the change and shows it at once, with the time it was
made; metad applies it a moment later. pjdfstest link/00.t (and any backup
tool comparing ctimes) saw the ctime move by that moment when it crossed a
second.
"""

from __future__ import annotations

from pathlib import Path

import trio

from fusefs.models import Kind, Ownership
from fusefs.mount.inodes import ROOT_INODE
from tests.mount_parts import mount_parts


def test_a_chown_keeps_its_ctime_when_it_lands(metad, blockd, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with mount_parts(metad, blockd, tmp_path / "cache") as m:
            vfs = m.vfs
            m.nursery.start_soon(vfs.take_landed)
            inode, node = await vfs.mknod(ROOT_INODE, b"fifo", Kind.FIFO, 0o644, 0)
            await m.sync.drain()
            shown = (await vfs.setattr(inode, owner=Ownership(65534, None))).ctime_ns
            await trio.sleep(0.05)  # metad's clock moves on before the change arrives
            await m.sync.drain()
            stored = await trio.to_thread.run_sync(m.meta.stat, node.id)
            assert (stored.uid, stored.ctime_ns) == (65534, shown)
            assert (await vfs.getattr(inode)).ctime_ns == shown

    trio.run(scenario)
