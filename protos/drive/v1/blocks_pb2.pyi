from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Grant(_message.Message):
    __slots__ = ("grant", "expires_s", "issued_ms")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_S_FIELD_NUMBER: _ClassVar[int]
    ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    grant: bytes
    expires_s: int
    issued_ms: int
    def __init__(self, grant: _Optional[bytes] = ..., expires_s: _Optional[int] = ..., issued_ms: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("hash", "size", "mac")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    size: int
    mac: bytes
    def __init__(self, hash: _Optional[bytes] = ..., size: _Optional[int] = ..., mac: _Optional[bytes] = ...) -> None: ...

class FindMissingRequest(_message.Message):
    __slots__ = ("hashes", "grants", "receipts")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ...) -> None: ...

class FindMissingResponse(_message.Message):
    __slots__ = ("missing",)
    MISSING_FIELD_NUMBER: _ClassVar[int]
    missing: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, missing: _Optional[_Iterable[bytes]] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("hash", "data")
    HASH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    data: bytes
    def __init__(self, hash: _Optional[bytes] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadPack(_message.Message):
    __slots__ = ("blocks",)
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[UploadRequest]
    def __init__(self, blocks: _Optional[_Iterable[_Union[UploadRequest, _Mapping]]] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("blocks_received", "blocks_stored", "bytes_received", "bytes_stored", "receipts")
    BLOCKS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_STORED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    blocks_received: int
    blocks_stored: int
    bytes_received: int
    bytes_stored: int
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    def __init__(self, blocks_received: _Optional[int] = ..., blocks_stored: _Optional[int] = ..., bytes_received: _Optional[int] = ..., bytes_stored: _Optional[int] = ..., receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("hashes", "grants")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("hash", "data")
    HASH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    data: bytes
    def __init__(self, hash: _Optional[bytes] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreStats(_message.Message):
    __slots__ = ("object_count", "stored_bytes", "bytes_received", "blocks_received", "bytes_sent", "blocks_sent")
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_SENT_FIELD_NUMBER: _ClassVar[int]
    object_count: int
    stored_bytes: int
    bytes_received: int
    blocks_received: int
    bytes_sent: int
    blocks_sent: int
    def __init__(self, object_count: _Optional[int] = ..., stored_bytes: _Optional[int] = ..., bytes_received: _Optional[int] = ..., blocks_received: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., blocks_sent: _Optional[int] = ...) -> None: ...

class CollectGarbageRequest(_message.Message):
    __slots__ = ("grace_seconds", "dry_run")
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    grace_seconds: int
    dry_run: bool
    def __init__(self, grace_seconds: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class GarbageProgress(_message.Message):
    __slots__ = ("scanned", "total", "deleted", "bytes_reclaimed", "done")
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    scanned: int
    total: int
    deleted: int
    bytes_reclaimed: int
    done: bool
    def __init__(self, scanned: _Optional[int] = ..., total: _Optional[int] = ..., deleted: _Optional[int] = ..., bytes_reclaimed: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class ScrubRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BlockProblem(_message.Message):
    __slots__ = ("hash", "problem", "repaired")
    HASH_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    problem: str
    repaired: bool
    def __init__(self, hash: _Optional[bytes] = ..., problem: _Optional[str] = ..., repaired: _Optional[bool] = ...) -> None: ...

class ScrubProgress(_message.Message):
    __slots__ = ("checked", "total", "problems", "done", "referenced_checked")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_CHECKED_FIELD_NUMBER: _ClassVar[int]
    checked: int
    total: int
    problems: _containers.RepeatedCompositeFieldContainer[BlockProblem]
    done: bool
    referenced_checked: int
    def __init__(self, checked: _Optional[int] = ..., total: _Optional[int] = ..., problems: _Optional[_Iterable[_Union[BlockProblem, _Mapping]]] = ..., done: _Optional[bool] = ..., referenced_checked: _Optional[int] = ...) -> None: ...
