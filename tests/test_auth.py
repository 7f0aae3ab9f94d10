"""Sign-in and who may reach what: tokens, accounts, and blocks between users.

alice is the first user (an administrator); bob is created by her. Whatever ids,
hashes or tokens bob sends, he reaches nothing of alice's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import blake3
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusefs.credentials import TOKEN_ENV
from protos import auth
from protos.drive.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    blocks_pb2,
    blocks_pb2_grpc,
    metadata_pb2_grpc,
)
from protos.drive.v1 import metadata_pb2 as pb
from protos.runtime import create_channel
from tests import signin
from tests.running import drive_cli

TIMEOUT = 20
BOB_PASSWORD = "bob's long password"


def h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _accounts(address: str, bearer: str | None) -> accounts_pb2_grpc.AccountsStub:
    channel = create_channel(address) if bearer is None else signin.channel(address, bearer)
    return accounts_pb2_grpc.AccountsStub(channel)


@pytest.fixture
def bob(drive) -> Iterator[str]:
    """bob's token, from a real sign-in with his password."""
    metad, _ = drive
    _accounts(metad.address, signin.token()).CreateUser(
        accounts_pb2.CreateUserRequest(name="bob", password=BOB_PASSWORD), timeout=TIMEOUT
    )
    reply = _accounts(metad.address, None).SignIn(
        accounts_pb2.SignInRequest(name="bob", password=BOB_PASSWORD), timeout=TIMEOUT
    )
    assert reply.user.name == "bob" and not reply.user.admin
    assert reply.user.quota_bytes == 10 * 1024**3
    yield reply.token


def _code(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, timeout=TIMEOUT, **kwargs)
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return info.value.code()


# --- tokens ------------------------------------------------------------------------------------


def test_calls_without_a_valid_token_are_refused_but_health_is_open(drive) -> None:
    metad, blockd = drive
    other_key = auth.AuthKey(os.urandom(32))
    forged = other_key.token(1, admin=True, ttl_seconds=3600)
    expired = signin.key().token(1, admin=True, ttl_seconds=3600, now=0)
    tampered = signin.token()[:-2] + "AA"
    for address in (metad.address, blockd.address):
        with create_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status
            assert status == health_pb2.HealthCheckResponse.SERVING
    for bearer in (None, "", "garbage", forged, expired, tampered):
        channel = (
            create_channel(metad.address)
            if bearer is None
            else signin.channel(metad.address, bearer)
        )
        meta = metadata_pb2_grpc.MetadataStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Said to any client, in words that name no particular program.
        assert "drive login" not in info.value.details()
        if bearer is None:
            assert "Accounts.SignIn" in info.value.details()
        if bearer is expired:
            assert info.value.details() == "token expired: sign in again"
        channel = (
            create_channel(blockd.address)
            if bearer is None
            else signin.channel(blockd.address, bearer)
        )
        blocks = blocks_pb2_grpc.BlocksStub(channel)
        request = blocks_pb2.FindMissingRequest(hashes=[h(b"x")])
        assert _code(blocks.FindMissing, request) == grpc.StatusCode.UNAUTHENTICATED


def test_sign_in_renew_and_wrong_passwords(drive, bob: str) -> None:
    metad, _ = drive
    anonymous = _accounts(metad.address, None)
    for name, password in (("bob", "wrong password"), ("nobody", BOB_PASSWORD), ("bob", "")):
        request = accounts_pb2.SignInRequest(name=name, password=password)
        assert _code(anonymous.SignIn, request) == grpc.StatusCode.UNAUTHENTICATED
    # The first user has no password: it signs in with the drive's key only.
    request = accounts_pb2.SignInRequest(name="owner", password="")
    assert _code(anonymous.SignIn, request) == grpc.StatusCode.UNAUTHENTICATED
    as_bob = _accounts(metad.address, bob)
    assert as_bob.WhoAmI(accounts_pb2.WhoAmIRequest(), timeout=TIMEOUT).name == "bob"
    renewed = as_bob.RenewToken(accounts_pb2.RenewTokenRequest(ttl_seconds=60), timeout=TIMEOUT)
    claims = signin.key().verify(renewed.token)
    assert claims.user_id == renewed.user.id and not claims.admin
    assert renewed.expires_s == claims.expires_s


