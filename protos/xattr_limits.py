"""Limits of extended attributes: metad enforces them; a mount checks what it keeps in
its journal offline against the same ones, so nothing it accepted is refused later.

Names are namespaced as on Linux (user., trusted., security.) or are the POSIX
ACLs; a value is at most 64 KiB, a node's attributes together at most 256 KiB.

Must not: know files, gRPC or either side's errors.
"""

from __future__ import annotations

MAX_NAME_BYTES = 255
MAX_VALUE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 256 * 1024
NAMESPACES = ("user.", "trusted.", "security.")
SYSTEM_NAMES = ("system.posix_acl_access", "system.posix_acl_default")


def well_formed(name: str) -> bool:
    """1 to MAX_NAME_BYTES bytes, no NUL."""
    return bool(name) and len(name.encode()) <= MAX_NAME_BYTES and "\0" not in name


def supported(name: str) -> bool:
    """In a namespace the drive keeps."""
    return name.startswith(NAMESPACES) or name in SYSTEM_NAMES


def total_bytes(attributes: dict[str, bytes]) -> int:
    """What a node's attributes count against MAX_TOTAL_BYTES."""
    return sum(len(name) + len(value) for name, value in attributes.items())
