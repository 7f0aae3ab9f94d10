"""`drive share`, `unshare`, `shares` and the PATH of shared things, against real daemons.

alice shares with bob; what the commands print is checked, and so is what
bob can reach through his own client afterwards.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusefs import errors
from fusefs.models import Role
from tests.people import Person, add_person, lines, one_line_error, people, run_drive


@pytest.fixture
def alice_bob(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def test_share_change_role_and_unshare(alice_bob: list[Person]) -> None:
    alice, bob = alice_bob
    alice.mkdir("docs")
    plan = alice.write("docs/plan.txt", b"the plan")
    with pytest.raises(errors.NotFound):
        bob.meta.stat(plan.id)

    assert lines(alice.drive("share", "docs", "bob", "--role", "read")) == [
        "shared docs with bob (read)"
    ]
    assert bob.meta.stat(plan.id).role == Role.READ
    assert bob.read(plan.id) == b"the plan"
    with pytest.raises(errors.PermissionDenied):
        bob.commit(bob.meta.stat(plan.id), b"bob's plan")

    # Sharing again changes the role.
    assert lines(alice.drive("share", "/docs", "bob", "--role", "write")) == [
        "shared docs with bob (write)"
    ]
    assert bob.meta.stat(plan.id).role == Role.WRITE
    bob.commit(bob.meta.stat(plan.id), b"bob's plan")
    assert alice.read(plan.id) == b"bob's plan"

    assert lines(alice.drive("unshare", "docs", "bob")) == ["docs is no longer shared with bob"]
    with pytest.raises(errors.NotFound):
        bob.meta.stat(plan.id)
    one_line_error(alice.drive("unshare", "docs", "bob"), "not shared with", "bob")


def test_unshare_without_a_user_takes_it_from_everyone(drive, alice_bob: list[Person]) -> None:
    alice, bob = alice_bob
    metad, blockd = drive
    carol = add_person(metad.address, blockd.address, "carol")
    report = alice.write("report.txt", b"numbers")
    alice.drive("share", "report.txt", "bob")
    alice.drive("share", "report.txt", "carol", "--role", "write")
    assert lines(alice.drive("unshare", "report.txt")) == [
        "report.txt is no longer shared with bob, carol"
    ]
    for person in (bob, carol):
        with pytest.raises(errors.NotFound):
            person.meta.stat(report.id)
    carol.close()


def test_shares_lists_both_directions(alice_bob: list[Person]) -> None:
    alice, bob = alice_bob
    alice.mkdir("docs")
    alice.write("docs/plan.txt", b"plan")
    alice.write("photo.jpg", b"jpeg")
    bob.write("notes.txt", b"bob's notes")
    assert alice.drive("share", "docs", "bob", "--role", "write").returncode == 0
    assert alice.drive("share", "photo.jpg", "bob").returncode == 0
    assert bob.drive("share", "notes.txt", "alice").returncode == 0

    assert lines(alice.drive("shares")) == [
        "shared by me:",
        "  PATH       USER  ROLE",
        "  docs       bob   write",
        "  photo.jpg  bob   read",
        'shared with me (in "Shared with me"):',
        "  NAME       OWNER  ROLE",
        "  notes.txt  bob    read",
    ]
    assert lines(bob.drive("shares", "Shared with me/docs")) == [
        'shared with me (in "Shared with me"):',
        "  NAME  OWNER  ROLE",
        "  docs  alice  write",
    ]
    assert lines(alice.drive("shares", "docs")) == [
        "shared by me:",
        "  PATH  USER  ROLE",
        "  docs  bob   write",
    ]
    assert lines(alice.drive("shares", "docs/plan.txt")) == [
        "docs/plan.txt is not shared with anyone"
    ]
    assert [json.loads(line) for line in lines(alice.drive("shares", "--json"))] == [
        {"shared": "by me", "path": "docs", "user": "bob", "role": "write"},
        {"shared": "by me", "path": "photo.jpg", "user": "bob", "role": "read"},
        {"shared": "with me", "name": "notes.txt", "owner": "bob", "role": "read"},
    ]
    assert [json.loads(x) for x in lines(bob.drive("shares", "Shared with me/docs", "--json"))] == [
        {"shared": "with me", "name": "docs", "owner": "alice", "role": "write"}
    ]
    assert lines(alice.drive("shares", "docs/plan.txt", "--json")) == []


def test_shared_paths_work_in_every_command(alice_bob: list[Person]) -> None:
    alice, bob = alice_bob
    alice.mkdir("docs")
    alice.write("docs/plan.txt", b"v1")
    alice.write("docs/plan.txt", b"version 2")
    alice.drive("share", "docs", "bob")

    listing = lines(bob.drive("ls"))
    assert listing[0].split() == ["KIND", "SIZE", "MODIFIED", "NAME"]
    assert listing[1].split()[0] == "folder" and listing[1].endswith("Shared with me/")
    assert [line.split()[-1] for line in lines(bob.drive("ls", "Shared with me"))[1:]] == ["docs/"]
    inside = lines(bob.drive("ls", "/Shared with me/docs"))
    assert inside[1].split()[0] == "file" and inside[1].endswith("plan.txt")
    history = lines(bob.drive("history", "Shared with me/docs/plan.txt"))
    assert [row.split()[0] for row in history[1:3]] == ["3", "2"]
    assert history[1].split()[1] == "*"
    assert "alice" in history[1]
    one_line_error(
        bob.drive("ls", "Shared with me/nothing"),
        "no such file or folder in the drive: Shared with me/nothing",
    )


def test_mistakes_are_one_line(alice_bob: list[Person], tmp_path: Path) -> None:
    alice, bob = alice_bob
    alice.mkdir("docs")
    one_line_error(alice.drive("share", "docs", "nobody"), "nobody")
    one_line_error(
        alice.drive("share", "docs/x", "bob"), "no such file or folder in the drive: docs/x"
    )
    alice.drive("share", "docs", "bob")
    one_line_error(bob.drive("share", "Shared with me/docs", "alice"), "cannot share")
    one_line_error(bob.drive("unshare", "Shared with me/docs"), "cannot unshare")
    one_line_error(bob.drive("share", "Shared with me", "alice"), "Shared with me")
    one_line_error(
        run_drive(
            "shares", "--metad", alice.metad, "--data", str(tmp_path / "none"), token="",
            env={"XDG_CONFIG_HOME": str(tmp_path / "config")},
        ),
        "not signed in",
    )  # fmt: skip
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    one_line_error(
        run_drive("shares", "--metad", f"127.0.0.1:{port}", token=alice.token),
        "cannot reach metad",
    )
    forged = alice.token[:-2] + ("AA" if not alice.token.endswith("AA") else "BB")
    one_line_error(run_drive("shares", "--metad", alice.metad, token=forged), "sign-in")