def test_only_an_administrator_manages_users(drive, bob: str) -> None:
    metad, blockd = drive
    as_bob = _accounts(metad.address, bob)
    request = accounts_pb2.CreateUserRequest(name="eve", password="eve's password")
    assert _code(as_bob.CreateUser, request) == grpc.StatusCode.PERMISSION_DENIED
    request = accounts_pb2.SetQuotaRequest(name="bob", quota_bytes=0)
    assert _code(as_bob.SetQuota, request) == grpc.StatusCode.PERMISSION_DENIED
    request = accounts_pb2.SetPasswordRequest(name="owner", new_password="taken over!")
    assert _code(as_bob.SetPassword, request) == grpc.StatusCode.PERMISSION_DENIED
    # A token claiming admin for bob is forged only with the drive's key: bob has none.
    blocks = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address, bob))
    assert _code(blocks.GetStats, blocks_pb2.GetStatsRequest()) == grpc.StatusCode.PERMISSION_DENIED
    request = blocks_pb2.CollectGarbageRequest(grace_seconds=0)
    assert _code(blocks.CollectGarbage, request) == grpc.StatusCode.PERMISSION_DENIED
    meta = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address, bob))
    request = pb.CondemnBlocksRequest(hashes=[h(b"x")])
    assert _code(meta.CondemnBlocks, request) == grpc.StatusCode.PERMISSION_DENIED
    # Names are checked; a taken one is refused.
    as_admin = _accounts(metad.address, signin.token())
    for name, code in (("bob", grpc.StatusCode.ALREADY_EXISTS), ("-x", None), ("a/b", None)):
        request = accounts_pb2.CreateUserRequest(name=name, password="long enough pw")
        assert _code(as_admin.CreateUser, request) == (code or grpc.StatusCode.INVALID_ARGUMENT)
    request = accounts_pb2.CreateUserRequest(name="carol", password="short")
    assert _code(as_admin.CreateUser, request) == grpc.StatusCode.INVALID_ARGUMENT


# --- nodes and blocks between users -----------------------------------------------------------


def test_bob_reaches_no_node_of_alice_whatever_ids_he_sends(drive, bob: str) -> None:
    metad, _ = drive
    alice = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address))
    root = alice.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    folder = alice.MakeDirectory(pb.MakeDirectoryRequest(parent_id=root.id, name="private"))
    secret = alice.CreateFile(pb.CreateFileRequest(parent_id=folder.id, name="plan.txt"))
    meta = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address, bob))
    bob_root = meta.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    assert bob_root.id not in (root.id, folder.id, secret.id)
    assert list(meta.ListDirectory(pb.ListDirectoryRequest(node_id=bob_root.id)).entries) == []
    denied = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
    calls = [
        (meta.Stat, pb.StatRequest(node_id=secret.id)),
        (meta.Lookup, pb.LookupRequest(parent_id=folder.id, name="plan.txt")),
        (meta.ListDirectory, pb.ListDirectoryRequest(node_id=root.id)),
        (meta.GetRevision, pb.GetRevisionRequest(node_id=secret.id)),
        (meta.ListRevisions, pb.ListRevisionsRequest(node_id=secret.id)),
        (meta.MakeDirectory, pb.MakeDirectoryRequest(parent_id=folder.id, name="x")),
        (meta.CreateFile, pb.CreateFileRequest(parent_id=folder.id, name="x")),
        (meta.CommitRevision, pb.CommitRevisionRequest(node_id=secret.id, base_revision=1)),
        (meta.SetAttributes, pb.SetAttributesRequest(node_id=secret.id, mode=0o777)),
        (meta.Delete, pb.DeleteRequest(parent_id=folder.id, name="plan.txt")),
        (
            meta.Rename,
            pb.RenameRequest(
                parent_id=folder.id, name="plan.txt", new_parent_id=bob_root.id, new_name="mine"
            ),
        ),
        (
            meta.Rename,
            pb.RenameRequest(
                parent_id=bob_root.id, name="nothing", new_parent_id=folder.id, new_name="x"
            ),
        ),
    ]
    for call, request in calls:
        assert _code(call, request) in denied, call
    marked = meta.MarkAccessed(pb.MarkAccessedRequest(node_ids=[secret.id, folder.id]))
    assert list(marked.nodes) == []  # skipped: nothing said about them either
    too_many = pb.MarkAccessedRequest(node_ids=range(1, 1002))
    assert _code(meta.MarkAccessed, too_many) == grpc.StatusCode.INVALID_ARGUMENT
    # alice's file is untouched.
    after = alice.Stat(pb.StatRequest(node_id=secret.id), timeout=TIMEOUT)
    assert (after.parent_id, after.name, after.mode, after.revision, after.atime_ns) == (
        folder.id,
        "plan.txt",
        secret.mode,
        1,
        secret.atime_ns,
    )


