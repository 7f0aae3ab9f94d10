"""The codec wrapper's object format and the key file, in-process.

The conformance suite (test_blockd_backend.py) runs the codec over the local
and the S3 backend like any backend; here it wraps an in-memory backend so
the tests can read and damage the stored bytes: the header, what is and is
not compressed, that any damaged or truncated byte is ObjectCorrupt, the
binding of an object to its key, master-key rotation, the key check at open,
and that large objects are encoded off the event loop. Then the key file:
creation (0600), rotation, and refusal of bad or too open files, never
showing a key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import stat
import string
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from blockd import keys
from blockd.backends import codec as codec_module
from blockd.backends.base import (
    BackendSetupError,
    ObjectCorrupt,
)
from blockd.backends.codec import (
    FLAG_COMPRESSED,
    HEADER_BYTES,
    MAGIC,
    OVERHEAD_BYTES,
    CodecBackend,
)
from blockd.backends.memory import MemoryBackend
from blockd.keys import KeyFileError, Keyring, MasterKey

MiB = 1024 * 1024


def keyring(*master_keys: MasterKey) -> Keyring:
    return Keyring(master_keys, master_keys[-1])


def text_like(size: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(3000)]
    return " ".join(rng.choices(words, k=size // 5)).encode()[:size]


def run(scenario: Callable[[CodecBackend, MemoryBackend], Awaitable[None]]) -> None:
    async def main() -> None:
        memory = MemoryBackend()
        await scenario(CodecBackend(memory, keyring(keys.new_master_key())), memory)

    asyncio.run(main())


# --- the object format ---------------------------------------------------------------------


def test_random_data_is_stored_encrypted_as_is_behind_an_82_byte_header() -> None:
    data = os.urandom(100_000)

    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        assert await codec.put("k", data) == len(data) + OVERHEAD_BYTES
        blob = memory.objects["k"]
        assert len(blob) == len(data) + 82
        assert blob[:4] == MAGIC
        assert blob[4] == 1  # format version
        assert blob[5] == 0  # not compressed
        assert blob[6:14] == codec.keyring.current.id
        assert data[:32] not in blob and data[-32:] not in blob
        assert await codec.get("k") == data

    run(scenario)


def test_text_is_compressed_then_encrypted() -> None:
    data = text_like(MiB)

    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        size = await codec.put("k", data)
        blob = memory.objects["k"]
        assert size == len(blob) < len(data) // 2
        assert blob[5] == FLAG_COMPRESSED
        assert data[:32] not in blob
        assert await codec.get("k") == data

    run(scenario)


def test_each_object_has_its_own_data_key_and_nonce() -> None:
    data = b"the same data" * 100

    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        await codec.put("a", data)
        await codec.put("b", data)
        a, b = memory.objects["a"], memory.objects["b"]
        assert a[14:54] != b[14:54]  # wrapped data keys
        assert a[54:66] != b[54:66]  # nonces
        assert a[HEADER_BYTES:] != b[HEADER_BYTES:]

    run(scenario)


def test_empty_and_tiny_objects_round_trip() -> None:
    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        for n, data in enumerate([b"", b"x", b"\0" * 20]):
            await codec.put(f"k{n}", data)
            assert await codec.get(f"k{n}") == data

    run(scenario)


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (0, "not an encoded object"),  # magic
        (4, "format version 0 is unknown"),  # version 1 → 0
        (5, "unknown flags"),
        (6, "master key [0-9a-f]{16}, which the key file lacks"),
        (20, "does not unwrap"),  # wrapped data key
        (60, "failed authentication"),  # nonce
        (HEADER_BYTES + 1000, "failed authentication"),  # ciphertext
        (-1, "failed authentication"),  # tag
    ],
    ids=["magic", "version", "flags", "key-id", "wrapped-key", "nonce", "ciphertext", "tag"],
)
def test_a_flipped_byte_anywhere_is_object_corrupt(offset: int, message: str) -> None:
    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        await codec.put("k", text_like(100_000))
        blob = bytearray(memory.objects["k"])
        blob[offset] ^= 0x01 if offset != 5 else 0x80
        memory.objects["k"] = bytes(blob)
        with pytest.raises(ObjectCorrupt, match=message) as info:
            await codec.get("k")
        assert info.value.key == "k"

    run(scenario)


def test_a_truncated_or_extended_object_is_object_corrupt() -> None:
    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        await codec.put("k", os.urandom(50_000))
        whole = memory.objects["k"]
        for length in [0, 3, 4, 5, 40, HEADER_BYTES, OVERHEAD_BYTES - 1, OVERHEAD_BYTES + 9]:
            memory.objects["k"] = whole[:length]
            with pytest.raises(ObjectCorrupt, match=r"truncated|failed authentication"):
                await codec.get("k")
        for damaged in [whole[:-1], whole + b"\0"]:
            memory.objects["k"] = damaged
            with pytest.raises(ObjectCorrupt, match="failed authentication"):
                await codec.get("k")

    run(scenario)


def test_a_newer_format_version_is_refused_by_name() -> None:
    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        await codec.put("k", b"data")
        memory.objects["k"] = MAGIC + bytes([2]) + memory.objects["k"][5:]
        with pytest.raises(ObjectCorrupt, match="format version 2 is unknown"):
            await codec.get("k")

    run(scenario)


def test_an_object_moved_to_another_key_does_not_decode() -> None:
    async def scenario(codec: CodecBackend, memory: MemoryBackend) -> None:
        await codec.put("a", b"contents of a")
        memory.objects["b"] = memory.objects["a"]
        with pytest.raises(ObjectCorrupt, match="failed authentication"):
            await codec.get("b")

    run(scenario)


def test_after_rotation_objects_of_every_key_read_back() -> None:
    first, second = keys.new_master_key(), keys.new_master_key()

    async def main() -> None:
        memory = MemoryBackend()
        await CodecBackend(memory, keyring(first)).put("old", b"written with the first key")
        rotated = CodecBackend(memory, keyring(first, second))
        await rotated.put("new", b"written with the second key")
        assert memory.objects["old"][6:14] == first.id
        assert memory.objects["new"][6:14] == second.id
        assert await rotated.get("old") == b"written with the first key"
        assert await rotated.get("new") == b"written with the second key"
        with pytest.raises(ObjectCorrupt, match=f"master key {second.name}, which the key file"):
            await CodecBackend(memory, keyring(first)).get("new")

    asyncio.run(main())


def test_a_different_key_under_the_same_id_is_caught() -> None:
    real = keys.new_master_key()
    impostor = MasterKey(real.id, os.urandom(32))

    async def main() -> None:
        memory = MemoryBackend()
        await CodecBackend(memory, keyring(real)).put("k", b"data")
        with pytest.raises(ObjectCorrupt, match="does not unwrap"):
            await CodecBackend(memory, keyring(impostor)).get("k")
        with pytest.raises(BackendSetupError, match="key file does not fit"):
            await CodecBackend.open(memory, keyring(impostor))

    asyncio.run(main())


def test_open_checks_the_keyring_against_stored_objects() -> None:
    mine, other = keys.new_master_key(), keys.new_master_key()

    async def main() -> None:
        memory = MemoryBackend()
        await CodecBackend.open(memory, keyring(other))  # empty: nothing to check
        await CodecBackend(memory, keyring(mine)).put("k", b"data")
        await CodecBackend.open(memory, keyring(mine))
        await CodecBackend.open(memory, keyring(other, mine))
        with pytest.raises(BackendSetupError, match=f"{mine.name}, which the key file lacks"):
            await CodecBackend.open(memory, keyring(other))
        memory.objects.clear()
        memory.objects["k"] = b"a plain block"
        with pytest.raises(BackendSetupError, match="not encoded"):
            await CodecBackend.open(memory, keyring(mine))

    asyncio.run(main())


def test_large_objects_are_encoded_and_decoded_off_the_event_loop(monkeypatch) -> None:
    """The loop keeps serving other calls while a big block is (de)compressed and
    (de)crypted: the work runs in another thread (a small one may run on the loop)."""
    data = text_like(16 * MiB)
    threads: dict[str, set[int]] = {"encode": set(), "decode": set()}
    for step, name in (("encode", "_encode"), ("decode", "_decode")):
        real = getattr(codec_module, name)

        def spy(*args, _real=real, _step=step):
            threads[_step].add(threading.get_ident())
            return _real(*args)

        monkeypatch.setattr(codec_module, name, spy)

    async def main() -> None:
        codec = CodecBackend(MemoryBackend(), keyring(keys.new_master_key()))
        await codec.put("k", data)
        assert await codec.get("k") == data
        await codec.put("small", b"tiny")
        assert await codec.get("small") == b"tiny"
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads["encode"] and threads["decode"]
    # The 16 MiB object went to a worker; only a small one may have run on the loop.
    assert threads["encode"] - {loop_thread} and threads["decode"] - {loop_thread}


# --- the key file -------------------------------------------------------------------------


def test_a_new_key_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    created = keys.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load(path) == created
    doc = json.loads(path.read_text())
    assert doc["current"] == created.current.name
    assert base64.b64decode(doc["keys"][0]["key"]) == created.current.secret
    assert [p.name for p in tmp_path.iterdir()] == ["keys.json"]  # no temp file left


def test_a_key_never_shows_in_a_repr(tmp_path: Path) -> None:
    ring = keys.create(tmp_path / "keys.json")
    secret = ring.current.secret
    for text in (repr(ring), repr(ring.current), str(ring)):
        assert secret.hex() not in text
        assert base64.b64encode(secret).decode() not in text
        assert repr(secret) not in text


def test_an_existing_key_file_is_never_overwritten_by_create(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = keys.create(path)
    with pytest.raises(KeyFileError, match="already exists"):
        keys.create(path)
    assert keys.load(path) == first


def test_rotation_appends_a_current_key_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = keys.create(path)
    rotated, new = keys.add_key(path)
    assert rotated.current == new != first.current
    assert rotated.keys == (first.current, new)
    assert keys.load(path) == rotated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyFileError, match="not found"):
        keys.add_key(tmp_path / "absent.json")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o002])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    keys.create(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=rf"mode {mode:04o}\); run: chmod 600"):
        keys.load(path)


def _valid_doc(ring: Keyring) -> dict:
    return {
        "format": "drivefs-blockd-keys",
        "version": 1,
        "current": ring.current.name,
        "keys": [{"id": k.name, "key": base64.b64encode(k.secret).decode()} for k in ring.keys],
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda doc: "not json {", "not JSON"),
        (lambda doc: {**doc, "format": "other"}, "format"),
        (lambda doc: {**doc, "version": 2}, "format version 2.*upgrade blockd"),
        (lambda doc: {**doc, "keys": []}, "non-empty list"),
        (lambda doc: {**doc, "current": "00" * 8}, '"current"'),
        (lambda doc: {**doc, "keys": [{**doc["keys"][0], "id": "xyz"}]}, '"id"'),
        (lambda doc: {**doc, "keys": [{**doc["keys"][0], "key": "c2hvcnQ="}]}, "32 bytes"),
        (lambda doc: {**doc, "keys": [{**doc["keys"][0], "key": "!!"}]}, "32 bytes"),
        (lambda doc: {**doc, "keys": doc["keys"] * 2}, "appears twice"),
    ],
    ids=["json", "format", "version", "no-keys", "current", "id", "short-key", "base64", "dup"],
)
def test_a_malformed_key_file_is_refused_without_showing_keys(
    tmp_path: Path, damage: Callable[[dict], object], message: str
) -> None:
    path = tmp_path / "keys.json"
    ring = keys.create(path)
    doc = damage(_valid_doc(ring))
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(KeyFileError, match=message) as info:
        keys.load(path)
    assert str(path) in str(info.value)
    assert base64.b64encode(ring.current.secret).decode() not in str(info.value)
