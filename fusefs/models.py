"""Frozen domain values the client passes between its layers.

Protobuf messages stay in clients.py; everything above sees only these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.IntEnum):
    """Node kinds, numbered as drive.v1.NodeKind."""

    DIRECTORY = 1
    FILE = 2
    SYMLINK = 3


class ChangeKind(enum.IntEnum):
    """Journal event kinds, numbered as drive.v1.ChangeKind."""

    CREATED = 1
    EDITED = 2
    MOVED = 3
    DELETED = 4
    ATTRIBUTES = 5
    RESTORED = 6
    SHARED = 7
    UNSHARED = 8


@dataclass(frozen=True, slots=True)
class Node:
    id: int
    parent_id: int
    name: str
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    revision: int
    symlink_target: str
    change_sequence: int


@dataclass(frozen=True, slots=True)
class BlockRef:
    hash: bytes
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Revision:
    node_id: int
    number: int
    size: int
    mtime_ns: int
    blocks: tuple[BlockRef, ...]


@dataclass(frozen=True, slots=True)
class Change:
    sequence: int
    kind: ChangeKind
    node_id: int
    node_kind: Kind
    parent_id: int
    name: str
    old_parent_id: int
    old_name: str
    revision: int
    device: str
    replaced_node_id: int


@dataclass(frozen=True, slots=True)
class Usage:
    used_bytes: int
    quota_bytes: int
    node_count: int
