"""Domain values of the metadata service: frozen dataclasses and enums.

Owns the vocabulary every layer shares (nodes, revisions, block references,
change events, usage). Holds no behaviour beyond construction and must not
import protobuf or SQL: protobuf stays in service.py, SQL in store.py.
Absent ids and names are None here; the wire encodes them as 0 or "".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NodeKind(enum.Enum):
    """What a node is. The values are the ones stored in the database."""

    DIRECTORY = "dir"
    FILE = "file"
    SYMLINK = "symlink"


class ChangeKind(enum.Enum):
    """What a change-journal entry records. Values are stored in the database."""

    CREATED = "created"
    EDITED = "edited"
    MOVED = "moved"
    DELETED = "deleted"
    ATTRIBUTES = "attributes"
    RESTORED = "restored"
    SHARED = "shared"
    UNSHARED = "unshared"


class Role(enum.Enum):
    """What a user may do with a node."""

    READ = "read"
    WRITE = "write"
    OWNER = "owner"


@dataclass(frozen=True)
class Actor:
    """Who makes a request: the user, and the device name they reported."""

    user_id: int
    device: str = ""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    admin: bool  # may manage users and run maintenance
    quota_bytes: int  # 0 = unlimited
    root_id: int  # node id of the user's drive root
    created_ns: int


@dataclass(frozen=True)
class Node:
    id: int
    owner_id: int
    parent_id: int | None  # None for a drive root
    name: str  # "" for a drive root
    kind: NodeKind
    mode: int  # permission bits only (0o7777)
    size: int
    mtime_ns: int
    ctime_ns: int
    revision: int  # current revision number for files, 0 otherwise
    symlink_target: str | None
    change_sequence: int  # journal sequence of the last change, 0 if none
    deleted_ns: int | None = None  # None while the node is alive


@dataclass(frozen=True)
class BlockRef:
    """A block of file content: BLAKE3-256 of its plaintext, where it sits, how long."""

    hash: bytes
    offset: int
    size: int


@dataclass(frozen=True)
class Revision:
    node_id: int
    number: int
    size: int
    mtime_ns: int
    mode: int
    author_id: int
    device: str
    created_ns: int
    blocks: tuple[BlockRef, ...] = ()  # ordered by offset; empty when not asked for


@dataclass(frozen=True)
class DirectoryPage:
    entries: tuple[Node, ...]
    more: bool  # another page follows after the last entry's id


@dataclass(frozen=True)
class Usage:
    used_bytes: int  # sum of the current sizes of the user's live files
    quota_bytes: int  # 0 = unlimited
    node_count: int  # live nodes, the root included


@dataclass(frozen=True)
class ChangeEvent:
    sequence: int
    kind: ChangeKind
    node_id: int
    node_kind: NodeKind
    parent_id: int | None  # where the node is after the change (DELETED: where it was)
    name: str
    old_parent_id: int | None  # MOVED: where it was before
    old_name: str | None
    revision: int  # EDITED: the new revision; CREATED file: 1; otherwise 0
    actor_id: int
    device: str
    time_ns: int
    replaced_node_id: int | None  # MOVED over an existing entry: the node it replaced


@dataclass(frozen=True, slots=True)
class StorageSummary:
    """Totals over every drive."""

    logical_bytes: int  # current revisions of live files
    referenced_blocks: int  # distinct blocks any kept revision refers to
    referenced_bytes: int  # their plaintext size
