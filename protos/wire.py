"""drive.v1.Block, UploadRequest and UploadPack straight from and to the bytes on the wire.

A block is a megabyte or so. protobuf's parser copies it into the message,
and reading the field copies it out again; serializing copies it twice more;
all of it under the GIL, and in blockd on its one event loop thread. For
peers moving blocks at disk speed that is most of their work. Both messages
are the same two bytes fields (hash = 1, data = 2), so the parties moving
blocks read and write them here instead, by the protobuf wire format (a
varint key, then for bytes a varint length): data read is a view of the
received bytes, never a copy, and data written is copied once. An
UploadPack is UploadRequests in its field 1, read and written the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

_HASH_FIELD = 1
_DATA_FIELD = 2
_PACK_FIELD = 1  # UploadPack.blocks
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class MalformedMessage(ValueError):
    """The bytes are not a protobuf message."""


class TooManyBlocks(ValueError):
    """An UploadPack holds more blocks than the reader accepts."""


def block_bytes(digest: bytes, data: bytes | memoryview) -> bytes:
    """A serialized drive.v1.Block (or UploadRequest) of these fields."""
    return b"".join(_block_parts(digest, data))


def read_block(raw: bytes | memoryview) -> tuple[bytes, memoryview]:
    """(hash, data) of a serialized drive.v1.Block or UploadRequest; data is a view into raw.

    Follows protobuf's rules: fields in any order, the last of a repeated
    scalar field wins, unknown fields are skipped. Raises MalformedMessage.
    """
    view = memoryview(raw)
    digest, data = b"", view[0:0]
    for field, start, stop in _length_fields(raw, "a Block"):
        if field == _HASH_FIELD:
            digest = bytes(view[start:stop])
        elif field == _DATA_FIELD:
            data = view[start:stop]
    return digest, data


def pack_bytes(blocks: list[tuple[bytes, bytes | memoryview]]) -> bytes:
    """A serialized drive.v1.UploadPack of these blocks (their data copied once)."""
    parts: list[bytes | memoryview] = []
    for digest, data in blocks:
        block = _block_parts(digest, data)
        parts += (_key(_PACK_FIELD), _varint_bytes(sum(len(part) for part in block)), *block)
    return b"".join(parts)


def read_pack(raw: bytes, max_blocks: int) -> list[tuple[bytes, memoryview]]:
    """The (hash, data) of a serialized drive.v1.UploadPack, each data a view into raw.

    Raises TooManyBlocks past max_blocks (before reading further), MalformedMessage.
    """
    view = memoryview(raw)
    blocks: list[tuple[bytes, memoryview]] = []
    for field, start, stop in _length_fields(raw, "a pack"):
        if field == _PACK_FIELD:
            if len(blocks) == max_blocks:
                raise TooManyBlocks(f"over {max_blocks} blocks in one pack")
            blocks.append(read_block(view[start:stop]))
    return blocks


def _block_parts(digest: bytes, data: bytes | memoryview) -> list[bytes | memoryview]:
    """A Block's fields as wire bytes: its keys, lengths and digest, then data itself."""
    return [
        _key(_HASH_FIELD),
        _varint_bytes(len(digest)),
        digest,
        _key(_DATA_FIELD),
        _varint_bytes(len(data)),
        data,
    ]


def _length_fields(raw: bytes | memoryview, what: str) -> Iterator[tuple[int, int, int]]:
    """(field, start, stop) of each length-delimited field of a message, in order; the
    other wire types are skipped. Raises MalformedMessage (naming what) for bytes that
    are not a message."""
    pos, end = 0, len(raw)
    while pos < end:
        key, pos = _varint(raw, pos)
        field, wire = key >> 3, key & 7
        if wire == _LENGTH:
            size, pos = _varint(raw, pos)
            if pos + size > end:
                raise MalformedMessage("a field runs past the end of the message")
            yield field, pos, pos + size
            pos += size
        elif wire == _VARINT:
            _, pos = _varint(raw, pos)
        elif wire == _FIXED64:
            pos += 8
        elif wire == _FIXED32:
            pos += 4
        else:
            raise MalformedMessage(f"wire type {wire} is not one {what} may hold")
    if pos != end:
        raise MalformedMessage("a field runs past the end of the message")


def _varint(raw: bytes | memoryview, pos: int) -> tuple[int, int]:
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
