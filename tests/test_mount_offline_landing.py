"""What the mount shows between metad applying offline changes and the mount recording it.

Kernel-free: the mount's own parts (Vfs, replica, journal, synchronizer)
over real daemons, driven as the FUSE layer drives them. The synchronizer
runs; the task that records what it landed (Vfs.take_landed) is held back,
so a test can look into the window that is otherwise a scheduler's turn wide
(after a restart, the first reads of the tree race the replay's first batch).
"""

from __future__ import annotations

from pathlib import Path

import trio

from fusefs.mount.inodes import ROOT_INODE
from tests.mount_parts import mount_parts, read_file, write_file
from tests.offline import OFFLINE_LOGS

WAIT_SECONDS = 20.0


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
        async with mount_parts(metad, blockd, tmp_path / "cache") as m:
            vfs, sync = m.vfs, m.sync
            async with trio.open_nursery() as recording:
                recording.start_soon(vfs.take_landed)
                await write_file(vfs, b"report.txt", b"report v1")
                await sync.drain()
                recording.cancel_scope.cancel()
            report_id = (await vfs.lookup(ROOT_INODE, b"report.txt"))[1].id

            m.reachability.failed()  # offline: the save is journaled
            await write_file(vfs, b".report.txt.swp", b"report v2, saved offline")
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
            assert await read_file(vfs, inode) == b"report v2, saved offline"

            async with trio.open_nursery() as recording:
                recording.start_soon(vfs.take_landed)
                await sync.drain()
                recording.cancel_scope.cancel()
            again, node = await vfs.lookup(ROOT_INODE, b"report.txt")
            assert node.id == report_id and again == inode  # the inode the kernel holds
            assert await read_file(vfs, inode) == b"report v2, saved offline"
            assert [e.name for e in (await vfs.readdir(ROOT_INODE, 0))[0]][2:] == ["report.txt"]

    trio.run(scenario)


OLD = 1_600_000_000 * 10**9  # 2020-09-13: an mtime no clock gives by accident


def test_a_folder_whose_time_was_set_after_filling_it_keeps_that_time_once_landed(
    metad, blockd, tmp_path: Path, allowed_log_patterns
) -> None:
    """tar makes a folder, fills it, then sets the folder's mtime back. Made offline, all
    of it lands in one batch: the folder keeps the time tar set, not the time its files
    were made (their landings move their folder's times, but only before its own)."""
    allowed_log_patterns += OFFLINE_LOGS

    async def scenario() -> None:
        async with mount_parts(metad, blockd, tmp_path / "cache") as m:
            vfs, sync = m.vfs, m.sync
            async with trio.open_nursery() as recording:
                recording.start_soon(vfs.take_landed)
                await write_file(vfs, b"first", b"online")  # (node ids reserved by now)
                await sync.drain()
                m.reachability.failed()
                folder, _ = await vfs.mkdir(ROOT_INODE, b"pkg", 0o755)
                for name in (b"a", b"b", b"c"):
                    fh, _, _ = await vfs.create(folder, name, 0o644)
                    await vfs.write(fh, 0, b"made offline")
                    await vfs.flush(fh)
                    await vfs.release(fh)
                await vfs.setattr(folder, mtime_ns=OLD)
                assert (await vfs.getattr(folder)).mtime_ns == OLD
                m.reachability.succeeded()
                await sync.drain()
                recording.cancel_scope.cancel()
            assert sync.status().files == 0
            assert (await vfs.getattr(folder)).mtime_ns == OLD
            folder_id = (await vfs.lookup(ROOT_INODE, b"pkg"))[1].id
            assert vfs.names.replica.node(folder_id).mtime_ns == OLD
            assert (await trio.to_thread.run_sync(m.meta.stat, folder_id)).mtime_ns == OLD

    trio.run(scenario)
