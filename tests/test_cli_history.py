"""`drive history`, `drive restore` and `drive ls --at` against real daemons.

Content is checked by downloading it from blockd, not by trusting what the
command prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from fusefs.credentials import TOKEN_ENV
from tests.people import Person, lines, one_line_error, people


@pytest.fixture
def alice(drive) -> Iterator[Person]:
    for made in people(drive, "alice"):
        yield made[0]


def moment() -> str:
    """A TIME between what happened before and what happens after."""
    time.sleep(0.05)
    now = time.time_ns()
    time.sleep(0.05)
    return f"@{now / 1e9:.6f}"


def names(listing: list[str]) -> list[str]:
    """The NAME column of `drive ls` (it starts where its header does)."""
    start = listing[0].index("NAME")
    return [row[start:] for row in listing[1:]]


def test_history_lists_every_kept_revision_and_restore_brings_one_back(alice: Person) -> None:
    for n in range(1, 11):
        plan = alice.write("plan.txt", f"version {n}".encode())
    kept = [r.number for r in alice.meta.list_revisions(plan.id)]
    assert set(range(plan.revision - 9, plan.revision + 1)) <= set(kept)

    shown = lines(alice.drive("history", "plan.txt"))
    assert shown[0].split() == ["REVISION", "SAVED", "SIZE", "AUTHOR", "DEVICE"]
    rows = [row.split() for row in shown[1:-1]]
    assert [int(r[0]) for r in rows] == kept  # newest first
    assert rows[0][1] == "*" and all(r[1] != "*" for r in rows[1:])  # the current one
    assert rows[0][-2:] == ["alice", "alice-laptop"]
    assert shown[-1] == f"{len(kept)} revisions of plan.txt kept; * is the current one"

    third = plan.revision - 9 + 2  # the revision holding "version 3"
    assert alice.read(plan.id, third) == b"version 3"
    assert lines(alice.drive("restore", "plan.txt", "--revision", str(third))) == [
        f"restored plan.txt to the content of revision {third}: "
        f"it is now revision {plan.revision + 1} (9 B)"
    ]
    assert alice.read(plan.id) == b"version 3"
    assert alice.read(plan.id, plan.revision) == b"version 10", "nothing was overwritten"
    newest = lines(alice.drive("history", "/plan.txt"))[1].split()
    assert newest[:2] == [str(plan.revision + 1), "*"]


def test_history_json(alice: Person) -> None:
    alice.write("a.txt", b"one")
    alice.write("a.txt", b"two!")
    listed = [json.loads(line) for line in lines(alice.drive("history", "a.txt", "--json"))]
    assert [(r["size"], r["current"]) for r in listed] == [(4, True), (3, False)]
    assert listed[0]["revision"] > listed[1]["revision"]
    assert {r["author"] for r in listed} == {"alice"} and listed[0]["saved_ns"] > 0


def test_history_mistakes(alice: Person) -> None:
    alice.mkdir("docs")
    one_line_error(alice.drive("history", "docs"), "docs is a folder")
    one_line_error(alice.drive("history", "nope.txt"), "no such file or folder in the drive")
    alice.write("docs/a.txt", b"a")
    one_line_error(alice.drive("restore", "docs/a.txt", "--revision", "99"))
    one_line_error(alice.drive("restore", "docs", "--at", "last tuesday"), "cannot read time")
    one_line_error(alice.drive("ls", "--at", "10 parsecs"), "unknown unit")


def test_ls_now_and_at_a_time_before_changes(alice: Person) -> None:
    alice.mkdir("docs")
    alice.write("docs/a.txt", b"aaaa")
    alice.write("docs/b.txt", b"bb")
    before = moment()
    docs = alice.node("docs")
    alice.meta.rename(docs.id, "a.txt", docs.id, "c.txt", no_replace=True)
    alice.meta.delete(docs.id, "b.txt", directory=False)
    alice.write("docs/d.txt", b"d")

    now = lines(alice.drive("ls", "docs"))
    assert now[0].split() == ["KIND", "SIZE", "MODIFIED", "NAME"]
    assert names(now) == ["c.txt", "d.txt"]
    then = lines(alice.drive("ls", "docs", "--at", before))
    assert names(then) == ["a.txt", "b.txt"]
    assert then[1].split()[:3] == ["file", "4", "B"]
    assert names(lines(alice.drive("ls", "--at", before))) == ["docs/"]

    # A folder renamed since is found by the name it had then.
    root = alice.meta.root()
    alice.meta.rename(root.id, "docs", root.id, "papers", no_replace=True)
    assert names(lines(alice.drive("ls", "docs", "--at", before))) == ["a.txt", "b.txt"]
    one_line_error(alice.drive("ls", "papers", "--at", before), "nothing was at papers")
    one_line_error(alice.drive("ls", "docs"), "no such file or folder in the drive: docs")
    assert lines(alice.drive("ls", "docs/a.txt", "--at", before))[1].endswith("a.txt")


def test_restore_a_folder_as_it_was(alice: Person) -> None:
    alice.mkdir("docs")
    alice.mkdir("docs/sub")
    a = alice.write("docs/a.txt", b"first a")
    alice.write("docs/sub/b.txt", b"first b")
    before = moment()
    alice.write("docs/a.txt", b"second a")
    alice.remove("docs/sub")
    alice.write("docs/new.txt", b"new")

    out = lines(alice.drive("restore", "docs", "--at", before))
    assert out[0].startswith("restored docs as it was at ")
    assert out[0].endswith("brought back")
    assert alice.read(a.id) == b"first a"
    assert alice.read(alice.node("docs/sub/b.txt").id) == b"first b"
    assert alice.read(alice.node("docs/new.txt").id) == b"new", "restoring deletes nothing"

    # A file deleted since, restored by the path it had.
    alice.remove("docs/a.txt")
    out = lines(alice.drive("restore", "docs/a.txt", "--at", before))
    assert out[0].startswith("restored docs/a.txt as it was at ")
    assert alice.read(alice.node("docs/a.txt").id) == b"first a"


def test_local_paths_inside_a_mount_name_the_same_files(drive, mounts, alice: Person) -> None:
    metad, blockd = drive
    m = mounts.mount(metad, blockd, "alice-desktop", token=alice.token)
    (m.path / "docs").mkdir()
    (m.path / "docs" / "plan.txt").write_text("one")
    m.sync()  # two revisions (a second close before the first was sent would make one)
    (m.path / "docs" / "plan.txt").write_text("two")
    m.sync()
    assert len(alice.meta.list_revisions(alice.node("docs/plan.txt").id)) == 2
    summary = "2 revisions of docs/plan.txt kept; * is the current one"
    assert lines(alice.drive("history", str(m.path / "docs" / "plan.txt")))[-1] == summary
    assert lines(alice.drive("history", "plan.txt", cwd=m.path / "docs"))[-1] == summary
    assert names(lines(alice.drive("ls", cwd=m.path / "docs"))) == ["plan.txt"]


def test_ls_json_is_one_object_per_line(alice: Person) -> None:
    alice.mkdir("docs")
    alice.write("docs/a.txt", b"aaaa")
    alice.mkdir("docs/sub")
    listed = [json.loads(line) for line in lines(alice.drive("ls", "docs", "--json"))]
    assert [(e["name"], e["kind"]) for e in listed] == [("a.txt", "file"), ("sub", "folder")]
    assert listed[0]["size"] == 4 and listed[0]["modified_ns"] > 0
    assert lines(alice.drive("ls", "docs/sub", "--json")) == []  # empty: nothing, not a sentence


def test_output_to_a_closed_pipe_ends_quietly(alice: Person) -> None:
    """`drive ls | head -1`: the reader is gone before ls writes; no traceback."""
    for n in range(3):
        alice.write(f"f{n}.txt", b"x")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "ls", "--json", "--metad", alice.metad],
            stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, TOKEN_ENV: alice.token}, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 128 + signal.SIGPIPE
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fusefs.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.startswith("drive (drivefs) 0.")
