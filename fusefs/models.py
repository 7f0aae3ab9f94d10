"""Frozen domain values the client passes between its layers.

Protobuf messages stay in clients.py; everything above sees only these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def replaced(value: T, **changes: Any) -> T:
    """dataclasses.replace of a frozen, slotted value here, at about half its cost.

    The mount makes a changed copy of a Node several times per request (a stat of
    a file being written shows its size, times and held attributes over the
    stored node); dataclasses.replace looks every field up by name and goes
    through __init__. Unknown names are refused, as there.
    """
    cls = type(value)
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = (cls.__slots__, frozenset(cls.__slots__))
    if not names[1].issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(changes.keys() - names[1])}")
    new = _new(cls)
    for name in names[0]:
        _set(new, name, changes[name] if name in changes else getattr(value, name))
    return new


_SLOTS: dict[type, tuple[tuple[str, ...], frozenset[str]]] = {}
_new, _set = object.__new__, object.__setattr__


class Kind(enum.IntEnum):
    """Node kinds, numbered as drive.v1.NodeKind."""

    DIRECTORY = 1
    FILE = 2
    SYMLINK = 3
    FIFO = 4  # special files: a node and its attributes, no content
    CHAR_DEVICE = 5
    BLOCK_DEVICE = 6
    SOCKET = 7


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
    DAMAGED = 9  # storage found a block of the file damaged: holders upload it again
    LINKED = 10  # a name was added to a node that stays (old_parent_id, old_name: which)
    UNLINKED = 11  # a name was taken from a node that stays


class Role(enum.IntEnum):
    """What the caller may do with a node, numbered as drive.v1.Role (ordered)."""

    NONE = 0
    READ = 1
    WRITE = 2
    OWNER = 3


@dataclass(frozen=True, slots=True)
class Ownership:
    """POSIX owner and group as numbers (None: not set, or not to change)."""

    uid: int | None = None
    gid: int | None = None


NO_OWNERSHIP = Ownership()


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """Attributes to set, e.g. with a commit (None / NO_OWNERSHIP: unchanged)."""

    mode: int | None = None
    atime_ns: int | None = None
    owner: Ownership = NO_OWNERSHIP

    @property
    def empty(self) -> bool:
        return self.mode is None and self.atime_ns is None and self.owner == NO_OWNERSHIP

    def then(self, later: AttributeChange) -> AttributeChange:
        """This change followed by later: what later names wins."""
        return AttributeChange(
            self.mode if later.mode is None else later.mode,
            self.atime_ns if later.atime_ns is None else later.atime_ns,
            Ownership(
                self.owner.uid if later.owner.uid is None else later.owner.uid,
                self.owner.gid if later.owner.gid is None else later.owner.gid,
            ),
        )

    def applied_to(self, node: Node, **also: Any) -> Node:
        """node as it shows once this change is made, with the fields in also set too
        (one copy of the node, not two)."""
        if self.mode is not None:
            also["mode"] = self.mode
        if self.atime_ns is not None:
            also["atime_ns"] = self.atime_ns
        if self.owner.uid is not None:
            also["uid"] = self.owner.uid
        if self.owner.gid is not None:
            also["gid"] = self.owner.gid
        return replaced(node, **also) if also else node


NO_CHANGE = AttributeChange()


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
    owner_id: int = 0
    role: Role = Role.OWNER  # the caller's role
    uid: int | None = None  # None: never set; a mount shows its own user
    gid: int | None = None
    rdev: int = 0
    atime_ns: int = 0  # 0: as mtime_ns
    nlink: int = 1
    entry_id: int = 0  # where a listing resumes after this entry (its own name: the id)
    xattrs: int = 0  # how many extended attributes it has

    @property
    def writable(self) -> bool:
        return self.role >= Role.WRITE


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
class CommitRequest:
    """New content of a file, as one commit of a batch (see MetadataClient.commit_many)."""

    node_id: int
    base_revision: int
    size: int
    mtime_ns: int
    blocks: tuple[BlockRef, ...]
    attributes: AttributeChange
    request_id: str  # the same for every retry of this commit


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A new empty file, folder or symbolic link with an id reserved to us, as one
    operation of a batch."""

    node_id: int | None  # reserved to us (None: the next free id)
    parent_id: int
    name: str
    mode: int
    owner: Ownership
    mtime_ns: int
    request_id: str  # the same for every retry of this create
    kind: Kind = Kind.FILE  # FILE, DIRECTORY or SYMLINK
    target: str = ""  # a symbolic link's


