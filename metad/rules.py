"""Pure rules of the namespace: valid names, symlink targets, block lists, modes.

Owns the checks that need no database, so the store applies them before it
opens a transaction and tests can call them directly. No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence

from metad.errors import (
    InvalidArgument,
    InvalidBlocks,
    InvalidName,
    InvalidTarget,
    NameTooLong,
    TooLarge,
)
from metad.models import BlockRef, NodeKind, Ownership
from protos import names

MAX_NAME_BYTES = 255
MAX_TARGET_BYTES = 4095  # PATH_MAX minus the terminating NUL
HASH_BYTES = 32  # BLAKE3-256
PERMISSION_BITS = 0o7777
# The largest file: 128 GiB in at most 2^19 blocks of at most 16 MiB (blockd's
# limit). With ~1 MiB blocks a 128 GiB file has ~131,072; the bounds keep
# every sum far from overflowing a 64-bit integer and a commit's work bounded.
MAX_FILE_BYTES = 128 * 1024**3
MAX_BLOCKS = 2**19
MAX_BLOCK_BYTES = 16 * 1024 * 1024
MAX_REQUEST_ID_CHARS = 128
MAX_ACCESSED_NODES = 1000  # node ids one MarkAccessed names
MAX_RESERVED_IDS = 1_000_000  # node ids one ReserveNodeIds hands out
MAX_BATCH_OPERATIONS = 1000  # changes in one ApplyBatch
MAX_BATCH_BYTES = 16 * 1024 * 1024  # one ApplyBatch request, encoded
SYMLINK_MODE = 0o777


def check_name(name: str) -> None:
    """A directory entry name: 1..255 bytes (protos.names), no '/', no NUL, not '.' or '..'."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidName(f"invalid name {name!r}")
    if not names.is_canonical(name):
        raise InvalidName("a name's escaped bytes must not spell valid UTF-8 (see protos/names.py)")
    if len(names.to_bytes(name)) > MAX_NAME_BYTES:
        raise NameTooLong(f"name longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")


MAX_USER_NAME_CHARS = 64


def check_user_name(name: str) -> None:
    """A login name: 1..64 characters, letters, digits, '.', '_', '-', not starting with '-'."""
    if not name or len(name) > MAX_USER_NAME_CHARS:
        raise InvalidArgument(f"a user name has 1 to {MAX_USER_NAME_CHARS} characters")
    if name.startswith("-") or not all(c.isalnum() or c in "._-" for c in name):
        raise InvalidArgument(f"invalid user name {name!r}: use letters, digits, '.', '_' and '-'")


def symlink_size(target: str) -> int:
    """A symlink's size as lstat shows it: its target's raw bytes."""
    return len(names.to_bytes(target))


def check_symlink_target(target: str) -> None:
    if not target or "\0" in target:
        raise InvalidTarget("a symlink target must be non-empty and contain no NUL")
    if not names.is_canonical(target):
        raise InvalidTarget("a target's escaped bytes must not spell valid UTF-8")
    if len(names.to_bytes(target)) > MAX_TARGET_BYTES:
        raise InvalidTarget(f"symlink target longer than {MAX_TARGET_BYTES} bytes")


def check_hashes(hashes: Sequence[bytes]) -> None:
    """Block hashes named on their own (garbage collection) must be BLAKE3-256."""
    for index, digest in enumerate(hashes):
        if len(digest) != HASH_BYTES:
            raise InvalidBlocks(f"hash {index} is {len(digest)} bytes, not {HASH_BYTES}")


def check_block_count(count: int) -> None:
    """Checked before a commit's block list is even converted (a bound on its cost)."""
    if count > MAX_BLOCKS:
        raise TooLarge(f"{count} blocks in one revision; the limit is {MAX_BLOCKS}")


def check_blocks(size: int, blocks: Sequence[BlockRef]) -> None:
    """Blocks must tile [0, size) in order: contiguous from 0, non-empty, 32-byte hashes.

    And stay within the limits: at most MAX_BLOCKS of at most MAX_BLOCK_BYTES,
    size at most MAX_FILE_BYTES.
    """
    if size < 0:
        raise InvalidBlocks(f"negative size {size}")
    if size > MAX_FILE_BYTES:
        raise TooLarge(f"a file is at most {MAX_FILE_BYTES} bytes (128 GiB), not {size}")
    check_block_count(len(blocks))
    expected_offset = 0
    for index, block in enumerate(blocks):
        if len(block.hash) != HASH_BYTES:
            raise InvalidBlocks(f"block {index}: hash is {len(block.hash)} bytes, not {HASH_BYTES}")
        if block.offset != expected_offset:
            raise InvalidBlocks(
                f"block {index}: offset {block.offset}, expected {expected_offset} (not contiguous)"
            )
        if not 0 < block.size <= MAX_BLOCK_BYTES:
            raise InvalidBlocks(
                f"block {index}: size {block.size} is not between 1 and {MAX_BLOCK_BYTES}"
            )
        expected_offset += block.size
    if expected_offset != size:
        raise InvalidBlocks(f"blocks cover {expected_offset} bytes, the revision has {size}")


MAX_ID = 2**32 - 1  # uid and gid are 32-bit
# Stored as a signed 64-bit integer; FUSE hands a mount 32-bit device numbers, so
# only a hostile or broken client sends more (it got an internal error before).
MAX_RDEV = 2**63 - 1


def check_ownership(owner: Ownership) -> None:
    for what, value in (("uid", owner.uid), ("gid", owner.gid)):
        if value is not None and not 0 <= value <= MAX_ID:
            raise InvalidArgument(f"{what} {value} is not between 0 and {MAX_ID}")


def check_special(kind: NodeKind, rdev: int) -> None:
    """MakeNode makes special files only; only devices have a device number."""
    if not kind.special:
        raise InvalidArgument(f"MakeNode makes FIFOs, devices and sockets, not a {kind.value}")
    if not 0 <= rdev <= MAX_RDEV:
        raise InvalidArgument(f"device number {rdev} is not between 0 and {MAX_RDEV}")
    if rdev and kind not in (NodeKind.CHAR_DEVICE, NodeKind.BLOCK_DEVICE):
        raise InvalidArgument("only a device has a device number")


def check_reservation(count: int) -> None:
    if not 1 <= count <= MAX_RESERVED_IDS:
        raise InvalidArgument(f"reserve 1 to {MAX_RESERVED_IDS:,} node ids at a time, not {count}")


def check_batch(operations: int, size: int) -> None:
    """An ApplyBatch is bounded as a whole: a longer journal goes in several."""
    if operations > MAX_BATCH_OPERATIONS:
        raise InvalidArgument(
            f"{operations} operations in one batch; the limit is {MAX_BATCH_OPERATIONS:,}"
        )
    if size > MAX_BATCH_BYTES:
        raise InvalidArgument(
            f"a batch of {size:,} bytes; the limit is {MAX_BATCH_BYTES:,} bytes (send several)"
        )


def check_request_id(request_id: str) -> None:
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument(f"a request id has at most {MAX_REQUEST_ID_CHARS} characters")


def permission_bits(mode: int) -> int:
    """Keeps only permission bits, so callers may pass a full st_mode."""
    return mode & PERMISSION_BITS
