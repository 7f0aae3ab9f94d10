"""Saves keep history: editors write a temporary file and rename it over the original.

Through a real mount, the way vim's writebackup, `sed -i` and office suites
save: the file keeps its id, its revisions and its shares, the temporary
leaves nothing in the trash, and every version can be read back.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fusefs.clients import BlockClient, GrantBook, MetadataClient
from fusefs.models import Role
from tests import signin
from tests.people import add_person


def save_like_an_editor(path: Path, text: str) -> None:
    """Write a temporary beside the file, flush it, rename it over the file."""
    temp = path.with_name(f".{path.name}.swp-{os.getpid()}")
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temp, os.stat(path).st_mode & 0o7777)
    os.rename(temp, path)


def test_editor_saves_and_sed_edits_keep_one_file_with_its_history_and_shares(
    mounts, metad, blockd
) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    notes = m.path / "notes.txt"
    notes.write_text("version 1\n")
    m.sync()
    grants = GrantBook()
    meta = MetadataClient(metad.address, "test", signin.token, grants)
    blocks = BlockClient(blockd.address, signin.token, grants)
    bob = add_person(metad.address, blockd.address, "bob")

    def content(number: int) -> bytes:
        hashes = [b.hash for b in meta.get_revision(node.id, number).blocks]
        return b"".join(data for _, data in blocks.download(hashes)) if hashes else b""

    try:
        node = meta.lookup(meta.root().id, "notes.txt")
        meta.share(node.id, "bob", Role.READ)
        for n in (2, 3, 4):
            save_like_an_editor(notes, f"version {n}\n")
        for n in (5, 6, 7):
            subprocess.run(["sed", "-i", f"s/version .*/version {n}/", str(notes)], check=True)
        assert notes.read_text() == "version 7\n"
        assert meta.lookup(meta.root().id, "notes.txt").id == node.id  # one file throughout
        versions = [content(r.number) for r in reversed(meta.list_revisions(node.id))]
        assert [v for v in versions if v] == [f"version {n}\n".encode() for n in range(1, 8)]
        assert meta.list_trash() == []  # no temporaries in the trash
        assert sorted(p.name for p in m.path.iterdir()) == ["notes.txt"]
        # bob's share is the file's, so it outlives every save.
        assert bob.read(node.id) == b"version 7\n"
    finally:
        meta.close()
        blocks.close()
        bob.close()


def test_a_rename_over_a_hard_linked_file_stays_a_plain_rename(mounts, metad, blockd) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    (m.path / "target").write_text("old")
    os.link(m.path / "target", m.path / "other-name")
    (m.path / "source").write_text("new")
    inode = os.stat(m.path / "source").st_ino
    os.rename(m.path / "source", m.path / "target")
    assert os.stat(m.path / "target").st_ino == inode  # POSIX: the moved file is there
    assert (m.path / "target").read_text() == "new"
    assert (m.path / "other-name").read_text() == "old"
    assert os.stat(m.path / "other-name").st_nlink == 1