def test_bob_cannot_probe_or_read_alices_blocks(drive, bob: str) -> None:
    _, blockd = drive
    alices = [os.urandom(50_000) for _ in range(3)]
    hashes = [h(b) for b in alices]
    alice = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address))
    alice.Upload(iter(blocks_pb2.UploadRequest(hash=h(b), data=b) for b in alices))
    stats = alice.GetStats(blocks_pb2.GetStatsRequest(), timeout=TIMEOUT)

    blocks = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address, bob))
    bob_id = signin.key().verify(bob).user_id
    # "Does anyone have this?": every block is missing for bob, with or without
    # grants made out to alice.
    for grants in ([], signin.grants(hashes, user_id=1)):
        request = blocks_pb2.FindMissingRequest(hashes=hashes, grants=grants)
        assert list(blocks.FindMissing(request, timeout=TIMEOUT).missing) == hashes
    # No download without a grant of his own, nor with alice's.
    for grants in ([], signin.grants(hashes, user_id=1), [blocks_pb2.Grant()] * 3):
        request = blocks_pb2.DownloadRequest(hashes=hashes, grants=grants)
        assert _code(blocks.Download, request) == grpc.StatusCode.PERMISSION_DENIED
    expired = [
        blocks_pb2.Grant(grant=signin.key().grant(bob_id, 0, 1, digest), expires_s=1)
        for digest in hashes
    ]
    request = blocks_pb2.DownloadRequest(hashes=hashes, grants=expired)
    assert _code(blocks.Download, request) == grpc.StatusCode.PERMISSION_DENIED
    # bob uploading the same content proves he has it (his receipt says so);
    # storage stays deduplicated.
    reply = blocks.Upload(iter(blocks_pb2.UploadRequest(hash=h(b), data=b) for b in alices[:1]))
    (receipt,) = reply.receipts
    others = [blocks_pb2.Receipt()] * (len(hashes) - 1)
    request = blocks_pb2.FindMissingRequest(hashes=hashes, receipts=[receipt, *others])
    assert list(blocks.FindMissing(request, timeout=TIMEOUT).missing) == hashes[1:]
    after = alice.GetStats(blocks_pb2.GetStatsRequest(), timeout=TIMEOUT)
    assert (after.object_count, after.stored_bytes) == (stats.object_count, stats.stored_bytes)


def test_grants_come_with_revisions_of_files_one_may_read(drive, bob: str) -> None:
    metad, blockd = drive
    data = os.urandom(10_000)
    alice_blocks = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address))
    reply = alice_blocks.Upload(iter([blocks_pb2.UploadRequest(hash=h(data), data=data)]))
    alice = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address))
    root = alice.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)
    f = alice.CreateFile(pb.CreateFileRequest(parent_id=root.id, name="f"))
    ref = pb.BlockRef(hash=h(data), offset=0, size=len(data), receipt=reply.receipts[0].mac)
    alice.CommitRevision(
        pb.CommitRevisionRequest(node_id=f.id, base_revision=1, size=len(data), blocks=[ref])
    )
    revision = alice.GetRevision(pb.GetRevisionRequest(node_id=f.id), timeout=TIMEOUT)
    grant = blocks_pb2.Grant(
        grant=revision.blocks[0].grant,
        issued_ms=revision.grants_issued_ms,
        expires_s=revision.grants_expire_s,
    )
    request = blocks_pb2.DownloadRequest(hashes=[h(data)], grants=[grant])
    assert [b.data for b in alice_blocks.Download(request, timeout=TIMEOUT)] == [data]
    # The same grant is worth nothing to bob.
    bob_blocks = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address, bob))
    assert _code(bob_blocks.Download, request) == grpc.StatusCode.PERMISSION_DENIED


# --- the drive command -------------------------------------------------------------------------


def _drive(*args: str, stdin: str = "", env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return drive_cli(*args, stdin=stdin, env=env)


def test_user_add_login_whoami_logout(drive, tmp_path: Path) -> None:
    metad, _ = drive
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop(TOKEN_ENV, None)
    admin_env = {**env, TOKEN_ENV: signin.token()}
    added = _drive(
        "user", "add", "carol", "--quota", "2G", "--password-stdin", "--metad", metad.address,
        stdin="carol's password\n", env=admin_env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "user carol created" in added.stdout and "2.0 GiB" in added.stdout
    wrong = _drive(
        "login", "carol", "--password-stdin", "--metad", metad.address,
        stdin="not it\n", env=env,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "drive: error: wrong user name or password"
    ok = _drive(
        "login", "carol", "--password-stdin", "--metad", metad.address,
        stdin="carol's password\n", env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    saved = tmp_path / "config" / "drivefs" / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    me = _drive("whoami", "--metad", metad.address, env=env)
    assert me.returncode == 0, me.stderr
    assert me.stdout.startswith("carol (user ")
    listed = _drive("user", "list", "--metad", metad.address, env=env)
    assert {"owner", "carol"} <= {line.split()[1] for line in listed.stdout.splitlines()}
    assert _drive("logout", "--metad", metad.address, env=env).returncode == 0
    gone = _drive("whoami", "--metad", metad.address, env=env)
    assert gone.returncode == 1 and "not signed in" in gone.stderr


def test_two_users_mount_their_own_drives(drive, bob: str, mounts) -> None:
    metad, blockd = drive
    alice_mount = mounts.mount(metad, blockd, "alice-laptop")
    bob_mount = mounts.mount(metad, blockd, "bob-laptop", token=bob)
    same = os.urandom(3 * 1024 * 1024)
    (alice_mount.path / "alice.bin").write_bytes(same)
    (bob_mount.path / "bob.bin").write_bytes(same)  # the same content: stored once
    assert sorted(os.listdir(alice_mount.path)) == ["alice.bin"]
    assert sorted(os.listdir(bob_mount.path)) == ["bob.bin"]
    assert (bob_mount.path / "bob.bin").read_bytes() == same
    stats = signin.block_client(blockd.address).stats()
    assert stats.stored_bytes < 1.1 * len(same)
