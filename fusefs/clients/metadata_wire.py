"""The metad API's messages: protobuf ↔ domain values, for MetadataClient.

Owns: reading a Node, Renamed, ShareInfo and a batch result out of their
messages, and writing the requests that change the drive (create, rename,
delete, attributes, commit), each once, whether sent alone or as an
operation of ApplyBatch (the same request its own RPC would send).

Must not: call metad, keep state, or be imported outside fusefs.clients
(protobuf stays in the clients; callers see fusefs.models).
"""

from __future__ import annotations

from collections.abc import Callable

from fusefs import errors
from fusefs.clients.rpc import status_error
from fusefs.models import (
    AttributesRequest,
    BatchChange,
    BatchOutcome,
    CommitRequest,
    CreateRequest,
    DeleteRequest,
    Kind,
    LinkRequest,
    Node,
    Removed,
    Renamed,
    RenameRequest,
    Role,
    ShareInfo,
    XattrRequest,
)
from protos.drive.v1 import metadata_pb2

Receipt = Callable[[bytes, int], bytes]  # this device's receipt for a block (b"" if none)


def to_node(msg: metadata_pb2.Node) -> Node:
    return Node(
        id=msg.id,
        parent_id=msg.parent_id,
        name=msg.name,
        kind=Kind(msg.kind),
        mode=msg.mode,
        size=msg.size,
        mtime_ns=msg.mtime_ns,
        ctime_ns=msg.ctime_ns,
        revision=msg.revision,
        symlink_target=msg.symlink_target,
        change_sequence=msg.change_sequence,
        owner_id=msg.owner_id,
        role=Role(msg.role),
        uid=msg.uid if msg.HasField("uid") else None,
        gid=msg.gid if msg.HasField("gid") else None,
        rdev=msg.rdev,
        atime_ns=msg.atime_ns,
        nlink=msg.nlink or 1,
        entry_id=msg.entry_id or msg.id,
        xattrs=msg.xattrs,
    )


def to_renamed(msg: metadata_pb2.RenameResponse) -> Renamed:
    return Renamed(to_node(msg.node), msg.replaced_node_id, msg.replaced_remains, msg.saved_from)


def to_share(msg: metadata_pb2.ShareInfo) -> ShareInfo:
    return ShareInfo(
        node=to_node(msg.node),
        path=msg.path,
        owner_id=msg.owner_id,
        owner_name=msg.owner_name,
        user_id=msg.user_id,
        user_name=msg.user_name,
        role=Role(msg.role),
        created_ns=msg.created_ns,
    )


def to_outcome(
    change: BatchChange, result: metadata_pb2.BatchResult
) -> BatchOutcome | errors.DriveError:
    """What one operation of ApplyBatch did (the node after it; Renamed; Removed), or
    why it was refused."""
    if result.code == 0 and isinstance(change, RenameRequest):
        return to_renamed(result.rename)
    if result.code == 0 and isinstance(change, DeleteRequest):
        return Removed(result.delete.node_id, result.delete.remains)
    if result.code == 0:
        return to_node(result.node)
    current = result.current_revision if result.current_revision else None
    return status_error(result.code, result.message, result.reason, current)


# A create's kind -> its field in BatchOperation.
CREATE_FIELDS = {
    Kind.FILE: "create_file",
    Kind.DIRECTORY: "make_directory",
    Kind.SYMLINK: "create_symlink",
}


