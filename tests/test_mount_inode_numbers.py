"""A file's inode number stays what stat(2) showed while the file is there.

Programs keep inode numbers (find, rsync, tar, pjdfstest's rename tests) and
expect them to hold, on a local disk also after the kernel has forgotten the
inode (memory pressure, drop_caches) and looks the name up again. A save is
where the mount's numbers (metad node ids) could change: metad keeps the
replaced file's id, while the kernel moved the renamed file's inode to the name.
"""

from __future__ import annotations

from pathlib import Path

import trio

from fusefs.models import Kind, Node
from fusefs.mount.inodes import ROOT_INODE, InodeTable
from tests.mount_parts import mount_parts, read_file, write_file

FORGET_ALL = 1_000  # more lookups than a test hands out: the kernel forgets the inode


def test_a_saved_file_keeps_its_inode_number_after_the_kernel_forgets_it(
    metad, blockd, tmp_path: Path
) -> None:
    """rename(2) of a file over another (an editor's save) shows the moved file's inode
    under the name; once the kernel forgot that inode, a lookup of the name gave the
    replaced file's id instead (pjdfstest rename/09.t and 10.t failed whenever another
    test dropped the caches meanwhile)."""

    async def scenario() -> None:
        async with mount_parts(metad, blockd, tmp_path / "cache") as m:
            vfs = m.vfs
            m.nursery.start_soon(vfs.take_landed)
            original = await write_file(vfs, b"notes.txt", b"version 1")
            temporary = await write_file(vfs, b".notes.txt.swp", b"version 2")
            await vfs.rename(ROOT_INODE, b".notes.txt.swp", ROOT_INODE, b"notes.txt", False)
            inode, saved = await vfs.lookup(ROOT_INODE, b"notes.txt")
            assert inode == temporary and saved.id != temporary  # a save: metad's id is kept

            vfs.forget(temporary, FORGET_ALL)  # drop_caches
            vfs.forget(original, FORGET_ALL)
            again, node = await vfs.lookup(ROOT_INODE, b"notes.txt")
            assert (again, node.id) == (temporary, saved.id)
            assert (await vfs.getattr(again)).size == len(b"version 2")
            assert await read_file(vfs, again) == b"version 2"

            # Moved on, it keeps the number too (pjdfstest renames it back and forth).
            await vfs.rename(ROOT_INODE, b"notes.txt", ROOT_INODE, b"moved.txt", False)
            vfs.forget(again, FORGET_ALL)
            assert (await vfs.lookup(ROOT_INODE, b"moved.txt"))[0] == temporary

    trio.run(scenario)


def _file(node_id: int) -> Node:
    return Node(node_id, 1, f"f{node_id}", Kind.FILE, 0o644, 0, 0, 0, 1, "", 0)


def test_an_alias_ends_with_its_node_and_moves_with_the_next_save() -> None:
    """What the table keeps of saves is bounded by the files there, not by the saves
    (an editor saves one file thousands of times; a build replaces and removes)."""
    table = InodeTable(root_node_id=1)
    table.remember(_file(10))  # the kernel holds the temporary's inode
    table.alias(20, 10)  # 10 saved over 20
    table.forget(10, FORGET_ALL)
    assert table.inode_of(20) == 10 and table.node_of(10) == 20

    table.remember(_file(30))
    table.alias(20, 30)  # the next save of 20, from temporary 30
    assert table.inode_of(20) == 30 and table.node_of(10) == 10  # 10 was forgotten

    table.remember(_file(20))  # (answers to 30)
    table.alias(40, 30)  # 20, saved file, renamed over 40 in turn: 20 is gone
    assert table.inode_of(40) == 30 and table.inode_of(20) == 20

    table.unalias(30)  # 40 removed while the kernel still holds 30 (an open file)
    assert table.inode_of(40) == 40 and table.node_of(30) == 40
    table.forget(30, FORGET_ALL)
    assert table.node_of(30) == 30
