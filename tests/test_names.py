"""protos.names: every name Linux accepts travels as valid UTF-8 and comes back byte for byte."""

from __future__ import annotations

import random

import pytest

from protos import names

ESCAPE_BLOCK_CHAR = "\U0010fe90"  # a code point of the block raw bytes travel as


@pytest.mark.parametrize(
    "raw",
    [
        b"plan.txt",
        "café".encode(),
        "café".encode("latin-1"),  # one byte that is not UTF-8
        b"\xff" * 255,
        b"line\nbreak",
        ESCAPE_BLOCK_CHAR.encode(),  # text that looks like an escape
        b"\xf4\x8f\xba\x90\x90",  # ... next to the raw byte it would stand for
        b"\xed\xa0\x80",  # an encoded surrogate: not valid UTF-8
    ],
)
def test_names_round_trip(raw: bytes) -> None:
    text = names.from_bytes(raw)
    text.encode()  # protobuf strings must be valid UTF-8
    assert names.to_bytes(text) == raw


def test_random_bytes_round_trip_and_stay_distinct() -> None:
    rng = random.Random(7)
    alphabet = b"a.\x80\x90\xbf\xc3\xa9\xed\xf0\xf4\x8f\xba\xff\n\\"
    seen: dict[str, bytes] = {}
    for _ in range(20_000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        text = names.from_bytes(raw)
        text.encode()
        assert names.to_bytes(text) == raw
        assert seen.setdefault(text, raw) == raw  # two names never share a text


def test_printable_is_one_line_that_tells_names_apart() -> None:
    assert names.printable("plan.txt") == "plan.txt"
    assert names.printable(names.from_bytes(b"caf\xe9")) == "caf\\xe9"
    assert names.printable("line\nbreak") == "line\\nbreak"
    assert names.printable("caf\\xe9") == "caf\\\\xe9"  # a real backslash is not an escape


def test_tagged_names_keep_the_extension_and_fit_in_255_bytes() -> None:
    assert names.tagged("report.txt", "restored") == "report (restored).txt"
    long = names.from_bytes(b"\xff" * 250) + ".txt"
    tagged = names.tagged(long, "restored 2")
    assert tagged.endswith(" (restored 2).txt")
    assert len(names.to_bytes(tagged)) <= 255
    wide = "é" * 127 + ".txt"
    assert len(names.to_bytes(names.tagged(wide, "conflicted copy"))) <= 255


def test_only_the_canonical_spelling_of_a_name_is_accepted() -> None:
    assert names.is_canonical(names.from_bytes(b"caf\xe9"))
    assert names.is_canonical("café")
    assert not names.is_canonical("caf\U0010fec3\U0010fea9")  # the bytes of "é", escaped
