"""Quotas: a write that would pass the owner's quota fails with EDQUOT and commits nothing."""

from __future__ import annotations

import errno
import os

import grpc
import pytest

from protos.drive.v1 import accounts_pb2, accounts_pb2_grpc, metadata_pb2_grpc
from protos.drive.v1 import metadata_pb2 as pb
from tests import signin

MiB = 1024 * 1024
TIMEOUT = 20


def _set_quota(metad, name: str, size: int) -> None:
    stub = accounts_pb2_grpc.AccountsStub(signin.channel(metad.address))
    stub.SetQuota(accounts_pb2.SetQuotaRequest(name=name, quota_bytes=size), timeout=TIMEOUT)


def test_a_commit_over_quota_is_refused_and_changes_nothing(drive) -> None:
    metad, _ = drive
    _set_quota(metad, "owner", 1000)
    meta = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address))
    root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    f = meta.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="f"), timeout=TIMEOUT)
    ref = pb.BlockRef(hash=b"\1" * 32, offset=0, size=600, receipt=signin.receipt(b"\1" * 32, 600))
    meta.CommitRevision(
        pb.CommitRevisionRequest(node_id=f.id, base_revision=1, size=600, blocks=[ref])
    )
    big = pb.BlockRef(
        hash=b"\2" * 32, offset=0, size=1001, receipt=signin.receipt(b"\2" * 32, 1001)
    )
    with pytest.raises(grpc.RpcError) as info:
        meta.CommitRevision(
            pb.CommitRevisionRequest(node_id=f.id, base_revision=2, size=1001, blocks=[big])
        )
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in info.value.details()
    after = meta.Stat(pb.StatRequest(node_id=f.id), timeout=TIMEOUT)
    assert (after.revision, after.size) == (2, 600)
    # Shrinking is always allowed.
    small = pb.BlockRef(hash=b"\3" * 32, offset=0, size=10, receipt=signin.receipt(b"\3" * 32, 10))
    meta.CommitRevision(
        pb.CommitRevisionRequest(node_id=f.id, base_revision=2, size=10, blocks=[small])
    )


def test_quota_overflow_through_the_mount_is_edquot_and_keeps_the_old_file(
    drive, mounts, allowed_log_patterns: list[str]
) -> None:
    allowed_log_patterns += [r"quota", r"could not save"]
    metad, blockd = drive
    _set_quota(metad, "owner", 4 * MiB)
    m = mounts.mount(metad, blockd, "dev-a")
    old = os.urandom(3 * MiB)
    (m.path / "report.bin").write_bytes(old)
    with pytest.raises(OSError) as info:
        (m.path / "report.bin").write_bytes(os.urandom(5 * MiB))
    assert info.value.errno == errno.EDQUOT
    fresh = mounts.mount(metad, blockd, "dev-b", cache=m.path.parent / "fresh-cache")
    assert (fresh.path / "report.bin").read_bytes() == old
    usage = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address)).GetUsage(
        pb.GetUsageRequest(), timeout=TIMEOUT
    )
    assert (usage.used_bytes, usage.quota_bytes) == (3 * MiB, 4 * MiB)
