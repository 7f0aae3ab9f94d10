"""Domain values of the metadata service: frozen dataclasses and enums.

Owns the vocabulary every layer shares (nodes, revisions, block references,
change events, usage). Holds no behaviour beyond construction and must not
import protobuf or SQL: protobuf stays in service.py, SQL in store.py.
Absent ids and names are None here; the wire encodes them as 0 or "".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class NodeKind(enum.Enum):
    """What a node is. The values are the ones stored in the database."""

    DIRECTORY = "dir"
    FILE = "file"
    SYMLINK = "symlink"
    FIFO = "fifo"  # special files: a node and its attributes, no content
    CHAR_DEVICE = "chardev"
    BLOCK_DEVICE = "blockdev"
    SOCKET = "socket"

    @property
    def special(self) -> bool:
        return self in _SPECIAL


_SPECIAL = frozenset({NodeKind.FIFO, NodeKind.CHAR_DEVICE, NodeKind.BLOCK_DEVICE, NodeKind.SOCKET})


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
    DAMAGED = "damaged"  # storage found a block of the file damaged: devices re-upload it
    LINKED = "linked"  # a further name (hard link) of the node was made
    UNLINKED = "unlinked"  # a name of the node was removed; the node has others


class Role(enum.Enum):
    """What a user may do with a node. Values are stored in shares.role (but owner)."""

    READ = "read"
    WRITE = "write"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_ROLE_RANK = {Role.READ: 1, Role.WRITE: 2, Role.OWNER: 3}


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
    token_generation: int = 0  # tokens of an older generation are refused
    disabled: bool = False  # may not sign in; every token refused


@dataclass(frozen=True)
class Ownership:
    """POSIX owner and group as numbers (None: not set, or not changed)."""

    uid: int | None = None
    gid: int | None = None


NO_OWNERSHIP = Ownership()


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """Attributes set with a commit or on their own (None / NO_OWNERSHIP: unchanged)."""

    mode: int | None = None
    atime_ns: int | None = None
    owner: Ownership = NO_OWNERSHIP

    @property
    def empty(self) -> bool:
        return self.mode is None and self.atime_ns is None and self.owner == NO_OWNERSHIP


NO_CHANGE = AttributeChange()


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
    role: Role | None = None  # the caller's role, where the store worked it out
    uid: int | None = None  # POSIX owner; None: never set (a mount shows its own user)
    gid: int | None = None
    rdev: int = 0  # device nodes: the device number
    atime_ns: int | None = None  # None: as mtime_ns
    subdirectories: int = 0  # directories: live subdirectories (st_nlink = 2 + this)
    links: int = 0  # further names (hard links): st_nlink = 1 + this
    xattrs: int = 0  # how many extended attributes it has
    link_id: int | None = None  # the node as one of its further names names it (lookup, listing)


@dataclass(frozen=True)
class BlockRef:
    """A block of file content: BLAKE3-256 of its plaintext, where it sits, how long."""

    hash: bytes
    offset: int
    size: int
    # In a commit: a valid upload receipt vouches for hash and size (not part of what it is).
    vouched: bool = field(default=False, compare=False)


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
    owner_id: int = 0  # whose drive the node is in
    subject_user_id: int | None = None  # SHARED/UNSHARED: whom the share is for
    role: Role | None = None  # SHARED: the role granted
    # Filled for a subscriber (store.read_changes): names and the path as they see it.
    actor_name: str = ""
    subject_name: str = ""
    path: str = ""  # from their root, or from the shared node when shared
    shared: bool = False


@dataclass(frozen=True, slots=True)
class StorageSummary:
    """Totals over every drive."""

    logical_bytes: int  # current revisions of live files
    referenced_blocks: int  # distinct blocks any kept revision refers to
    referenced_bytes: int  # their plaintext size


@dataclass(frozen=True, slots=True)
class Share:
    node: Node  # with the role of whoever asked
    path: str  # in the owner's drive
    owner_id: int
    owner_name: str
    user_id: int
    user_name: str
    role: Role
    created_ns: int


@dataclass(frozen=True, slots=True)
class TrashEntry:
    node: Node  # parent_id and name: where it was
    path: str
    deleted_ns: int
    purge_ns: int  # 0 = not purged automatically


@dataclass(frozen=True, slots=True)
class Restored:
    node: Node
    path: str
    files: int  # nodes brought back (trash) or files whose content came back (snapshot)
    directories: int = 0
    skipped: int = 0  # snapshot: files whose content at that time is no longer kept


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    node_id: int
    name: str
    kind: NodeKind
    size: int
    mtime_ns: int
    revision: int  # files: current at that time
    content_kept: bool  # files: that revision (or an older kept one) can be restored
    symlink_target: str | None


@dataclass(frozen=True)
class BlockReference:
    """A file whose kept revisions refer to a block (for naming what damage hurts)."""

    hash: bytes
    node_id: int
    owner_id: int
    owner_name: str
    path: str  # in the owner's drive; a deleted file: where it was
    revisions: tuple[int, ...]
    current: bool  # its current revision refers to the block
    deleted: bool
