"""Hard links through metad's API: names of one node, listed, removed and refused.

alice links her files; bob tries what he may not. Through the real daemons
and the real clients (what a mount or another client sends).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusefs import errors
from fusefs.models import Role
from tests.people import Person, people


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def names_in(person: Person, folder_id: int, page: int) -> list[tuple[str, int]]:
    """Every entry of a folder, read page by page as a mount reads it."""
    found, after = [], 0
    while True:
        entries, more = person.meta.list_directory(folder_id, after, page)
        found += [(e.name, e.id) for e in entries]
        if not more:
            return found
        after = entries[-1].entry_id


def test_names_list_once_each_and_the_last_one_trashes(pair) -> None:
    alice, _ = pair
    docs = alice.mkdir("docs")
    plan = alice.write("docs/plan.txt", b"the plan")
    for name in ("a", "b", "c"):
        linked = alice.meta.link(plan.id, docs.id, name)
        assert (linked.id, linked.name, linked.nlink) == (plan.id, name, 2 + "abc".index(name))
    assert sorted(names_in(alice, docs.id, page=2)) == [
        ("a", plan.id),
        ("b", plan.id),
        ("c", plan.id),
        ("plan.txt", plan.id),
    ]
    # Removing the file's own name promotes another; its revisions stay the file's.
    alice.write("docs/plan.txt", b"the plan, edited")
    assert alice.meta.delete(docs.id, "plan.txt", False) == (plan.id, True)
    still = alice.meta.lookup(docs.id, "a")
    assert (still.id, still.nlink) == (plan.id, 3)
    assert [r.number for r in alice.meta.list_revisions(plan.id)] == [3, 2]
    assert alice.meta.list_trash() == []
    for name in ("a", "b"):
        assert alice.meta.delete(docs.id, name, False) == (plan.id, True)
    assert alice.meta.delete(docs.id, "c", False) == (plan.id, False)
    assert [e.node.id for e in alice.meta.list_trash()] == [plan.id]


def test_what_a_link_may_not_do(pair) -> None:
    alice, bob = pair
    docs = alice.mkdir("docs")
    plan = alice.write("docs/plan.txt", b"alice's plan")
    with pytest.raises(errors.NotPermitted):
        alice.meta.link(docs.id, docs.id, "docs-again")  # folders have one name
    with pytest.raises(errors.AlreadyExists):
        alice.meta.link(plan.id, docs.id, "plan.txt")
    bob_root = bob.meta.root()
    with pytest.raises(errors.NotFound):
        bob.meta.link(plan.id, bob_root.id, "stolen.txt")  # not his to see
    alice.meta.share(docs.id, "bob", Role.READ)
    with pytest.raises(errors.PermissionDenied):
        bob.meta.link(plan.id, docs.id, "mine-now.txt")  # a read share changes nothing
    with pytest.raises(errors.CrossDrive):
        bob.meta.link(plan.id, bob_root.id, "copy.txt")  # he may read it: a link is no copy
    entries, _ = bob.meta.list_directory(bob_root.id)
    assert entries == []
    assert alice.meta.lookup(docs.id, "plan.txt").nlink == 1
