"""A wrapper that compresses and encrypts every object of the backend it holds.

Owns the stored object format (version 1), all big-endian:

    offset  size  field
         0     4  magic b"DFSb"
         4     1  format version (1)
         5     1  flags: bit 0 = payload is zstandard-compressed; other bits must be 0
         6     8  id of the master key (see blockd.keys)
        14    40  the object's data key, wrapped with that master key (AES key wrap, RFC 3394)
        54    12  AES-GCM nonce
        66     n  AES-256-GCM ciphertext of the payload (the data, compressed or not)
      66+n    16  GCM tag

Every object gets a fresh random 256-bit data key (envelope encryption), so
rotating the master key means only that new objects name the new key. The
GCM associated data is the 66-byte header followed by the object key, so a
changed header byte, a truncation, or an object copied under another key
fails authentication; a failure of any kind is ObjectCorrupt, never bytes.
The payload is compressed (zstandard, level 3) only when that saves at least
1/64 of it: random data and media are stored as they are, 82 bytes larger
(a block of 256 KiB or more whose samples do not shrink is not even tried).

Must not: know what objects hold (blocks, hashes) or which backend it wraps;
hold key material anywhere but in the keyring; run compression or crypto of
more than a few KiB on the event loop (worker threads; zstandard and
cryptography release the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
from collections.abc import Sequence
from functools import partial
from typing import Literal

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from blockd.backends.base import (
    Backend,
    BackendError,
    BackendSetupError,
    Bytes,
    ObjectCorrupt,
    ObjectNotFound,
    WrappingBackend,
    check_key,
)
from blockd.keys import KEY_ID_BYTES, Keyring
from protos.runtime import uninitialized_bytearray

MAGIC = b"DFSb"
FORMAT_VERSION = 1
FLAG_COMPRESSED = 0x01
_KNOWN_FLAGS = FLAG_COMPRESSED

_DATA_KEY_BYTES = 32
_WRAPPED_KEY_BYTES = _DATA_KEY_BYTES + 8  # RFC 3394 adds one 64-bit block
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER = struct.Struct(f">4sBB{KEY_ID_BYTES}s{_WRAPPED_KEY_BYTES}s{_NONCE_BYTES}s")
HEADER_BYTES = _HEADER.size  # 66
OVERHEAD_BYTES = HEADER_BYTES + _TAG_BYTES  # 82: what an uncompressed object adds

ZSTD_LEVEL = 3
# Below this, compressing and encrypting (tens of µs) costs less than a thread hop.
_INLINE_BYTES = 16 * 1024
# Blocks from this size are probed first (see _may_compress): 4 samples of 16 KiB.
_PROBE_FROM_BYTES = 256 * 1024
_PROBE_SAMPLES = 4
_PROBE_BYTES = 16 * 1024
# How many objects `open` decodes to check that the keyring fits the store.
_KEY_CHECK_SAMPLE = 3

_local = threading.local()
_ENCRYPT_INTO = hasattr(AESGCM, "encrypt_into")  # cryptography >= 45
_DECRYPT_INTO = hasattr(AESGCM, "decrypt_into")

PLAIN_STORE = (
    "the store holds objects that are not encoded (plain blocks written without "
    "encryption); serve it with encryption off (--no-encryption)"
)


class _Corrupt(Exception):
    """Thread-side: why an object cannot be decoded (becomes ObjectCorrupt)."""


class _NotEncoded(_Corrupt):
    """The object does not even start like an encoded one: a plain object."""


class _NotForUs(_Corrupt):
    """Likely intact, but not readable here: a master key we lack, or a newer format."""


class CodecBackend(WrappingBackend):
    """zstd + AES-256-GCM around self.backend; obtain one with `await CodecBackend.open(...)`."""

    authenticates_objects = True  # the GCM tag covers the object key (see the format above)

    def __init__(self, backend: Backend, keyring: Keyring, *, level: int = ZSTD_LEVEL) -> None:
        super().__init__(backend)
        self.keyring = keyring
        self._level = level

    @classmethod
    async def open(
        cls, backend: Backend, keyring: Keyring, *, level: int = ZSTD_LEVEL
    ) -> CodecBackend:
        """Wraps backend after checking, on a few stored objects, that keyring can read them.

        Raises BackendSetupError when the store holds objects of another format
        (plain blocks of a blockd without the codec) or written with master
        keys the keyring lacks (the wrong key file).
        """
        codec = cls(backend, keyring, level=level)
        await codec._check_keyring()
        return codec

    async def get(self, key: str) -> bytes | bytearray:
        check_key(key)
        try:
            # Decoded in the thread that read it, if the backend reads in threads.
            return await self.backend.get_then(key, partial(_decode, self.keyring, key))
        except _Corrupt as exc:
            raise ObjectCorrupt(key, str(exc), damaged=not isinstance(exc, _NotForUs)) from None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | bytearray | BackendError]:
        for key in keys:
            check_key(key)
        # A run decoded in the thread job that reads it, if the backend reads runs so.
        return await self.backend.get_many_then(keys, partial(_decode_checked, self.keyring))

    async def put(self, key: str, data: Bytes) -> int:
        check_key(key)
        if len(data) <= _INLINE_BYTES:
            return await self.backend.put(key, _encode(self.keyring, key, data, self._level))
        # Encoded in the thread that writes it, if the backend writes in threads.
        return await self.backend.put_made(
            key, partial(_encode, self.keyring, key, data, self._level)
        )

    async def put_many(self, items: Sequence[tuple[str, Bytes]]) -> list[int | BackendError]:
        for key, _ in items:
            check_key(key)
        # Encoded in the thread job that writes the group, if the backend writes groups so.
        encode = partial(_encode_keyed, self.keyring, self._level)
        return await self.backend.put_many_made(items, encode)

    async def _check_keyring(self) -> None:
        keys: list[str] = []
        async with contextlib.aclosing(self.backend.list_objects()) as listing:
            async for info in listing:
                keys.append(info.key)
                if len(keys) == _KEY_CHECK_SAMPLE:
                    break
        problems: list[tuple[str, _Corrupt]] = []
        for key in keys:
            try:
                blob = await self.backend.get(key)
            except (ObjectNotFound, ObjectCorrupt):
                continue  # gone meanwhile or unreadable: not the keyring's fault
            try:
                await asyncio.to_thread(_unwrap_data_key, self.keyring, blob)
                return  # one object the keyring reads is proof enough
            except _Corrupt as exc:
                problems.append((key, exc))
        if any(isinstance(problem, _NotEncoded) for _, problem in problems):
            raise BackendSetupError(PLAIN_STORE)
        if problems:
            key, problem = problems[0]
            raise BackendSetupError(
                f"the key file does not fit the stored objects (object {key}: {problem}); "
                "is it the key file this store was written with?"
            )


async def first_object_kind(backend: Backend) -> Literal["none", "plain", "encoded"]:
    """Whether backend holds no object, or what its first one looks like (by its magic)."""
    async with contextlib.aclosing(backend.list_objects()) as listing:
        async for info in listing:
            try:
                blob = await backend.get(info.key)
            except (ObjectNotFound, ObjectCorrupt):
                continue
            return "encoded" if blob.startswith(MAGIC) else "plain"
    return "none"


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """One compressor per thread and level: they are not thread-safe, and costly to create."""
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _may_compress(data: Bytes) -> bool:
    """Whether a few samples of data shrink at all (at zstd's fastest level).

    Random data and media (most of a big file's bytes) do not: a probe of 1/16
    of a block costs a few percent of compressing all of it for nothing.
    """
    if len(data) < _PROBE_FROM_BYTES:
        return True
    step = len(data) // _PROBE_SAMPLES
    sample = b"".join(data[i * step : i * step + _PROBE_BYTES] for i in range(_PROBE_SAMPLES))
    return len(_zstd_compressor(1).compress(sample)) < len(sample) - len(sample) // 64


def _encode(keyring: Keyring, key: str, data: Bytes, level: int) -> Bytes:
    flags = 0
    payload = data
    if data and _may_compress(data):
        compressed = _zstd_compressor(level).compress(data)
        if len(compressed) <= len(data) - len(data) // 64 - 1:
            payload, flags = compressed, FLAG_COMPRESSED
    master = keyring.current
    data_key = AESGCM.generate_key(bit_length=8 * _DATA_KEY_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, flags, master.id, aes_key_wrap(master.secret, data_key), nonce
    )
    aead = AESGCM(data_key)
    if not _ENCRYPT_INTO:
        return header + aead.encrypt(nonce, payload, header + key.encode())
    # Sealed in place after the header: no second copy of a megabyte to join the two.
    blob = bytearray(HEADER_BYTES + len(payload) + _TAG_BYTES)
    blob[:HEADER_BYTES] = header
    aead.encrypt_into(nonce, payload, header + key.encode(), memoryview(blob)[HEADER_BYTES:])
    return blob


def _encode_keyed(keyring: Keyring, level: int, key: str, data: Bytes) -> Bytes:
    """_encode, in the argument order of put_many_made's make."""
    return _encode(keyring, key, data, level)


def _parse_header(blob: Bytes) -> tuple[int, bytes, bytes, bytes]:
    """(flags, master key id, wrapped data key, nonce); refuses what version 1 does not know."""
    head, size = bytes(blob[:HEADER_BYTES]), len(blob)  # (blob may be a view)
    if not head.startswith(MAGIC):
        if MAGIC.startswith(head):
            raise _Corrupt(f"truncated: {size} bytes")
        raise _NotEncoded(f"not an encoded object (no {MAGIC!r} header)")
    if size > len(MAGIC) and head[len(MAGIC)] != FORMAT_VERSION:
        raise _NotForUs(
            f"object format version {head[len(MAGIC)]} is unknown to this blockd "
            f"(it reads version {FORMAT_VERSION})"
        )
    if size < OVERHEAD_BYTES:
        raise _Corrupt(f"truncated: {size} bytes, less than the {OVERHEAD_BYTES} overhead")
    _, _, flags, key_id, wrapped, nonce = _HEADER.unpack_from(head)
    if flags & ~_KNOWN_FLAGS:
        raise _NotForUs(f"unknown flags {flags:#04x} (a newer blockd?)")
    return flags, key_id, wrapped, nonce


def _unwrap_data_key(keyring: Keyring, blob: Bytes) -> tuple[int, bytes, bytes]:
    """(flags, data key, nonce) of an object; raises _Corrupt."""
    flags, key_id, wrapped, nonce = _parse_header(blob)
    master = keyring.get(key_id)
    if master is None:
        raise _NotForUs(f"written with master key {key_id.hex()}, which the key file lacks")
    try:
        data_key = aes_key_unwrap(master.secret, wrapped)
    except InvalidUnwrap:
        raise _Corrupt(
            f"its data key does not unwrap with master key {key_id.hex()} "
            "(a damaged header, or a different key under that id)"
        ) from None
    return flags, data_key, nonce


def _decode_checked(keyring: Keyring, key: str, blob: Bytes) -> bytes | bytearray:
    """_decode, its failure an ObjectCorrupt (as get raises it)."""
    try:
        return _decode(keyring, key, blob)
    except _Corrupt as exc:
        raise ObjectCorrupt(key, str(exc), damaged=not isinstance(exc, _NotForUs)) from None


def _decode(keyring: Keyring, key: str, blob: Bytes) -> bytes | bytearray:
    """The data of an object (blob: its bytes, or a view of them); raises _Corrupt."""
    flags, data_key, nonce = _unwrap_data_key(keyring, blob)
    view = memoryview(blob)
    sealed, aad = view[HEADER_BYTES:], bytes(view[:HEADER_BYTES]) + key.encode()
    payload: bytes | bytearray
    try:
        if _DECRYPT_INTO and not flags & FLAG_COMPRESSED:
            # The data itself: opened into a buffer of its own, not zero-filled first.
            payload = uninitialized_bytearray(len(sealed) - _TAG_BYTES)
            AESGCM(data_key).decrypt_into(nonce, sealed, aad, payload)
        else:
            payload = AESGCM(data_key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise _Corrupt("failed authentication (damaged or truncated)") from None
    if not flags & FLAG_COMPRESSED:
        return payload
    try:
        return zstandard.ZstdDecompressor().decompress(payload)
    except zstandard.ZstdError as exc:
        # Authenticated yet undecodable: written by a broken encoder, not damaged at rest.
        raise _Corrupt(f"authenticated but not decompressible: {exc}") from None
