"""Names on the wire: any name Linux accepts, carried losslessly as text.

A Linux file name is bytes (anything but "/" and NUL, at most 255 of them); the
API's name fields are protobuf strings, which must be UTF-8. A name that is
valid UTF-8 travels as it is. Each byte that is not part of valid UTF-8
travels as one code point of a private-use block, U+10FE80 + (byte - 0x80);
and the rare name whose text itself holds a code point of that block has
that code point's own bytes escaped the same way. So every code point in
U+10FE80..U+10FEFF stands for exactly one raw byte, and

    to_bytes(from_bytes(raw)) == raw        for every raw name

Clients in other languages read a name's bytes by replacing each such code
point by its byte and encoding the rest as UTF-8 (`to_bytes`). Limits (255
bytes, no "/", no NUL) apply to the bytes. `printable` is how a person sees a
name in one line of a terminal. Symlink targets use the same escape.

Must not: know files, paths or gRPC.
"""

from __future__ import annotations

import re

_BASE = 0x10FE00  # code point of raw byte b (0x80..0xFF) is _BASE + b
_FIRST, _LAST = _BASE + 0x80, _BASE + 0xFF
_SURROGATE_BASE = 0xDC00  # Python's surrogateescape puts raw byte b at U+DC00 + b
# UTF-8 of the escape block's code points starts with these two bytes.
_ESCAPE_PREFIX = "\U0010fe80".encode()[:2]
_ESCAPED = re.compile("[\U0010fe80-\U0010feff]")
_UNPRINTABLE = re.compile(r"[\\\x00-\x1f\x7f\U0010fe80-\U0010feff]")


def from_bytes(raw: bytes) -> str:
    """The text a raw name travels as (valid UTF-8 for protobuf)."""
    if _ESCAPE_PREFIX not in raw:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            pass
    out: list[str] = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(chr(_BASE + code - _SURROGATE_BASE))
        elif _FIRST <= code <= _LAST:
            out.extend(chr(_BASE + b) for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out)


def to_bytes(name: str) -> bytes:
    """A name's raw bytes (the inverse of from_bytes)."""
    if not _ESCAPED.search(name):
        return name.encode()
    out = bytearray()
    for ch in name:
        code = ord(ch)
        if _FIRST <= code <= _LAST:
            out.append(code - _BASE)
        else:
            out += ch.encode()
    return bytes(out)


def is_canonical(name: str) -> bool:
    """Whether name is the one text its bytes travel as.

    Escapes that stand for valid UTF-8 ("\\U0010fec3\\U0010fea9" for "é")
    are another spelling of the same bytes: servers refuse them, so that two
    entries never share one name on disk.
    """
    return not _ESCAPED.search(name) or from_bytes(to_bytes(name)) == name


def tagged(name: str, tag: str, limit: int = 255) -> str:
    """name with " (tag)" before its extension, its stem cut to fit in limit bytes.

    'report.txt' + 'restored' -> 'report (restored).txt': programs still
    recognize the file by its extension.
    """
    stem, dot, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        stem, dot, ext = name, "", ""
    tail = f" ({tag}){dot}{ext}"
    room = limit - len(to_bytes(tail))
    while len(stem) > 1 and len(to_bytes(stem)) > room:
        stem = stem[: -max(1, (len(to_bytes(stem)) - room) // 4)]
    return stem + tail


def printable(name: str) -> str:
    """One line for a terminal: raw bytes as \\xNN, control characters escaped."""
    if not _UNPRINTABLE.search(name):
        return name
    out: list[str] = []
    for ch in name:
        code = ord(ch)
        if _FIRST <= code <= _LAST:
            out.append(f"\\x{code - _BASE:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)
