from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetDriveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DriveInfo(_message.Message):
    __slots__ = ("drive_id", "blockd_address", "version")
    DRIVE_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKD_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    drive_id: str
    blockd_address: str
    version: str
    def __init__(self, drive_id: _Optional[str] = ..., blockd_address: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("id", "name", "admin", "quota_bytes", "created_ns", "root_id", "disabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_NS_FIELD_NUMBER: _ClassVar[int]
    ROOT_ID_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    admin: bool
    quota_bytes: int
    created_ns: int
    root_id: int
    disabled: bool
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., admin: _Optional[bool] = ..., quota_bytes: _Optional[int] = ..., created_ns: _Optional[int] = ..., root_id: _Optional[int] = ..., disabled: _Optional[bool] = ...) -> None: ...

class SignInRequest(_message.Message):
    __slots__ = ("name", "password", "ttl_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    ttl_seconds: int
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class SignInResponse(_message.Message):
    __slots__ = ("token", "expires_s", "user")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_S_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_s: int
    user: User
    def __init__(self, token: _Optional[str] = ..., expires_s: _Optional[int] = ..., user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class RenewTokenRequest(_message.Message):
    __slots__ = ("ttl_seconds",)
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: int
    def __init__(self, ttl_seconds: _Optional[int] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("name", "password", "quota_bytes", "admin", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    quota_bytes: int
    admin: bool
    request_id: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., quota_bytes: _Optional[int] = ..., admin: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[User]
    def __init__(self, users: _Optional[_Iterable[_Union[User, _Mapping]]] = ...) -> None: ...

class SetPasswordRequest(_message.Message):
    __slots__ = ("name", "current_password", "new_password", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    current_password: str
    new_password: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., current_password: _Optional[str] = ..., new_password: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("name", "quota_bytes", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUOTA_BYTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    quota_bytes: int
    request_id: str
    def __init__(self, name: _Optional[str] = ..., quota_bytes: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class DisableUserRequest(_message.Message):
    __slots__ = ("name", "disabled", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    disabled: bool
    request_id: str
    def __init__(self, name: _Optional[str] = ..., disabled: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...
