from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_KIND_UNSPECIFIED: _ClassVar[NodeKind]
    NODE_KIND_DIRECTORY: _ClassVar[NodeKind]
    NODE_KIND_FILE: _ClassVar[NodeKind]
    NODE_KIND_SYMLINK: _ClassVar[NodeKind]
    NODE_KIND_FIFO: _ClassVar[NodeKind]
    NODE_KIND_CHAR_DEVICE: _ClassVar[NodeKind]
    NODE_KIND_BLOCK_DEVICE: _ClassVar[NodeKind]
    NODE_KIND_SOCKET: _ClassVar[NodeKind]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_READ: _ClassVar[Role]
    ROLE_WRITE: _ClassVar[Role]
    ROLE_OWNER: _ClassVar[Role]

class XattrSet(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    XATTR_SET_EITHER: _ClassVar[XattrSet]
    XATTR_SET_CREATE: _ClassVar[XattrSet]
    XATTR_SET_REPLACE: _ClassVar[XattrSet]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_CREATED: _ClassVar[ChangeKind]
    CHANGE_KIND_EDITED: _ClassVar[ChangeKind]
    CHANGE_KIND_MOVED: _ClassVar[ChangeKind]
    CHANGE_KIND_DELETED: _ClassVar[ChangeKind]
    CHANGE_KIND_ATTRIBUTES: _ClassVar[ChangeKind]
    CHANGE_KIND_RESTORED: _ClassVar[ChangeKind]
    CHANGE_KIND_SHARED: _ClassVar[ChangeKind]
    CHANGE_KIND_UNSHARED: _ClassVar[ChangeKind]
    CHANGE_KIND_DAMAGED: _ClassVar[ChangeKind]
    CHANGE_KIND_LINKED: _ClassVar[ChangeKind]
    CHANGE_KIND_UNLINKED: _ClassVar[ChangeKind]
NODE_KIND_UNSPECIFIED: NodeKind
NODE_KIND_DIRECTORY: NodeKind
NODE_KIND_FILE: NodeKind
NODE_KIND_SYMLINK: NodeKind
NODE_KIND_FIFO: NodeKind
NODE_KIND_CHAR_DEVICE: NodeKind
NODE_KIND_BLOCK_DEVICE: NodeKind
NODE_KIND_SOCKET: NodeKind
ROLE_UNSPECIFIED: Role
ROLE_READ: Role
ROLE_WRITE: Role
ROLE_OWNER: Role
XATTR_SET_EITHER: XattrSet
XATTR_SET_CREATE: XattrSet
XATTR_SET_REPLACE: XattrSet
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_CREATED: ChangeKind
CHANGE_KIND_EDITED: ChangeKind
CHANGE_KIND_MOVED: ChangeKind
CHANGE_KIND_DELETED: ChangeKind
CHANGE_KIND_ATTRIBUTES: ChangeKind
CHANGE_KIND_RESTORED: ChangeKind
CHANGE_KIND_SHARED: ChangeKind
CHANGE_KIND_UNSHARED: ChangeKind
CHANGE_KIND_DAMAGED: ChangeKind
CHANGE_KIND_LINKED: ChangeKind
CHANGE_KIND_UNLINKED: ChangeKind

class Node(_message.Message):
    __slots__ = ("id", "parent_id", "name", "kind", "mode", "size", "mtime_ns", "ctime_ns", "revision", "symlink_target", "owner_id", "role", "change_sequence", "uid", "gid", "rdev", "atime_ns", "nlink", "entry_id", "xattrs")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    CTIME_NS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    XATTRS_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent_id: int
    name: str
    kind: NodeKind
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    revision: int
    symlink_target: str
    owner_id: int
    role: Role
    change_sequence: int
    uid: int
    gid: int
    rdev: int
    atime_ns: int
    nlink: int
    entry_id: int
    xattrs: int
    def __init__(self, id: _Optional[int] = ..., parent_id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., mode: _Optional[int] = ..., size: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., ctime_ns: _Optional[int] = ..., revision: _Optional[int] = ..., symlink_target: _Optional[str] = ..., owner_id: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., change_sequence: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., rdev: _Optional[int] = ..., atime_ns: _Optional[int] = ..., nlink: _Optional[int] = ..., entry_id: _Optional[int] = ..., xattrs: _Optional[int] = ...) -> None: ...

class BlockRef(_message.Message):
    __slots__ = ("hash", "offset", "size", "grant", "receipt")
    HASH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    offset: int
    size: int
    grant: bytes
    receipt: bytes
    def __init__(self, hash: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., grant: _Optional[bytes] = ..., receipt: _Optional[bytes] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("node_id", "number", "size", "mtime_ns", "mode", "author_id", "device", "created_ns", "blocks", "grants_expire_s", "grants_issued_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    GRANTS_EXPIRE_S_FIELD_NUMBER: _ClassVar[int]
    GRANTS_ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    number: int
    size: int
    mtime_ns: int
    mode: int
    author_id: int
    device: str
    created_ns: int
    blocks: _containers.RepeatedCompositeFieldContainer[BlockRef]
    grants_expire_s: int
    grants_issued_ms: int
    def __init__(self, node_id: _Optional[int] = ..., number: _Optional[int] = ..., size: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., mode: _Optional[int] = ..., author_id: _Optional[int] = ..., device: _Optional[str] = ..., created_ns: _Optional[int] = ..., blocks: _Optional[_Iterable[_Union[BlockRef, _Mapping]]] = ..., grants_expire_s: _Optional[int] = ..., grants_issued_ms: _Optional[int] = ...) -> None: ...

class GetRootRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("parent_id", "name")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class ListDirectoryRequest(_message.Message):
    __slots__ = ("node_id", "after_id", "page_size")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    after_id: int
    page_size: int
    def __init__(self, node_id: _Optional[int] = ..., after_id: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListDirectoryResponse(_message.Message):
    __slots__ = ("entries", "more")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Node]
    more: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[Node, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class MakeDirectoryRequest(_message.Message):
    __slots__ = ("parent_id", "name", "mode", "mtime_ns", "device", "request_id", "uid", "gid", "node_id")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    mode: int
    mtime_ns: int
    device: str
    request_id: str
    uid: int
    gid: int
    node_id: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., mode: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., node_id: _Optional[int] = ...) -> None: ...

class CreateFileRequest(_message.Message):
    __slots__ = ("parent_id", "name", "mode", "mtime_ns", "device", "request_id", "uid", "gid", "node_id")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    mode: int
    mtime_ns: int
    device: str
    request_id: str
    uid: int
    gid: int
    node_id: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., mode: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., node_id: _Optional[int] = ...) -> None: ...

class CreateSymlinkRequest(_message.Message):
    __slots__ = ("parent_id", "name", "target", "device", "request_id", "uid", "gid", "node_id", "mtime_ns")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    target: str
    device: str
    request_id: str
    uid: int
    gid: int
    node_id: int
    mtime_ns: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., target: _Optional[str] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., node_id: _Optional[int] = ..., mtime_ns: _Optional[int] = ...) -> None: ...

class MakeNodeRequest(_message.Message):
    __slots__ = ("parent_id", "name", "kind", "mode", "rdev", "uid", "gid", "device", "request_id", "node_id")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RDEV_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    kind: NodeKind
    mode: int
    rdev: int
    uid: int
    gid: int
    device: str
    request_id: str
    node_id: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., mode: _Optional[int] = ..., rdev: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., node_id: _Optional[int] = ...) -> None: ...

