"""Journal rows as the operations of one ApplyBatch call, and the single calls that
make a node again when the batch could not."""

from __future__ import annotations

from fusefs.clients import MetadataClient
from fusefs.models import (
    AttributesRequest,
    BatchChange,
    BlockRef,
    CommitRequest,
    CreateRequest,
    DeleteRequest,
    Kind,
    LinkRequest,
    Node,
    RenameRequest,
    XattrRequest,
)
from fusefs.mount.journal_rows import (
    ATTRIBUTES,
    DELETE,
    DIRECTORY,
    EXCHANGE,
    LINK,
    NO_REPLACE,
    RENAME,
    XATTR,
    PendingChange,
)


def _mode(create: PendingChange) -> int:
    return create.held.mode if create.held.mode is not None else 0o644


def request_for(
    row: PendingChange, blocks: list[BlockRef] | tuple[()], xattr_value: bytes | None = None
) -> BatchChange:
    """The operation of an ApplyBatch call a journal row stands for (xattr_value: what an
    XATTR row sets; None removes)."""
    if row.kind == DELETE:
        directory = bool(row.flags & DIRECTORY)
        return DeleteRequest(row.parent_id, row.name, directory, row.node_id, row.request_id)
    if row.kind == RENAME:
        return RenameRequest(
            row.parent_id, row.name, row.new_parent_id, row.new_name,
            bool(row.flags & NO_REPLACE), row.node_id, row.request_id,
            bool(row.flags & EXCHANGE),
        )  # fmt: skip
    if row.is_create:
        return CreateRequest(
            row.node_id, row.parent_id, row.name, _mode(row), row.held.owner, row.mtime_ns,
            row.request_id, row.node_kind, row.target,
        )  # fmt: skip
    if row.kind == ATTRIBUTES:
        mtime = row.mtime_ns if row.sets_mtime else None
        return AttributesRequest(row.node_id, row.held, mtime, row.request_id, row.created_ns)
    if row.kind == XATTR:
        return XattrRequest(row.node_id, row.new_name, xattr_value, row.request_id)
    if row.kind == LINK:
        return LinkRequest(row.node_id, row.new_parent_id, row.new_name, row.request_id)
    return CommitRequest(
        row.node_id, max(row.base_revision, 0), row.size, row.mtime_ns, tuple(blocks),
        row.held, row.request_id,
    )  # fmt: skip


def make_node(meta: MetadataClient, create: PendingChange, parent_id: int, name: str) -> Node:
    """The single call that makes a create row's node (with its reserved id)."""
    owner = create.held.owner
    if create.node_kind == Kind.DIRECTORY:
        return meta.make_directory(parent_id, name, _mode(create), owner, create.node_id)
    if create.node_kind == Kind.SYMLINK:
        return meta.create_symlink(parent_id, name, create.target, owner, create.node_id)
    return meta.create_file(parent_id, name, _mode(create), owner, create.node_id)
