"""Sharing and notifications through the real daemons: roles, revoking, per-user journals.

alice (the first user, named "owner" by the fixtures) shares with bob; bob's
token comes from a real sign-in.
Content goes through blockd, so "bob may read" means his grants download the
bytes, and "bob may not" means no RPC and no block read reaches them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import blake3
import pytest

from fusefs import errors
from fusefs.clients import AccountsClient, BlockClient, GrantBook, MetadataClient
from fusefs.models import BlockRef, Change, ChangeKind, Node, Role
from tests import signin


@dataclass
class Person:
    name: str
    meta: MetadataClient
    blocks: BlockClient

    def write(self, node: Node, data: bytes) -> Node:
        """Uploads data as one block and commits it on the file's current revision."""
        digest = blake3.blake3(data).digest()
        self.blocks.upload(lambda: [(digest, data)] if data else [])
        current = self.meta.stat(node.id)
        refs = [BlockRef(digest, 0, len(data))] if data else []
        return self.meta.commit_revision(node.id, current.revision, len(data), 0, refs)

    def read(self, node_id: int) -> bytes:
        revision = self.meta.get_revision(node_id)
        hashes = [b.hash for b in revision.blocks]
        return b"".join(data for _, data in self.blocks.download(hashes)) if hashes else b""

    def close(self) -> None:
        self.meta.close()
        self.blocks.close()


def _person(name: str, drive, token: str) -> Person:
    metad, blockd = drive
    book = GrantBook()
    return Person(
        name,
        MetadataClient(metad.address, f"{name}-laptop", lambda: token, book),
        BlockClient(blockd.address, lambda: token, book),
    )


@pytest.fixture
def people(drive) -> Iterator[tuple[Person, Person]]:
    metad, _ = drive
    admin = AccountsClient(metad.address, signin.token)
    admin.create_user("bob", "bob's long password", 0, False)
    bob_token = AccountsClient(metad.address).sign_in("bob", "bob's long password").token
    admin.close()
    alice, bob = _person("alice", drive, signin.token()), _person("bob", drive, bob_token)
    yield alice, bob
    alice.close()
    bob.close()


def test_read_share_lets_bob_read_but_not_change_anything(people) -> None:
    alice, bob = people
    root = alice.meta.root()
    plans = alice.meta.make_directory(root.id, "plans", 0o755)
    plan = alice.write(alice.meta.create_file(plans.id, "plan.txt", 0o644), b"alice's plan")
    alice.meta.create_file(root.id, "private.txt", 0o600)

    share = alice.meta.share(plans.id, "bob", Role.READ)
    assert (share.path, share.user_name, share.role) == ("plans", "bob", Role.READ)

    [mine] = bob.meta.shared_with_me()
    assert (mine.node.id, mine.owner_name, mine.node.role) == (plans.id, "owner", Role.READ)
    entries, _ = bob.meta.list_directory(plans.id)
    assert [(e.name, e.role) for e in entries] == [("plan.txt", Role.READ)]
    assert bob.read(plan.id) == b"alice's plan"

    # Every change bob tries is refused, and nothing changes.
    attempts = [
        lambda: bob.write(plan, b"bob was here"),
        lambda: bob.meta.create_file(plans.id, "new.txt", 0o644),
        lambda: bob.meta.make_directory(plans.id, "sub", 0o755),
        lambda: bob.meta.delete(plans.id, "plan.txt", False),
        lambda: bob.meta.rename(plans.id, "plan.txt", plans.id, "renamed.txt", False),
        lambda: bob.meta.set_attributes(plan.id, mode=0o600),
        lambda: bob.meta.share(plans.id, "owner", Role.READ),
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
    plan = alice.write(alice.meta.create_file(plans.id, "plan.txt", 0o644), b"v1")
    alice.meta.share(plans.id, "bob", Role.READ)
    alice.meta.share(plans.id, "bob", Role.WRITE)  # upgrading is sharing again
    [share] = alice.meta.list_shares()
    assert share.role == Role.WRITE

    bob.write(plan, b"bob's edit")
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
    bob.write(plan, b"bob's edit")
    alice.meta.unshare(plans.id, "bob")
    alice.meta.create_file(plans.id, "after.txt", 0o644)  # bob no longer sees plans

    seen_by_alice = _collect(alice.meta, start, 7)
    assert [(c.kind, c.actor_name, c.path, c.shared) for c in seen_by_alice] == [
        (ChangeKind.CREATED, "owner", "plans", False),
        (ChangeKind.CREATED, "owner", "private.txt", False),
        (ChangeKind.CREATED, "owner", "plans/plan.txt", False),
        (ChangeKind.SHARED, "owner", "plans", False),
        (ChangeKind.EDITED, "bob", "plans/plan.txt", False),
        (ChangeKind.UNSHARED, "owner", "plans", False),
        (ChangeKind.CREATED, "owner", "plans/after.txt", False),
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
    assert all(c.shared and c.actor_name == "owner" for c in events)
    sequences = [c.sequence for c in events]
    assert sequences == sorted(set(sequences))
