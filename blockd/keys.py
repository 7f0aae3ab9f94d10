"""Master keys of the codec: the key file, its format, creation and rotation.

Owns the key file (default DATA/keys.json, mode 0600, written by temp file,
fsync and rename):

    {
      "format": "drivefs-blockd-keys",
      "version": 1,
      "current": "<id>",                  # the key new objects are written with
      "keys": [                           # every key objects may be written with
        {"id": "<16 hex digits>", "created": "<ISO 8601 UTC>", "key": "<base64, 32 bytes>"}
      ]
    }

An id is 8 random bytes; a stored object names its master key by id, so a
rotation (`add_key`) only appends a key and makes it current: older objects
stay readable as long as their key stays in the file.

Must not: let key material reach a log line, an exception message or a repr
(MasterKey hides it); encrypt anything (the codec does); accept a key file
others can read (a one-line KeyFileError says how to fix it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FORMAT_NAME = "drivefs-blockd-keys"
FORMAT_VERSION = 1
DEFAULT_NAME = "keys.json"

KEY_ID_BYTES = 8
MASTER_KEY_BYTES = 32  # AES-256


class KeyFileError(Exception):
    """The key file is missing, unreadable, malformed or too open; the message is for the user."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    id: bytes  # KEY_ID_BYTES, as stored in every object's header
    secret: bytes = field(repr=False)  # MASTER_KEY_BYTES; never logged
    created: str = ""

    @property
    def name(self) -> str:
        """The id as the key file and log lines spell it."""
        return self.id.hex()


@dataclass(frozen=True, slots=True)
class Keyring:
    """Every master key of a key file; `current` is the one to write with."""

    keys: tuple[MasterKey, ...]
    current: MasterKey

    def get(self, key_id: bytes) -> MasterKey | None:
        return next((key for key in self.keys if key.id == key_id), None)


def new_master_key() -> MasterKey:
    return MasterKey(
        id=secrets.token_bytes(KEY_ID_BYTES),
        secret=secrets.token_bytes(MASTER_KEY_BYTES),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def load(path: Path) -> Keyring:
    """Reads and checks a key file. Raises KeyFileError."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise KeyFileError(f"key file {path} is not a regular file")
            if mode & 0o077:
                raise KeyFileError(
                    f"key file {path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
                )
            raw = f.read()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} not found (create one: blockd rotate-key --new --key-file {path})"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    return _parse(path, raw)


def create(path: Path) -> Keyring:
    """Writes a new key file with one fresh master key. Raises KeyFileError if one exists."""
    key = new_master_key()
    keyring = Keyring((key,), key)
    _write(path, keyring, exclusive=True)
    return keyring


def add_key(path: Path) -> tuple[Keyring, MasterKey]:
    """Rotation: appends a fresh master key to the key file and makes it current.

    Objects already stored keep naming their old key, which stays in the
    file. A running blockd writes with the new key after its next start.
    """
    keyring = load(path)
    key = new_master_key()
    rotated = Keyring((*keyring.keys, key), key)
    _write(path, rotated, exclusive=False)
    return rotated, key


def _parse(path: Path, raw: bytes) -> Keyring:
    def bad(why: str) -> KeyFileError:
        return KeyFileError(f"key file {path} is not valid: {why}")

    try:
        doc = json.loads(raw)
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise bad(f'no "format": "{FORMAT_NAME}"')
    version = doc.get("version")
    if not isinstance(version, int):
        raise bad('no integer "version"')
    if version > FORMAT_VERSION:
        raise KeyFileError(
            f"key file {path} has format version {version}; this blockd knows only up to "
            f"{FORMAT_VERSION} (upgrade blockd)"
        )
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise bad('"keys" must be a non-empty list')
    keys: list[MasterKey] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"key #{n} is not an object")
        key_id = _parse_id(entry.get("id"))
        if key_id is None:
            raise bad(f'key #{n}: "id" must be {2 * KEY_ID_BYTES} hex digits')
        secret = _parse_secret(entry.get("key"))
        if secret is None:
            raise bad(f'key {key_id.hex()}: "key" must be {MASTER_KEY_BYTES} bytes in base64')
        if any(k.id == key_id for k in keys):
            raise bad(f"key id {key_id.hex()} appears twice")
        keys.append(MasterKey(key_id, secret, str(entry.get("created", ""))))
    current_id = _parse_id(doc.get("current"))
    current = next((k for k in keys if k.id == current_id), None)
    if current is None:
        raise bad('"current" must be the id of one of its keys')
    return Keyring(tuple(keys), current)


def _parse_id(value: object) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * KEY_ID_BYTES:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _parse_secret(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        secret = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return secret if len(secret) == MASTER_KEY_BYTES else None


def _write(path: Path, keyring: Keyring, *, exclusive: bool) -> None:
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "current": keyring.current.name,
        "keys": [
            {"id": k.name, "created": k.created, "key": base64.b64encode(k.secret).decode()}
            for k in keyring.keys
        ],
    }
    body = (json.dumps(doc, indent=2) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 from the start: the key is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)  # fails if a key file appeared meanwhile: never overwrite keys
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; not overwriting it") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