class CommitRevisionRequest(_message.Message):
    __slots__ = ("node_id", "base_revision", "size", "mtime_ns", "blocks", "device", "request_id", "mode", "uid", "gid", "atime_ns")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_REVISION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    base_revision: int
    size: int
    mtime_ns: int
    blocks: _containers.RepeatedCompositeFieldContainer[BlockRef]
    device: str
    request_id: str
    mode: int
    uid: int
    gid: int
    atime_ns: int
    def __init__(self, node_id: _Optional[int] = ..., base_revision: _Optional[int] = ..., size: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., blocks: _Optional[_Iterable[_Union[BlockRef, _Mapping]]] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., atime_ns: _Optional[int] = ...) -> None: ...

class GetRevisionRequest(_message.Message):
    __slots__ = ("node_id", "number")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    number: int
    def __init__(self, node_id: _Optional[int] = ..., number: _Optional[int] = ...) -> None: ...

class ListRevisionsRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class ListRevisionsResponse(_message.Message):
    __slots__ = ("revisions",)
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    revisions: _containers.RepeatedCompositeFieldContainer[Revision]
    def __init__(self, revisions: _Optional[_Iterable[_Union[Revision, _Mapping]]] = ...) -> None: ...

class RenameRequest(_message.Message):
    __slots__ = ("parent_id", "name", "new_parent_id", "new_name", "no_replace", "device", "request_id", "exchange", "node_id")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    NO_REPLACE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    new_parent_id: int
    new_name: str
    no_replace: bool
    device: str
    request_id: str
    exchange: bool
    node_id: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., new_parent_id: _Optional[int] = ..., new_name: _Optional[str] = ..., no_replace: _Optional[bool] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., exchange: _Optional[bool] = ..., node_id: _Optional[int] = ...) -> None: ...

