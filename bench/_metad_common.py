"""What the metad benchmarks share: a signed-in stub, a small file's commit, a batch.

metad_batch.py (one metad, three ways of making files) and metad_load.py
(replicas, subscribers) make files the same way, so their figures compare.
Blocks carry receipts made with the drive's key, as blockd's Upload gives
them: blockd is not involved, the figures are metad's.

Must not: start daemons or print (the benchmarks do).
"""

from __future__ import annotations

from pathlib import Path

import blake3
import grpc

from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from protos.runtime import create_channel

TIMEOUT = 60.0
FILES_PER_BATCH = 500  # two operations each: 1,000, ApplyBatch's limit


def stub(
    address: str, key_path: Path, user_id: int, *, admin: bool = False
) -> metadata_pb2_grpc.MetadataStub:
    """A Metadata stub on its own channel, signed in as user_id."""
    token = auth.load_or_create_key(key_path).token(user_id, admin=admin, ttl_seconds=3600)
    channel = grpc.intercept_channel(create_channel(address), auth.BearerAuth(lambda: token))
    return metadata_pb2_grpc.MetadataStub(channel)


def folder(meta: metadata_pb2_grpc.MetadataStub, name: str) -> int:
    """A new folder in the caller's root."""
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT).id
    request = pb.MakeDirectoryRequest(parent_id=root, name=name, mode=0o755)
    return meta.MakeDirectory(request, timeout=TIMEOUT).id


def commit(
    key: auth.AuthKey, user_id: int, node_id: int, index: int, device: str, base: int = 1
) -> pb.CommitRevisionRequest:
    """Content of small file number index on top of revision base (1: its first content;
    later ones differ): one block, with its receipt."""
    data = f"small file {index}\n".encode() + b"edited\n" * (base - 1)
    digest = blake3.blake3(data).digest()
    block = pb.BlockRef(
        hash=digest, offset=0, size=len(data), receipt=key.receipt(user_id, digest, len(data))
    )
    return pb.CommitRevisionRequest(
        node_id=node_id, base_revision=base, size=len(data), blocks=[block], device=device
    )


def one_file(
    meta: metadata_pb2_grpc.MetadataStub,
    key: auth.AuthKey,
    user_id: int,
    parent_id: int,
    index: int,
    device: str,
) -> None:
    """CreateFile then CommitRevision: two RPCs, two transactions."""
    create = pb.CreateFileRequest(parent_id=parent_id, name=f"f{index}", mode=0o644)
    node = meta.CreateFile(create, timeout=TIMEOUT)
    meta.CommitRevision(commit(key, user_id, node.id, index, device), timeout=TIMEOUT)


def apply_files(
    meta: metadata_pb2_grpc.MetadataStub,
    key: auth.AuthKey,
    user_id: int,
    parent_id: int,
    first_id: int,
    indexes: range,
    device: str,
) -> None:
    """One ApplyBatch making files indexes (ids first_id + index, reserved): each a
    create and its commit. Raises AssertionError if any operation failed."""
    operations = []
    for index in indexes:
        create = pb.CreateFileRequest(
            parent_id=parent_id, name=f"f{index}", mode=0o644, node_id=first_id + index
        )
        operations.append(pb.BatchOperation(create_file=create))
        made = commit(key, user_id, first_id + index, index, device)
        operations.append(pb.BatchOperation(commit_revision=made))
    reply = meta.ApplyBatch(pb.ApplyBatchRequest(operations=operations), timeout=TIMEOUT)
    failed = [r.message for r in reply.results if r.code]
    assert not failed, failed[:3]


def edit_files(
    meta: metadata_pb2_grpc.MetadataStub,
    key: auth.AuthKey,
    user_id: int,
    first_id: int,
    indexes: range,
    base: int,
    device: str,
) -> None:
    """One ApplyBatch committing new content to files indexes (made by apply_files) on
    top of revision base: the sync of edited files. Raises AssertionError if any failed."""
    operations = [
        pb.BatchOperation(commit_revision=commit(key, user_id, first_id + i, i, device, base))
        for i in indexes
    ]
    reply = meta.ApplyBatch(pb.ApplyBatchRequest(operations=operations), timeout=TIMEOUT)
    failed = [r.message for r in reply.results if r.code]
    assert not failed, failed[:3]
