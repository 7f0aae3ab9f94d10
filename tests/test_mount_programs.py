"""Everyday programs in a real mount: git, SQLite, rsync -aHX, tar with special files,
as root and as an ordinary user of the machine, and the trash stays free of their
temporaries.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests import signin

NOBODY = 65534


def run(*args: str, cwd: Path, user: int | None = None) -> str:
    result = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(cwd),
            "GIT_AUTHOR_NAME": "Ada",
            "GIT_AUTHOR_EMAIL": "ada@example.org",
            "GIT_COMMITTER_NAME": "Ada",
            "GIT_COMMITTER_EMAIL": "ada@example.org",
        },
    )
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


@pytest.fixture
def metad(daemons, tmp_path: Path):
    """metad as `drive up` runs it: files removed within 30 s of being made skip the trash."""
    return daemons.start("metad", tmp_path / "metad", extra_args=["--quiet-seconds", "30"])


def trash_of(metad) -> list[str]:
    meta = signin.metadata_client(metad.address)
    try:
        return [entry.path for entry in meta.list_trash()]
    finally:
        meta.close()


def git_round(repo: Path, user: int | None = None) -> None:
    """init, add, commit twice, status: what people do in a checkout."""
    repo.mkdir()
    if user is not None:
        os.chown(repo, user, user)
    run("git", "init", "-q", "-b", "main", ".", cwd=repo, user=user)
    (repo / "README").write_text("hello\n")
    (repo / "src").mkdir()
    (repo / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    if user is not None:
        for path in (repo / "README", repo / "src", repo / "src" / "main.c"):
            os.chown(path, user, user)
    run("git", "add", "-A", cwd=repo, user=user)
    run("git", "commit", "-q", "-m", "first", cwd=repo, user=user)
    with open(repo / "README", "a") as f:
        f.write("more\n")
    run("git", "commit", "-q", "-am", "second", cwd=repo, user=user)
    assert run("git", "status", "--porcelain", cwd=repo, user=user) == ""
    log = run("git", "log", "--format=%s", cwd=repo, user=user).split()
    assert log == ["second", "first"]
    run("git", "fsck", "--no-progress", cwd=repo, user=user)


def test_git_as_root_and_as_an_ordinary_user(mounts, metad, blockd, public: Path) -> None:
    m = mounts.mount(metad, blockd, "dev-a", path=public / "mnt")
    git_round(m.path / "project")
    os.chmod(m.path, 0o777)
    git_round(m.path / "theirs", user=NOBODY)
    assert os.stat(m.path / "theirs" / ".git" / "HEAD").st_uid == NOBODY
    # git's lock files and temporaries leave nothing in the trash.
    assert trash_of(metad) == []


def test_sqlite_transactions_keep_their_data_and_no_journal_in_the_trash(
    mounts, metad, blockd
) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    db = m.path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(500)]
        )
    conn.close()
    b = mounts.mount(metad, blockd, "dev-b")
    with sqlite3.connect(f"file:{b.path / 'app.db'}?mode=ro", uri=True) as reader:
        assert reader.execute("SELECT COUNT(*), MAX(body) FROM notes").fetchone() == (
            500,
            "note 99",
        )
        assert reader.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reader.close()
    assert trash_of(metad) == []
    assert sorted(p.name for p in m.path.iterdir()) == ["app.db"]


def make_tree(root: Path) -> None:
    """Files, a hard link, a symlink, a FIFO, a device, attributes, odd modes."""
    root.mkdir()
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_text("alpha\n" * 1000)
    os.link(root / "docs" / "a.txt", root / "a-again.txt")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o4750)
    os.symlink("docs/a.txt", root / "link")
    os.mkfifo(root / "pipe", 0o600)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(root / "docs" / "a.txt", "user.origin", b"made by a test")
    os.chown(root / "docs", 1234, 4321)


def describe(root: Path) -> dict[str, tuple]:
    """What a faithful copy keeps, path by path (inodes: which names share one)."""
    inodes: dict[int, str] = {}
    seen: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        first = inodes.setdefault(st.st_ino, rel)
        content = (
            path.read_bytes()
            if stat.S_ISREG(st.st_mode)
            else os.readlink(path)
            if stat.S_ISLNK(st.st_mode)
            else b""
        )
        xattrs = (
            sorted((n, os.getxattr(path, n)) for n in os.listxattr(path))
            if not stat.S_ISLNK(st.st_mode)
            else []
        )
        seen[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, first, content, xattrs)
    return seen


def test_rsync_with_hard_links_and_attributes_round_trips(mounts, metad, blockd, tmp_path) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    source = tmp_path / "source"
    make_tree(source)
    run("rsync", "-aHX", f"{source}/", f"{m.path / 'copy'}/", cwd=tmp_path)
    assert describe(m.path / "copy") == describe(source)
    back = tmp_path / "back"
    run("rsync", "-aHX", f"{m.path / 'copy'}/", f"{back}/", cwd=tmp_path)
    assert describe(back) == describe(source)


def test_tar_keeps_special_files_owners_and_links(mounts, metad, blockd, tmp_path) -> None:
    m = mounts.mount(metad, blockd, "dev-a")
    source = tmp_path / "source"
    make_tree(source)
    archive = tmp_path / "tree.tar"
    run("tar", "--xattrs", "-cpf", str(archive), "-C", str(source), ".", cwd=tmp_path)
    (m.path / "restored").mkdir()
    run("tar", "--xattrs", "-xpf", str(archive), "-C", str(m.path / "restored"), cwd=tmp_path)
    assert describe(m.path / "restored") == describe(source)
    # And back out of the drive: the archive made from the mount restores the same tree.
    again = tmp_path / "again.tar"
    run("tar", "--xattrs", "-cpf", str(again), "-C", str(m.path / "restored"), ".", cwd=tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    run("tar", "--xattrs", "-xpf", str(again), "-C", str(out), cwd=tmp_path)
    assert describe(out) == describe(source)


def test_sqlite_rsync_and_tar_as_an_ordinary_user(mounts, metad, blockd, public: Path) -> None:
    """What nobody (uid 65534) may do on any disk works in their own folder of the mount."""
    m = mounts.mount(metad, blockd, "dev-a", path=public / "mnt")
    mine = m.path / "mine"
    mine.mkdir()
    os.chown(mine, NOBODY, NOBODY)
    source = public / "source"
    source.mkdir()
    (source / "docs").mkdir()
    (source / "docs" / "a.txt").write_text("alpha\n" * 1000)
    os.link(source / "docs" / "a.txt", source / "a-again.txt")
    os.symlink("docs/a.txt", source / "link")
    os.mkfifo(source / "pipe", 0o640)
    os.setxattr(source / "docs" / "a.txt", "user.origin", b"made by nobody")
    for path in [source, *source.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)

    script = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as db:\n"
        "    db.execute('CREATE TABLE t (n INTEGER)')\n"
        "    db.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(300)])\n"
        "print(sqlite3.connect(sys.argv[1]).execute('SELECT SUM(n) FROM t').fetchone()[0])\n"
    )
    out = run("/usr/bin/python3", "-c", script, str(mine / "app.db"), cwd=public, user=NOBODY)
    assert out.strip() == str(sum(range(300)))
    assert os.stat(mine / "app.db").st_uid == NOBODY

    run("rsync", "-aHX", f"{source}/", f"{mine / 'copy'}/", cwd=public, user=NOBODY)
    assert describe(mine / "copy") == describe(source)
    scratch = public / "scratch"
    scratch.mkdir()
    os.chown(scratch, NOBODY, NOBODY)
    archive = scratch / "tree.tar"
    run("tar", "--xattrs", "-cpf", str(archive), "-C", str(source), ".", cwd=public, user=NOBODY)
    (mine / "restored").mkdir()
    os.chown(mine / "restored", NOBODY, NOBODY)
    restored = mine / "restored"
    run("tar", "--xattrs", "-xpf", str(archive), "-C", str(restored), cwd=public, user=NOBODY)
    assert describe(restored) == describe(source)
    assert trash_of(metad) == []
