"""`drive watch`: one line per change, as each user's mount names things, resumable.

The wording is checked on its own first; then the real command runs in the
background for alice and bob while they change files through their clients.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from fusefs.cli.watch import FolderBook, describe
from fusefs.models import Change, ChangeKind, Kind, Role
from tests.people import Person, lines, people

TIMEOUT = 60


def change(kind: ChangeKind, path: str, **kw) -> Change:
    fields = dict(
        sequence=1, kind=kind, node_id=10, node_kind=Kind.FILE, parent_id=2, name=path,
        old_parent_id=0, old_name="", revision=0, device="laptop", replaced_node_id=0,
        actor_name="alice", path=path,
    )  # fmt: skip
    return Change(**{**fields, **kw})


def test_each_kind_of_change_reads_as_a_sentence() -> None:
    assert describe(change(ChangeKind.CREATED, "docs/new.txt")) == "alice created docs/new.txt"
    assert (
        describe(change(ChangeKind.EDITED, "plan.txt", shared=True, actor_name="bob"))
        == "bob edited Shared with me/plan.txt"
    )
    moved = change(ChangeKind.MOVED, "docs/b.txt", old_name="a.txt", old_parent_id=2)
    assert describe(moved, "docs/a.txt") == "alice moved docs/a.txt to docs/b.txt"
    assert describe(change(ChangeKind.DELETED, "x")) == "alice deleted x"
    assert (
        describe(change(ChangeKind.RESTORED, "docs/plan.txt", revision=3, actor_name="bob"))
        == "bob restored docs/plan.txt (now revision 3)"
    )
    folder = change(ChangeKind.RESTORED, "docs", node_kind=Kind.DIRECTORY)
    assert describe(folder) == "alice restored docs"
    shared = change(
        ChangeKind.SHARED, "docs", node_kind=Kind.DIRECTORY, subject_name="bob", role=Role.READ
    )
    assert describe(shared) == "alice shared docs with bob (read)"
    unshared = change(ChangeKind.UNSHARED, "docs", subject_name="bob")
    assert describe(unshared) == "alice unshared docs with bob"
    assert describe(change(ChangeKind.EDITED, "x", actor_name="", actor_id=7)) == (
        "user 7 edited x"
    )


def test_a_moved_node_is_named_where_it_was() -> None:
    book = FolderBook(root_id=1)
    docs = change(ChangeKind.CREATED, "docs", node_kind=Kind.DIRECTORY, node_id=2, parent_id=1)
    old = change(ChangeKind.CREATED, "docs/old", node_kind=Kind.DIRECTORY, node_id=3)
    for seen in (docs, old):
        book.note(seen)
    renamed = change(ChangeKind.MOVED, "docs/b", old_parent_id=2, old_name="a", parent_id=2)
    assert book.old_path(renamed) == "docs/a"
    into_old = change(ChangeKind.MOVED, "docs/old/b", old_parent_id=2, old_name="b", parent_id=3)
    assert book.old_path(into_old) == "docs/b"
    # A folder moving takes what is known below it along.
    archive = change(
        ChangeKind.MOVED, "archive", node_kind=Kind.DIRECTORY, node_id=2, parent_id=1,
        old_parent_id=1, old_name="docs",
    )  # fmt: skip
    book.note(archive)
    back = change(ChangeKind.MOVED, "c", old_parent_id=3, old_name="b", parent_id=1)
    assert book.old_path(back) == "archive/old/b"
    unknown = change(ChangeKind.MOVED, "c", old_parent_id=99, old_name="z", parent_id=1)
    assert book.old_path(unknown) == "z"


# --- the real command ------------------------------------------------------------------------


@pytest.fixture
def alice_bob(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def started(watch: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """Waits until the watch is following the journal (it says so on stderr)."""
    assert watch.stderr is not None
    first = watch.stderr.readline()
    assert "watching changes after" in first, first + watch.stderr.read()
    return watch


def output(watch: subprocess.Popen[str]) -> list[str]:
    out, err = watch.communicate(timeout=TIMEOUT)
    assert watch.returncode == 0, err
    return out.splitlines()


def test_each_user_sees_changes_as_their_mount_names_them(alice_bob: list[Person]) -> None:
    alice, bob = alice_bob
    docs = alice.mkdir("docs")
    sub = alice.mkdir("docs/sub")
    plan = alice.write("docs/plan.txt", b"plan")
    alice.write("photo.jpg", b"jpeg")
    assert alice.drive("share", "docs", "bob", "--role", "write").returncode == 0

    expected_for_alice = [
        "bob edited docs/plan.txt",
        "alice created docs/new.txt",
        "alice moved docs/new.txt to docs/renamed.txt",
        "bob moved docs/renamed.txt to docs/sub/renamed.txt",
        "alice shared photo.jpg with bob (read)",
        "alice unshared photo.jpg with bob",
        "bob deleted docs/sub/renamed.txt",
        "alice restored docs/plan.txt (now revision 4)",
    ]
    expected_for_bob = [
        line.replace("docs", "Shared with me/docs").replace("photo", "Shared with me/photo")
        for line in expected_for_alice
    ]
    watches = [started(p.watch("--count", str(len(expected_for_alice)))) for p in alice_bob]

    bob.commit(bob.meta.stat(plan.id), b"bob's plan")
    alice.meta.create_file(docs.id, "new.txt", 0o644)
    alice.meta.rename(docs.id, "new.txt", docs.id, "renamed.txt", no_replace=True)
    bob.meta.rename(docs.id, "renamed.txt", sub.id, "renamed.txt", no_replace=True)
    assert alice.drive("share", "photo.jpg", "bob").returncode == 0
    assert alice.drive("unshare", "photo.jpg", "bob").returncode == 0
    bob.meta.delete(sub.id, "renamed.txt", directory=False)
    assert alice.drive("restore", "docs/plan.txt", "--revision", "2").returncode == 0

    assert output(watches[0]) == expected_for_alice
    assert output(watches[1]) == expected_for_bob


def test_from_a_sequence_gives_the_later_changes_once_in_order(alice_bob: list[Person]) -> None:
    alice, _ = alice_bob
    start = alice.meta.journal_head()
    root = alice.meta.root()
    for i in range(5):
        alice.meta.create_file(root.id, f"f{i}", 0o644)
    first = lines(alice.drive("watch", "--from", str(start), "--count", "3", "--sequence"))
    last_seen = first[-1].split()[0]
    rest = lines(alice.drive("watch", "--from", last_seen, "--count", "2", "--sequence"))
    seen = [line.split(" ", 1) for line in first + rest]
    assert [text for _, text in seen] == [f"alice created f{i}" for i in range(5)]
    numbers = [int(n) for n, _ in seen]
    assert numbers == sorted(set(numbers)) and numbers[0] > start


def test_watch_resumes_after_metad_restarts(drive, daemons, alice_bob: list[Person]) -> None:
    alice, _ = alice_bob
    metad, _ = drive
    root = alice.meta.root()
    watch = started(alice.watch("--count", "4"))
    assert watch.stdout is not None
    for name in ("before-1", "before-2"):
        alice.meta.create_file(root.id, name, 0o644)
    assert [watch.stdout.readline() for _ in range(2)] == [
        "alice created before-1\n",
        "alice created before-2\n",
    ]
    daemons.restart(metad)
    for name in ("after-1", "after-2"):
        alice.meta.create_file(root.id, name, 0o644)
    out, err = watch.communicate(timeout=TIMEOUT)
    assert watch.returncode == 0, err
    assert out.splitlines() == ["alice created after-1", "alice created after-2"]
    assert "lost the connection to metad" in err


def test_ctrl_c_ends_quietly(alice_bob: list[Person]) -> None:
    alice, _ = alice_bob
    watch = started(alice.watch())
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=TIMEOUT)
    assert (watch.returncode, out, err) == (0, "", "")
