"""Domain errors of the client side, and the one table mapping them to errno.

Lower layers (clients, cache, vfs) raise these; only the FUSE operations layer
turns them into FUSEError via `errno_for`, and only the CLI turns them into
messages.
"""

from __future__ import annotations

import errno


class DriveError(Exception):
    """Base of every error a drive operation can report to a user."""


class NotFound(DriveError):
    pass


class AlreadyExists(DriveError):
    pass


class NotADirectory(DriveError):
    pass


class IsADirectory(DriveError):
    pass


class DirectoryNotEmpty(DriveError):
    pass


class InvalidName(DriveError):
    pass


class NameTooLong(DriveError):
    pass


class InvalidMove(DriveError):
    pass


class InvalidArgument(DriveError):
    pass


class PermissionDenied(DriveError):
    pass


class NotSignedIn(PermissionDenied):
    """No valid token (never signed in, expired, revoked, or the drive's key changed)."""


class UnprovenBlocks(PermissionDenied):
    """A commit named blocks the client has neither receipts nor readable copies for."""


class NoAttribute(DriveError):
    """No extended attribute of that name."""


class NotSupported(DriveError):
    """An extended attribute outside the namespaces a drive keeps."""


class NotPermitted(DriveError):
    """Not something this kind of node allows (a hard link to a folder)."""


class FileTooLarge(DriveError):
    """Past the drive's limits (file size, blocks per file)."""


class ReadOnly(DriveError):
    pass


class CrossDrive(DriveError):
    """A move between two owners' drives (e.g. out of a shared folder): copy instead."""


class QuotaExceeded(DriveError):
    pass


class NoSpace(DriveError):
    """The local disk (cache or staging) is full."""


class Unavailable(DriveError):
    """A daemon cannot be reached or timed out."""


class DataLoss(DriveError):
    """Stored content is corrupt or missing: never hand out wrong bytes."""


class BlocksCondemned(DriveError):
    """Blocks of a commit are being deleted by garbage collection: upload again, retry."""


class StaleRevision(DriveError):
    """A commit was based on a revision that is no longer the current one."""

    def __init__(self, message: str, current_revision: int) -> None:
        super().__init__(message)
        self.current_revision = current_revision


_ERRNO: dict[type[DriveError], int] = {
    NotFound: errno.ENOENT,
    AlreadyExists: errno.EEXIST,
    NotADirectory: errno.ENOTDIR,
    IsADirectory: errno.EISDIR,
    DirectoryNotEmpty: errno.ENOTEMPTY,
    InvalidName: errno.EINVAL,
    NameTooLong: errno.ENAMETOOLONG,
    InvalidMove: errno.EINVAL,
    InvalidArgument: errno.EINVAL,
    PermissionDenied: errno.EACCES,
    ReadOnly: errno.EROFS,
    CrossDrive: errno.EXDEV,
    QuotaExceeded: errno.EDQUOT,
    FileTooLarge: errno.EFBIG,
    NotPermitted: errno.EPERM,
    NoAttribute: errno.ENODATA,
    NotSupported: errno.EOPNOTSUPP,
    NoSpace: errno.ENOSPC,
    Unavailable: errno.EIO,
    DataLoss: errno.EIO,
    StaleRevision: errno.EIO,
    BlocksCondemned: errno.EIO,
}


def errno_for(exc: DriveError) -> int:
    for cls in type(exc).__mro__:
        if cls in _ERRNO:
            return _ERRNO[cls]
    return errno.EIO