class RenameResponse(_message.Message):
    __slots__ = ("node", "replaced_node_id", "replaced_remains", "saved_from")
    NODE_FIELD_NUMBER: _ClassVar[int]
    REPLACED_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REPLACED_REMAINS_FIELD_NUMBER: _ClassVar[int]
    SAVED_FROM_FIELD_NUMBER: _ClassVar[int]
    node: Node
    replaced_node_id: int
    replaced_remains: bool
    saved_from: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., replaced_node_id: _Optional[int] = ..., replaced_remains: _Optional[bool] = ..., saved_from: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("parent_id", "name", "directory", "device", "request_id", "node_id")
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: int
    name: str
    directory: bool
    device: str
    request_id: str
    node_id: int
    def __init__(self, parent_id: _Optional[int] = ..., name: _Optional[str] = ..., directory: _Optional[bool] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., node_id: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("node_id", "remains")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    remains: bool
    def __init__(self, node_id: _Optional[int] = ..., remains: _Optional[bool] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("node_id", "new_parent_id", "new_name", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    new_parent_id: int
    new_name: str
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., new_parent_id: _Optional[int] = ..., new_name: _Optional[str] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetAttributesRequest(_message.Message):
    __slots__ = ("node_id", "mode", "mtime_ns", "device", "request_id", "uid", "gid", "atime_ns", "changed_ns")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    ATIME_NS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_NS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    mode: int
    mtime_ns: int
    device: str
    request_id: str
    uid: int
    gid: int
    atime_ns: int
    changed_ns: int
    def __init__(self, node_id: _Optional[int] = ..., mode: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., atime_ns: _Optional[int] = ..., changed_ns: _Optional[int] = ...) -> None: ...

class MarkAccessedRequest(_message.Message):
    __slots__ = ("node_ids",)
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    node_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, node_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class MarkAccessedResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class GetXattrsRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class Xattr(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: bytes
    def __init__(self, name: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class GetXattrsResponse(_message.Message):
    __slots__ = ("xattrs",)
    XATTRS_FIELD_NUMBER: _ClassVar[int]
    xattrs: _containers.RepeatedCompositeFieldContainer[Xattr]
    def __init__(self, xattrs: _Optional[_Iterable[_Union[Xattr, _Mapping]]] = ...) -> None: ...

class SetXattrRequest(_message.Message):
    __slots__ = ("node_id", "name", "value", "how", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HOW_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    value: bytes
    how: XattrSet
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., value: _Optional[bytes] = ..., how: _Optional[_Union[XattrSet, str]] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveXattrRequest(_message.Message):
    __slots__ = ("node_id", "name", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Usage(_message.Message):
    __slots__ = ("used_bytes", "quota_bytes", "node_count")
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    used_bytes: int
    quota_bytes: int
    node_count: int
    def __init__(self, used_bytes: _Optional[int] = ..., quota_bytes: _Optional[int] = ..., node_count: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("from_sequence", "batched")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    batched: bool
    def __init__(self, from_sequence: _Optional[int] = ..., batched: _Optional[bool] = ...) -> None: ...

class GetJournalHeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JournalHead(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class RestoreRevisionRequest(_message.Message):
    __slots__ = ("node_id", "number", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    number: int
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., number: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ShareRequest(_message.Message):
    __slots__ = ("node_id", "user_name", "role", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    user_name: str
    role: Role
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., user_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UnshareRequest(_message.Message):
    __slots__ = ("node_id", "user_name", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    user_name: str
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., user_name: _Optional[str] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UnshareResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class ListSharesRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class ListSharedWithMeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShareInfo(_message.Message):
    __slots__ = ("node", "path", "owner_id", "owner_name", "user_id", "user_name", "role", "created_ns")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    path: str
    owner_id: int
    owner_name: str
    user_id: int
    user_name: str
    role: Role
    created_ns: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., path: _Optional[str] = ..., owner_id: _Optional[int] = ..., owner_name: _Optional[str] = ..., user_id: _Optional[int] = ..., user_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., created_ns: _Optional[int] = ...) -> None: ...

class ListSharesResponse(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[ShareInfo]
    def __init__(self, shares: _Optional[_Iterable[_Union[ShareInfo, _Mapping]]] = ...) -> None: ...

class ListTrashRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TrashEntry(_message.Message):
    __slots__ = ("node", "path", "deleted_ns", "purge_ns")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DELETED_NS_FIELD_NUMBER: _ClassVar[int]
    PURGE_NS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    path: str
    deleted_ns: int
    purge_ns: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., path: _Optional[str] = ..., deleted_ns: _Optional[int] = ..., purge_ns: _Optional[int] = ...) -> None: ...

class ListTrashResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TrashEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[TrashEntry, _Mapping]]] = ...) -> None: ...

class RestoreFromTrashRequest(_message.Message):
    __slots__ = ("node_id", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestoreFromTrashResponse(_message.Message):
    __slots__ = ("node", "path", "restored")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    node: Node
    path: str
    restored: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., path: _Optional[str] = ..., restored: _Optional[int] = ...) -> None: ...

class ListSnapshotRequest(_message.Message):
    __slots__ = ("node_id", "time_ns")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    time_ns: int
    def __init__(self, node_id: _Optional[int] = ..., time_ns: _Optional[int] = ...) -> None: ...

class SnapshotEntry(_message.Message):
    __slots__ = ("node_id", "name", "kind", "size", "mtime_ns", "revision", "content_kept", "symlink_target")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_KEPT_FIELD_NUMBER: _ClassVar[int]
    SYMLINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    kind: NodeKind
    size: int
    mtime_ns: int
    revision: int
    content_kept: bool
    symlink_target: str
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[NodeKind, str]] = ..., size: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., revision: _Optional[int] = ..., content_kept: _Optional[bool] = ..., symlink_target: _Optional[str] = ...) -> None: ...

class ListSnapshotResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[SnapshotEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[SnapshotEntry, _Mapping]]] = ...) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("node_id", "time_ns", "device", "request_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    time_ns: int
    device: str
    request_id: str
    def __init__(self, node_id: _Optional[int] = ..., time_ns: _Optional[int] = ..., device: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestoreSnapshotResponse(_message.Message):
    __slots__ = ("node", "path", "files", "directories", "skipped")
    NODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    DIRECTORIES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    node: Node
    path: str
    files: int
    directories: int
    skipped: int
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., path: _Optional[str] = ..., files: _Optional[int] = ..., directories: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class EmptyTrashRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class EmptyTrashResponse(_message.Message):
    __slots__ = ("nodes", "bytes")
    NODES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    nodes: int
    bytes: int
    def __init__(self, nodes: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class CondemnBlocksRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CondemnBlocksResponse(_message.Message):
    __slots__ = ("condemned",)
    CONDEMNED_FIELD_NUMBER: _ClassVar[int]
    condemned: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, condemned: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReleaseBlocksRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReleaseBlocksResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCondemnedBlocksRequest(_message.Message):
    __slots__ = ("hashes", "blocks")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockRef]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., blocks: _Optional[_Iterable[_Union[BlockRef, _Mapping]]] = ...) -> None: ...

class ListCondemnedBlocksResponse(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ListReferencedBlocksRequest(_message.Message):
    __slots__ = ("after_hash", "page_size")
    AFTER_HASH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_hash: bytes
    page_size: int
    def __init__(self, after_hash: _Optional[bytes] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListReferencedBlocksResponse(_message.Message):
    __slots__ = ("hashes", "more")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    more: bool
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., more: _Optional[bool] = ...) -> None: ...

class ListBlockReferencesRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BlockReference(_message.Message):
    __slots__ = ("hash", "node_id", "owner_id", "owner_name", "path", "revisions", "current", "deleted")
    HASH_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    node_id: int
    owner_id: int
    owner_name: str
    path: str
    revisions: _containers.RepeatedScalarFieldContainer[int]
    current: bool
    deleted: bool
    def __init__(self, hash: _Optional[bytes] = ..., node_id: _Optional[int] = ..., owner_id: _Optional[int] = ..., owner_name: _Optional[str] = ..., path: _Optional[str] = ..., revisions: _Optional[_Iterable[int]] = ..., current: _Optional[bool] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListBlockReferencesResponse(_message.Message):
    __slots__ = ("references",)
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    references: _containers.RepeatedCompositeFieldContainer[BlockReference]
    def __init__(self, references: _Optional[_Iterable[_Union[BlockReference, _Mapping]]] = ...) -> None: ...

class ReportDamagedBlocksRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReportDamagedBlocksResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: int
    def __init__(self, files: _Optional[int] = ...) -> None: ...

class WatchRevocationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UserRevocation(_message.Message):
    __slots__ = ("user_id", "token_generation", "grants_not_before_ms", "disabled")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_GENERATION_FIELD_NUMBER: _ClassVar[int]
    GRANTS_NOT_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    token_generation: int
    grants_not_before_ms: int
    disabled: bool
    def __init__(self, user_id: _Optional[int] = ..., token_generation: _Optional[int] = ..., grants_not_before_ms: _Optional[int] = ..., disabled: _Optional[bool] = ...) -> None: ...

class Revocations(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserRevocation]
    def __init__(self, users: _Optional[_Iterable[_Union[UserRevocation, _Mapping]]] = ...) -> None: ...

class GetStorageSummaryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StorageSummary(_message.Message):
    __slots__ = ("logical_bytes", "referenced_blocks", "referenced_bytes")
    LOGICAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_BYTES_FIELD_NUMBER: _ClassVar[int]
    logical_bytes: int
    referenced_blocks: int
    referenced_bytes: int
    def __init__(self, logical_bytes: _Optional[int] = ..., referenced_blocks: _Optional[int] = ..., referenced_bytes: _Optional[int] = ...) -> None: ...

class ReserveNodeIdsRequest(_message.Message):
    __slots__ = ("count", "request_id")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    count: int
    request_id: str
    def __init__(self, count: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReserveNodeIdsResponse(_message.Message):
    __slots__ = ("first", "count")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    first: int
    count: int
    def __init__(self, first: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class BatchOperation(_message.Message):
    __slots__ = ("request_id", "make_directory", "create_file", "create_symlink", "make_node", "commit_revision", "rename", "delete", "link", "set_attributes", "set_xattr", "remove_xattr")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MAKE_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    CREATE_FILE_FIELD_NUMBER: _ClassVar[int]
    CREATE_SYMLINK_FIELD_NUMBER: _ClassVar[int]
    MAKE_NODE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_REVISION_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    SET_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SET_XATTR_FIELD_NUMBER: _ClassVar[int]
    REMOVE_XATTR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    make_directory: MakeDirectoryRequest
    create_file: CreateFileRequest
    create_symlink: CreateSymlinkRequest
    make_node: MakeNodeRequest
    commit_revision: CommitRevisionRequest
    rename: RenameRequest
    delete: DeleteRequest
    link: LinkRequest
    set_attributes: SetAttributesRequest
    set_xattr: SetXattrRequest
    remove_xattr: RemoveXattrRequest
    def __init__(self, request_id: _Optional[str] = ..., make_directory: _Optional[_Union[MakeDirectoryRequest, _Mapping]] = ..., create_file: _Optional[_Union[CreateFileRequest, _Mapping]] = ..., create_symlink: _Optional[_Union[CreateSymlinkRequest, _Mapping]] = ..., make_node: _Optional[_Union[MakeNodeRequest, _Mapping]] = ..., commit_revision: _Optional[_Union[CommitRevisionRequest, _Mapping]] = ..., rename: _Optional[_Union[RenameRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., link: _Optional[_Union[LinkRequest, _Mapping]] = ..., set_attributes: _Optional[_Union[SetAttributesRequest, _Mapping]] = ..., set_xattr: _Optional[_Union[SetXattrRequest, _Mapping]] = ..., remove_xattr: _Optional[_Union[RemoveXattrRequest, _Mapping]] = ...) -> None: ...

class ApplyBatchRequest(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[BatchOperation]
    def __init__(self, operations: _Optional[_Iterable[_Union[BatchOperation, _Mapping]]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("code", "message", "reason", "current_revision", "node", "rename", "delete")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_REVISION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    current_revision: int
    node: Node
    rename: RenameResponse
    delete: DeleteResponse
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., current_revision: _Optional[int] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., rename: _Optional[_Union[RenameResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ...) -> None: ...

class ApplyBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...

class ChangeEvent(_message.Message):
    __slots__ = ("sequence", "kind", "node_id", "node_kind", "parent_id", "name", "old_parent_id", "old_name", "revision", "actor_id", "device", "time_ns", "replaced_node_id", "actor_name", "path", "shared", "owner_id", "subject_user_id", "subject_name", "role", "following")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_KIND_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OLD_PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_NAME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    REPLACED_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_USER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    FOLLOWING_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: ChangeKind
    node_id: int
    node_kind: NodeKind
    parent_id: int
    name: str
    old_parent_id: int
    old_name: str
    revision: int
    actor_id: int
    device: str
    time_ns: int
    replaced_node_id: int
    actor_name: str
    path: str
    shared: bool
    owner_id: int
    subject_user_id: int
    subject_name: str
    role: Role
    following: _containers.RepeatedCompositeFieldContainer[ChangeEvent]
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., node_id: _Optional[int] = ..., node_kind: _Optional[_Union[NodeKind, str]] = ..., parent_id: _Optional[int] = ..., name: _Optional[str] = ..., old_parent_id: _Optional[int] = ..., old_name: _Optional[str] = ..., revision: _Optional[int] = ..., actor_id: _Optional[int] = ..., device: _Optional[str] = ..., time_ns: _Optional[int] = ..., replaced_node_id: _Optional[int] = ..., actor_name: _Optional[str] = ..., path: _Optional[str] = ..., shared: _Optional[bool] = ..., owner_id: _Optional[int] = ..., subject_user_id: _Optional[int] = ..., subject_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., following: _Optional[_Iterable[_Union[ChangeEvent, _Mapping]]] = ...) -> None: ...
