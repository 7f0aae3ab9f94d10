"""drive.v1.Block and UploadRequest straight from and to the bytes on the wire.

A block is a megabyte or so. protobuf's parser copies it into the message,
and reading the field copies it out again; serializing copies it twice more;
all of it under the GIL, and in blockd on its one event loop thread. For
peers moving blocks at disk speed that is most of their work. Both messages
are the same two bytes fields (hash = 1, data = 2), so the parties moving
blocks read and write them here instead, by the protobuf wire format (a
varint key, then for bytes a varint length): data read is a view of the
received bytes, never a copy, and data written is copied once.
"""

from __future__ import annotations

_HASH_FIELD = 1
_DATA_FIELD = 2
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class MalformedMessage(ValueError):
    """The bytes are not a protobuf message."""


def block_bytes(digest: bytes, data: bytes | memoryview) -> bytes:
    """A serialized drive.v1.Block (or UploadRequest) of these fields."""
    return b"".join(
        (
            _key(_HASH_FIELD),
            _varint_bytes(len(digest)),
            digest,
            _key(_DATA_FIELD),
            _varint_bytes(len(data)),
            data,
        )
    )


def read_block(raw: bytes) -> tuple[bytes, memoryview]:
    """(hash, data) of a serialized drive.v1.Block or UploadRequest; data is a view into raw.

    Follows protobuf's rules: fields in any order, the last of a repeated
    scalar field wins, unknown fields are skipped. Raises MalformedMessage.
    """
    view = memoryview(raw)
    digest, data = b"", view[0:0]
    pos, end = 0, len(raw)
    while pos < end:
        key, pos = _varint(raw, pos)
        field, wire = key >> 3, key & 7
        if wire == _LENGTH:
            size, pos = _varint(raw, pos)
            if pos + size > end:
                raise MalformedMessage("a field runs past the end of the message")
            if field == _HASH_FIELD:
                digest = bytes(view[pos : pos + size])
            elif field == _DATA_FIELD:
                data = view[pos : pos + size]
            pos += size
        elif wire == _VARINT:
            _, pos = _varint(raw, pos)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        else:
            raise MalformedMessage(f"wire type {wire} is not one a Block may hold")
    if pos != end:
        raise MalformedMessage("a field runs past the end of the message")
    return digest, data


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(raw) or shift > 63:
            raise MalformedMessage("a varint runs past the end of the message")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _key(field: int) -> bytes:
    return _varint_bytes(field << 3 | _LENGTH)


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