@dataclass(frozen=True, slots=True)
class RenameRequest:
    """A move made offline, as one operation of a batch (node_id: the node it moved)."""

    parent_id: int
    name: str
    new_parent_id: int
    new_name: str
    no_replace: bool  # the new name was free here: if taken meanwhile, say so
    node_id: int | None  # the node believed to be at name (None: whatever is)
    request_id: str
    exchange: bool = False  # RENAME_EXCHANGE: the two entries swap


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    """An unlink or rmdir made offline, as one operation of a batch."""

    parent_id: int
    name: str
    directory: bool
    node_id: int | None  # the node it removed: another at the name by then is left alone
    request_id: str


@dataclass(frozen=True, slots=True)
class Renamed:
    """What a rename did."""

    node: Node  # the node now at the new name
    replaced_id: int  # the node whose name it took, or 0
    replaced_remains: bool  # that node keeps other names (hard links)
    saved_from: int  # a save over another file: the moved node, gone; node has its content


@dataclass(frozen=True, slots=True)
class Removed:
    """What an unlink or rmdir did."""

    node_id: int
    remains: bool  # the node keeps other names (hard links)


@dataclass(frozen=True, slots=True)
class AttributesRequest:
    """chmod/chown/utime of a node, as one operation of a batch."""

    node_id: int
    attributes: AttributeChange
    mtime_ns: int | None  # None: unchanged
    request_id: str
    changed_ns: int | None = None  # when made in the journal (its ctime); None: now


@dataclass(frozen=True, slots=True)
class XattrRequest:
    """An extended attribute set (value) or removed (value None), as one operation of a batch."""

    node_id: int
    name: str
    value: bytes | None
    request_id: str


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A further name for a file (link(2)), as one operation of a batch."""

    node_id: int
    new_parent_id: int
    new_name: str
    request_id: str


BatchChange = (
    CommitRequest
    | CreateRequest
    | AttributesRequest
    | RenameRequest
    | DeleteRequest
    | XattrRequest
    | LinkRequest
)
BatchOutcome = Node | Renamed | Removed  # or the error that refused the change


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
    actor_id: int = 0
    actor_name: str = ""
    time_ns: int = 0
    path: str = ""  # as the subscriber sees it: from their root, or from the share if shared
    shared: bool = False  # the node is in someone else's drive, shared with the subscriber
    owner_id: int = 0
    subject_user_id: int = 0  # SHARED/UNSHARED: whom the share is for
    subject_name: str = ""
    role: Role = Role.NONE  # SHARED: the role granted


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """One kept revision of a file, as `drive history` lists it."""

    number: int
    size: int
    mtime_ns: int
    author_id: int
    device: str
    created_ns: int


@dataclass(frozen=True, slots=True)
class ShareInfo:
    node: Node  # the shared file or folder, with the caller's role
    path: str  # its path in the owner's drive
    owner_id: int
    owner_name: str
    user_id: int
    user_name: str
    role: Role  # what the share grants
    created_ns: int


@dataclass(frozen=True, slots=True)
class TrashEntry:
    node: Node  # parent_id and name: where it was
    path: str
    deleted_ns: int
    purge_ns: int  # 0 = never purged automatically


@dataclass(frozen=True, slots=True)
class Restored:
    """Where a restore put things back."""

    node: Node
    path: str
    restored: int  # nodes (trash) or files (snapshot) brought back
    directories: int = 0
    skipped: int = 0  # snapshot: files whose content at that time is no longer kept


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    node_id: int
    name: str
    kind: Kind
    size: int
    mtime_ns: int
    revision: int
    content_kept: bool
    symlink_target: str


@dataclass(frozen=True, slots=True)
class Usage:
    used_bytes: int
    quota_bytes: int
    node_count: int
