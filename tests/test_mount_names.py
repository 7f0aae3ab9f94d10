"""Any name Linux accepts works in the drive: bytes that are not UTF-8, newlines,
255-byte names and symlink targets arrive on another device byte for byte, and
the drive command shows them on one line."""

from __future__ import annotations

import errno
import os

import pytest

from protos import names
from tests.people import Person, lines, people
from tests.waiting import eventually

LATIN1 = "café.txt".encode("latin-1")  # b"caf\xe9.txt": not UTF-8
NEWLINE = b"two\nlines"
LONGEST = b"\xff" * 255
LOOKALIKE = "\U0010fee9".encode()  # the text a raw b"\xe9" travels as, typed as text
TARGET = b"/elsewhere/\x80\x81 target"


@pytest.fixture
def alice(drive) -> Person:
    for made in people(drive, "alice"):
        yield made[0]


def test_names_that_are_not_utf8_arrive_byte_for_byte(drive, mounts, alice: Person) -> None:
    metad, blockd = drive
    a = mounts.mount(metad, blockd, "dev-a", token=alice.token)
    b = mounts.mount(metad, blockd, "dev-b", token=alice.token)
    root_a, root_b = os.fsencode(a.path), os.fsencode(b.path)
    for raw in (LATIN1, NEWLINE, LONGEST, LOOKALIKE, b"\xe9"):
        with open(os.path.join(root_a, raw), "wb") as f:
            f.write(raw)
    os.mkdir(os.path.join(root_a, b"dir\x90"))
    os.symlink(TARGET, os.path.join(root_a, b"dir\x90", b"link\xfe"))
    expected = {LATIN1, NEWLINE, LONGEST, LOOKALIKE, b"\xe9", b"dir\x90"}
    assert set(os.listdir(root_a)) == expected

    eventually(lambda: set(os.listdir(root_b)) == expected)
    for raw in (LATIN1, NEWLINE, LONGEST, LOOKALIKE, b"\xe9"):
        with open(os.path.join(root_b, raw), "rb") as f:
            assert f.read() == raw  # each name opens its own file
    link = os.path.join(root_b, b"dir\x90", b"link\xfe")
    assert os.readlink(link) == TARGET
    assert os.lstat(link).st_size == len(TARGET)

    # Renames keep the bytes; one byte more than 255 is refused on both sides.
    os.rename(os.path.join(root_b, LATIN1), os.path.join(root_b, b"renamed \xe9"))
    eventually(lambda: os.path.exists(os.path.join(root_a, b"renamed \xe9")))
    with pytest.raises(OSError) as refused:
        os.mkdir(os.path.join(root_a, b"\xff" * 256))
    assert refused.value.errno == errno.ENAMETOOLONG


def test_the_drive_command_shows_and_takes_such_names(drive, mounts, alice: Person) -> None:
    alice.mkdir(names.from_bytes(b"docs\xe9"))
    alice.write(names.from_bytes(b"docs\xe9/two\nlines"), b"content")
    listing = lines(alice.drive("ls", os.fsdecode(b"docs\xe9")))
    assert listing[-1].endswith("two\\nlines")  # one line, escaped
    assert len(listing) == 2
    assert lines(alice.drive("ls"))[-1].endswith("docs\\xe9/")
    history = lines(alice.drive("history", os.fsdecode(b"docs\xe9/two\nlines")))
    assert history[-1] == "1 revision of docs\\xe9/two\\nlines kept; * is the current one"
