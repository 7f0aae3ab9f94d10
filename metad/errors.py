"""Domain errors of the metadata service.

Owns the failure vocabulary the store raises and the servicer translates, in
one table, to gRPC status codes. Every error carries a short machine-readable
`reason` (sent as "drive-error" trailing metadata) and a message for humans.
Nothing here knows gRPC or SQL.
"""

from __future__ import annotations


class MetadataError(Exception):
    """Base of the errors a metadata request can fail with."""

    reason = "error"


class NotFound(MetadataError):
    reason = "not-found"


class AlreadyExists(MetadataError):
    reason = "already-exists"


class InvalidArgument(MetadataError):
    reason = "invalid-argument"


class NameTooLong(InvalidArgument):
    reason = "name-too-long"


class InvalidName(InvalidArgument):
    reason = "invalid-name"


class InvalidBlocks(InvalidArgument):
    reason = "invalid-blocks"


class InvalidTarget(InvalidArgument):
    reason = "invalid-target"


class NodeIdNotReserved(InvalidArgument):
    """A create named a node id that is not one of the caller's unused reserved ids."""

    reason = "node-id-not-reserved"


class TooLarge(MetadataError):
    """A request past a limit (file size, block count): RESOURCE_EXHAUSTED."""

    reason = "too-large"


class RequestIdReused(InvalidArgument):
    """A request id a change was already applied under, sent with another request."""

    reason = "request-id-reused"


class FailedPrecondition(MetadataError):
    reason = "failed-precondition"


class NotADirectory(FailedPrecondition):
    reason = "not-a-directory"


class IsADirectory(FailedPrecondition):
    reason = "is-a-directory"


class NotAFile(FailedPrecondition):
    reason = "not-a-file"


class DirectoryNotEmpty(FailedPrecondition):
    reason = "directory-not-empty"


class InvalidMove(FailedPrecondition):
    reason = "invalid-move"


class BlocksCondemned(FailedPrecondition):
    """A commit refers to blocks the garbage collector is deleting: upload them again."""

    reason = "blocks-condemned"


class NoRoom(TooLarge):
    """A node's extended attributes would pass their room (ENOSPC)."""

    reason = "no-room"


class NoAttribute(NotFound):
    """No extended attribute of that name (ENODATA)."""

    reason = "no-attribute"


class NotSupported(InvalidArgument):
    """An extended attribute outside the namespaces a drive keeps (EOPNOTSUPP)."""

    reason = "not-supported"


class NotPermitted(FailedPrecondition):
    """Not something this kind of node allows (a hard link to a folder): EPERM."""

    reason = "not-permitted"


class CrossDrive(FailedPrecondition):
    """A move between two owners' drives: the client copies instead (EXDEV)."""

    reason = "cross-drive"


class ContentGone(FailedPrecondition):
    """The revision asked for was thinned or purged: its content is no longer kept."""

    reason = "content-gone"


class Unauthenticated(MetadataError):
    """No valid sign-in (wrong password, unknown user)."""

    reason = "unauthenticated"


class PermissionDenied(MetadataError):
    """The caller may not do this to this node (not shared with them, or only for reading)."""

    reason = "permission-denied"


class UnprovenBlocks(PermissionDenied):
    """A commit names blocks the caller neither uploaded (receipt) nor may read already."""

    reason = "unproven-blocks"


class QuotaExceeded(MetadataError):
    """The change would take the drive's owner over their quota."""

    reason = "quota-exceeded"


class StaleRevision(MetadataError):
    """A commit was based on a revision that is no longer the file's current one."""

    reason = "stale-revision"

    def __init__(self, node_id: int, base: int, current: int) -> None:
        super().__init__(
            f"node {node_id} is at revision {current}, the commit was based on revision {base}"
        )
        self.node_id = node_id
        self.base = base
        self.current = current


class DatabaseUnavailable(MetadataError):
    """The database server cannot be reached now (a write's outcome may be unknown)."""

    reason = "database-unavailable"


class StartupError(Exception):
    """metad cannot start for a reason the operator can fix; the message says which."""


class SchemaTooNew(StartupError):
    """The database was written by a newer metad; this one refuses to touch it."""