def batch_operation(c: BatchChange, device: str, receipt: Receipt) -> metadata_pb2.BatchOperation:
    """One operation of ApplyBatch: the request its own RPC would send."""
    op = metadata_pb2.BatchOperation(request_id=c.request_id)
    if isinstance(c, RenameRequest):
        op.rename.CopyFrom(rename_message(c, device))
    elif isinstance(c, DeleteRequest):
        op.delete.CopyFrom(delete_message(c, device))
    elif isinstance(c, CommitRequest):
        op.commit_revision.CopyFrom(commit_message(c, device, receipt))
    elif isinstance(c, AttributesRequest):
        op.set_attributes.CopyFrom(attributes_message(c, device))
    elif isinstance(c, LinkRequest):
        op.link.CopyFrom(
            metadata_pb2.LinkRequest(
                node_id=c.node_id,
                new_parent_id=c.new_parent_id,
                new_name=c.new_name,
                device=device,
            )
        )
    elif isinstance(c, XattrRequest) and c.value is None:
        op.remove_xattr.CopyFrom(
            metadata_pb2.RemoveXattrRequest(node_id=c.node_id, name=c.name, device=device)
        )
    elif isinstance(c, XattrRequest):
        op.set_xattr.CopyFrom(
            metadata_pb2.SetXattrRequest(
                node_id=c.node_id, name=c.name, value=c.value, device=device
            )
        )
    else:
        getattr(op, CREATE_FIELDS[c.kind]).CopyFrom(create_message(c, device))
    return op


def create_message(
    c: CreateRequest, device: str
) -> (
    metadata_pb2.CreateFileRequest
    | metadata_pb2.MakeDirectoryRequest
    | metadata_pb2.CreateSymlinkRequest
):
    made = dict(
        parent_id=c.parent_id, name=c.name, uid=c.owner.uid, gid=c.owner.gid,
        mtime_ns=c.mtime_ns, device=device, node_id=c.node_id,
        request_id=c.request_id,
    )  # fmt: skip
    if c.kind == Kind.SYMLINK:
        return metadata_pb2.CreateSymlinkRequest(target=c.target, **made)
    if c.kind == Kind.DIRECTORY:
        return metadata_pb2.MakeDirectoryRequest(mode=c.mode, **made)
    return metadata_pb2.CreateFileRequest(mode=c.mode, **made)


def rename_message(c: RenameRequest, device: str) -> metadata_pb2.RenameRequest:
    return metadata_pb2.RenameRequest(
        parent_id=c.parent_id,
        name=c.name,
        new_parent_id=c.new_parent_id,
        new_name=c.new_name,
        no_replace=c.no_replace,
        device=device,
        node_id=c.node_id,
        request_id=c.request_id,
        exchange=c.exchange,
    )


def delete_message(c: DeleteRequest, device: str) -> metadata_pb2.DeleteRequest:
    return metadata_pb2.DeleteRequest(
        parent_id=c.parent_id,
        name=c.name,
        directory=c.directory,
        device=device,
        node_id=c.node_id,
        request_id=c.request_id,
    )


def attributes_message(c: AttributesRequest, device: str) -> metadata_pb2.SetAttributesRequest:
    return metadata_pb2.SetAttributesRequest(
        node_id=c.node_id,
        device=device,
        mode=c.attributes.mode,
        mtime_ns=c.mtime_ns,
        atime_ns=c.attributes.atime_ns,
        uid=c.attributes.owner.uid,
        gid=c.attributes.owner.gid,
        request_id=c.request_id,
        changed_ns=c.changed_ns,
    )


def commit_message(
    c: CommitRequest, device: str, receipt: Receipt
) -> metadata_pb2.CommitRevisionRequest:
    """The request for a commit, each block with this device's receipt for it (if any)."""
    return metadata_pb2.CommitRevisionRequest(
        node_id=c.node_id,
        base_revision=c.base_revision,
        size=c.size,
        mtime_ns=c.mtime_ns,
        mode=c.attributes.mode,
        uid=c.attributes.owner.uid,
        gid=c.attributes.owner.gid,
        atime_ns=c.attributes.atime_ns,
        device=device,
        blocks=[
            metadata_pb2.BlockRef(
                hash=b.hash, offset=b.offset, size=b.size, receipt=receipt(b.hash, b.size)
            )
            for b in c.blocks
        ],
        request_id=c.request_id,
    )
