"""Sharing and notifications through the real daemons: roles, revoking, per-user journals.

alice shares with bob (plain users, tests/people.py).
Content goes through blockd, so "bob may read" means his grants download the
bytes, and "bob may not" means no RPC and no block read reaches them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Change, ChangeKind, Node, Role
from tests import people as people_module
from tests.people import Person


@pytest.fixture
def people(drive) -> Iterator[list[Person]]:
    yield from people_module.people(drive, "alice", "bob")


def write(person: Person, node: Node, data: bytes) -> Node:
    """data as the file's next revision, based on its current one."""
    return person.commit(person.meta.stat(node.id), data)


def test_read_share_lets_bob_read_but_not_change_anything(people) -> None:
    alice, bob = people
    root = alice.meta.root()
    plans = alice.meta.make_directory(root.id, "plans", 0o755)
    plan = write(alice, alice.meta.create_file(plans.id, "plan.txt", 0o644), b"alice's plan")
    alice.meta.create_file(root.id, "private.txt", 0o600)

    share = alice.meta.share(plans.id, "bob", Role.READ)
    assert (share.path, share.user_name, share.role) == ("plans", "bob", Role.READ)

    [mine] = bob.meta.shared_with_me()
    assert (mine.node.id, mine.owner_name, mine.node.role) == (plans.id, "alice", Role.READ)
    entries, _ = bob.meta.list_directory(plans.id)
    assert [(e.name, e.role) for e in entries] == [("plan.txt", Role.READ)]
    assert bob.read(plan.id) == b"alice's plan"

    # Every change bob tries is refused, and nothing changes.
    attempts = [
        lambda: write(bob, plan, b"bob was here"),
        lambda: bob.meta.create_file(plans.id, "new.txt", 0o644),
        lambda: bob.meta.make_directory(plans.id, "sub", 0o755),
        lambda: bob.meta.delete(plans.id, "plan.txt", False),
        lambda: bob.meta.rename(plans.id, "plan.txt", plans.id, "renamed.txt", False),
        lambda: bob.meta.set_attributes(plan.id, mode=0o600),
        lambda: bob.meta.share(plans.id, "alice", Role.READ),
    ]
    for attempt in attempts:
        with pytest.raises(errors.PermissionDenied):
            attempt()
    assert alice.read(plan.id) == b"alice's plan"
    assert [e.name for e in alice.meta.list_directory(plans.id)[0]] == ["plan.txt"]
    # The rest of alice's drive stays out of sight.
    with pytest.raises(errors.NotFound):
        bob.meta.list_directory(root.id)


def test_write_share_then_unshare(people) -> None:
    alice, bob = people
    root = alice.meta.root()
    plans = alice.meta.make_directory(root.id, "plans", 0o755)
    plan = write(alice, alice.meta.create_file(plans.id, "plan.txt", 0o644), b"v1")
    alice.meta.share(plans.id, "bob", Role.READ)
    alice.meta.share(plans.id, "bob", Role.WRITE)  # upgrading is sharing again
    [share] = alice.meta.list_shares()
    assert share.role == Role.WRITE

    write(bob, plan, b"bob's edit")
    extra = bob.meta.create_file(plans.id, "notes.txt", 0o644)
    assert extra.owner_id == alice.meta.root().owner_id  # it is in alice's drive
    assert alice.read(plan.id) == b"bob's edit"
    # A move out of alice's drive into bob's is a copy, not a move.
    with pytest.raises(errors.CrossDrive):
        bob.meta.rename(plans.id, "notes.txt", bob.meta.root().id, "notes.txt", False)

    assert alice.meta.unshare(plans.id, "bob") == 1
    assert bob.meta.shared_with_me() == []
    for attempt in (
        lambda: bob.meta.stat(plan.id),
        lambda: bob.meta.get_revision(plan.id),
        lambda: bob.meta.list_directory(plans.id),
    ):
        with pytest.raises(errors.NotFound):
            attempt()
    with pytest.raises(errors.NotFound):
        alice.meta.unshare(plans.id, "bob")


def _collect(meta: MetadataClient, after: int, count: int) -> list[Change]:
    """The first count events after a cursor (with a safety timeout)."""
    got: list[Change] = []
    stream = meta.subscribe(after)
    timer = threading.Timer(20, stream.cancel)
    timer.start()
    try:
        for change in stream:
            got.append(change)
            if len(got) == count:
                break
    finally:
        timer.cancel()
        stream.cancel()
    return got


def test_each_user_gets_exactly_the_events_they_may_see(people) -> None:
    alice, bob = people
    start = alice.meta.journal_head()
    root = alice.meta.root()
    plans = alice.meta.make_directory(root.id, "plans", 0o755)
    alice.meta.create_file(root.id, "private.txt", 0o600)  # bob never hears of it
    plan = alice.meta.create_file(plans.id, "plan.txt", 0o644)
    alice.meta.share(plans.id, "bob", Role.WRITE)
    write(bob, plan, b"bob's edit")
    alice.meta.unshare(plans.id, "bob")
    alice.meta.create_file(plans.id, "after.txt", 0o644)  # bob no longer sees plans

    seen_by_alice = _collect(alice.meta, start, 7)
    assert [(c.kind, c.actor_name, c.path, c.shared) for c in seen_by_alice] == [
        (ChangeKind.CREATED, "alice", "plans", False),
        (ChangeKind.CREATED, "alice", "private.txt", False),
        (ChangeKind.CREATED, "alice", "plans/plan.txt", False),
        (ChangeKind.SHARED, "alice", "plans", False),
        (ChangeKind.EDITED, "bob", "plans/plan.txt", False),
        (ChangeKind.UNSHARED, "alice", "plans", False),
        (ChangeKind.CREATED, "alice", "plans/after.txt", False),
    ]
    assert seen_by_alice[3].subject_name == "bob" and seen_by_alice[3].role == Role.WRITE

    # bob's journal: the share, and (replayed now) only what his shares reach today.
    seen_by_bob = _collect(bob.meta, start, 2)
    assert [(c.kind, c.path, c.shared, c.subject_name) for c in seen_by_bob] == [
        (ChangeKind.SHARED, "plans", True, "bob"),
        (ChangeKind.UNSHARED, "plans", True, "bob"),
    ]


def test_live_events_reach_the_recipient_and_resume_from_a_cursor(people) -> None:
    alice, bob = people
    root = alice.meta.root()
    plans = alice.meta.make_directory(root.id, "plans", 0o755)
    alice.meta.share(plans.id, "bob", Role.READ)
    start = bob.meta.journal_head()
    made = [alice.meta.create_file(plans.id, f"f{i}.txt", 0o644) for i in range(6)]
    alice.meta.create_file(root.id, "private.txt", 0o600)

    first = _collect(bob.meta, start, 3)
    # "Disconnected" after three: resuming from the last one gives the rest, once, in order.
    rest = _collect(bob.meta, first[-1].sequence, 3)
    events = first + rest
    assert [c.node_id for c in events] == [n.id for n in made]
    assert [c.path for c in events] == [f"plans/f{i}.txt" for i in range(6)]
    assert all(c.shared and c.actor_name == "alice" for c in events)
    sequences = [c.sequence for c in events]
    assert sequences == sorted(set(sequences))
