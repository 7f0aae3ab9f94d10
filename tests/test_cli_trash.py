"""`drive trash` list and restore against real daemons: whole trees come back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fusefs import errors
from tests.people import Person, lines, one_line_error, people


@pytest.fixture
def alice(drive) -> Iterator[Person]:
    for made in people(drive, "alice"):
        yield made[0]


def tree(alice: Person) -> None:
    alice.mkdir("docs")
    alice.mkdir("docs/sub")
    alice.write("docs/a.txt", b"a" * 2000)
    alice.write("docs/sub/b.txt", b"bee")


def paths(listing: list[str]) -> list[str]:
    return [row.split()[0] for row in listing[1:]]


def test_a_folder_removed_file_by_file_comes_back_whole(alice: Person) -> None:
    assert lines(alice.drive("trash")) == ["the trash is empty"]
    tree(alice)
    alice.remove("docs")  # as rm -r: b.txt, sub, a.txt, then docs

    listing = lines(alice.drive("trash"))
    assert listing == lines(alice.drive("trash", "list"))
    assert listing[0].split() == ["PATH", "SIZE", "DELETED", "PURGED", "ON", "ID"]
    assert paths(listing) == ["docs/"]
    assert listing[1].split()[-1] == str(alice.meta.list_trash()[0].node.id)

    (listed,) = [json.loads(line) for line in lines(alice.drive("trash", "--json"))]
    assert (listed["path"], listed["kind"], listed["id"]) == (
        "docs",
        "folder",
        alice.meta.list_trash()[0].node.id,
    )
    assert listed["deleted_ns"] > 0 and listed["purge_ns"] > listed["deleted_ns"]

    assert lines(alice.drive("trash", "restore", "docs")) == ["restored docs (4 items)"]
    assert alice.read(alice.node("docs/sub/b.txt").id) == b"bee"
    assert alice.read(alice.node("docs/a.txt").id) == b"a" * 2000
    assert lines(alice.drive("trash")) == ["the trash is empty"]


def test_a_taken_name_gets_restored_beside_it(alice: Person) -> None:
    tree(alice)
    alice.remove("docs")
    alice.mkdir("docs")
    alice.write("docs/other.txt", b"the new docs")
    out = lines(alice.drive("trash", "restore", "/docs"))
    assert out == ["restored docs (4 items) as docs (restored): the name was taken"]
    assert alice.read(alice.node("docs (restored)/sub/b.txt").id) == b"bee"
    assert alice.read(alice.node("docs/other.txt").id) == b"the new docs"


def test_by_path_the_latest_deleted_and_by_id_any(alice: Person) -> None:
    alice.write("x.txt", b"older")
    alice.remove("x.txt")
    alice.write("x.txt", b"newer")
    alice.remove("x.txt")
    listing = lines(alice.drive("trash"))
    assert paths(listing) == ["x.txt", "x.txt"]
    older_id = min(e.node.id for e in alice.meta.list_trash())

    assert lines(alice.drive("trash", "restore", "x.txt")) == ["restored x.txt"]
    assert alice.read(alice.node("x.txt").id) == b"newer"
    out = lines(alice.drive("trash", "restore", str(older_id)))
    assert len(out) == 1 and out[0].startswith("restored x.txt as ")
    restored = out[0].removeprefix("restored x.txt as ").removesuffix(": the name was taken")
    assert alice.read(alice.node(restored).id) == b"older"
    with pytest.raises(errors.NotFound):
        alice.meta.restore_from_trash(older_id)
    one_line_error(alice.drive("trash", "restore", "x.txt"), "nothing deleted from x.txt")
