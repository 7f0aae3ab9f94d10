"""What is taken back stops working: tokens after a password change, a disabled account,
grants after an unshare, and guessing passwords gets slow.

Through the real daemons: metad refuses at once; blockd follows metad's
revocations and refuses within a moment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import grpc
import pytest

from fusefs.clients import AccountsClient
from fusefs.models import Role
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
from tests.people import Person, people

TIMEOUT = 20
BLOCKD_FOLLOWS_WITHIN = 5.0


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people(drive, "alice", "bob")


def _sign_in(metad: str, name: str, password: str) -> accounts_pb2.SignInResponse:
    stub = accounts_pb2_grpc.AccountsStub(create_channel(metad))
    return stub.SignIn(accounts_pb2.SignInRequest(name=name, password=password), timeout=TIMEOUT)


def _code(call, request) -> grpc.StatusCode:
    try:
        result = call(request, timeout=TIMEOUT)
        if not hasattr(result, "ByteSize"):  # a stream: read it
            list(result)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _metad_says(metad: str, token: str) -> grpc.StatusCode:
    stub = metadata_pb2_grpc.MetadataStub(signin.channel(metad, token))
    return _code(stub.GetRoot, pb.GetRootRequest())


def _blockd_says(blockd: str, token: str) -> grpc.StatusCode:
    stub = blocks_pb2_grpc.BlocksStub(signin.channel(blockd, token))
    return _code(stub.FindMissing, blocks_pb2.FindMissingRequest(hashes=[b"\1" * 32]))


def _eventually(check, within: float = BLOCKD_FOLLOWS_WITHIN) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def test_a_password_change_revokes_every_earlier_token_at_once(pair, drive) -> None:
    metad, blockd = drive
    alice, _ = pair
    old_password = "alice's long password"
    token = _sign_in(metad.address, "alice", old_password).token
    assert _metad_says(metad.address, token) == grpc.StatusCode.OK
    assert _blockd_says(blockd.address, token) == grpc.StatusCode.OK

    client = AccountsClient(metad.address, lambda: token)
    try:
        client.set_password("a brand new password", old_password)
    finally:
        client.close()
    # The moment the change returned, metad refuses the old token...
    assert _metad_says(metad.address, token) == grpc.StatusCode.UNAUTHENTICATED
    assert _metad_says(metad.address, alice.token) == grpc.StatusCode.UNAUTHENTICATED
    # ...and blockd within a moment.
    _eventually(lambda: _blockd_says(blockd.address, token) == grpc.StatusCode.UNAUTHENTICATED)
    # The old password is gone; the new one gives a token that works everywhere.
    with pytest.raises(grpc.RpcError):
        _sign_in(metad.address, "alice", old_password)
    fresh = _sign_in(metad.address, "alice", "a brand new password").token
    assert _metad_says(metad.address, fresh) == grpc.StatusCode.OK
    assert _blockd_says(blockd.address, fresh) == grpc.StatusCode.OK


def test_a_disabled_account_is_signed_out_everywhere(pair, drive) -> None:
    metad, blockd = drive
    _, bob = pair
    assert _blockd_says(blockd.address, bob.token) == grpc.StatusCode.OK
    admin = AccountsClient(metad.address, signin.token)
    try:
        assert admin.set_disabled("bob", True).disabled
        assert _metad_says(metad.address, bob.token) == grpc.StatusCode.UNAUTHENTICATED
        _eventually(
            lambda: _blockd_says(blockd.address, bob.token) == grpc.StatusCode.UNAUTHENTICATED
        )
        with pytest.raises(grpc.RpcError) as info:
            _sign_in(metad.address, "bob", "bob's long password")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert not admin.set_disabled("bob", False).disabled
    finally:
        admin.close()
    fresh = _sign_in(metad.address, "bob", "bob's long password").token
    assert _blockd_says(blockd.address, fresh) == grpc.StatusCode.OK


def test_unsharing_stops_blockd_serving_the_blocks_within_seconds(pair, drive) -> None:
    metad, blockd = drive
    alice, bob = pair
    folder = alice.mkdir("shared")
    data = os.urandom(300_000)
    node = alice.write("shared/plan.bin", data)
    own = alice.write("mine.bin", b"alice keeps reading her own files")
    alice.meta.share(folder.id, "bob", Role.READ)

    bob_meta = metadata_pb2_grpc.MetadataStub(signin.channel(metad.address, bob.token))
    revision = bob_meta.GetRevision(pb.GetRevisionRequest(node_id=node.id), timeout=TIMEOUT)
    hashes = [b.hash for b in revision.blocks]
    grants = [
        blocks_pb2.Grant(
            grant=b.grant, issued_ms=revision.grants_issued_ms, expires_s=revision.grants_expire_s
        )
        for b in revision.blocks
    ]
    bob_blocks = blocks_pb2_grpc.BlocksStub(signin.channel(blockd.address, bob.token))
    request = blocks_pb2.DownloadRequest(hashes=hashes, grants=grants)
    assert b"".join(b.data for b in bob_blocks.Download(request, timeout=TIMEOUT)) == data

    alice.meta.unshare(folder.id, "bob")
    # His grants still run for an hour, but blockd refuses them within seconds.
    _eventually(lambda: _code(bob_blocks.Download, request) == grpc.StatusCode.PERMISSION_DENIED)
    # And metad gives him no new ones.
    assert (
        _code(bob_meta.GetRevision, pb.GetRevisionRequest(node_id=node.id))
        == grpc.StatusCode.NOT_FOUND
    )
    # Nothing of alice's access changed.
    assert alice.read(node.id) == data
    assert alice.read(own.id) == b"alice keeps reading her own files"


def test_repeated_failed_sign_ins_are_slowed_down_not_locked_out(
    pair, drive, allowed_log_patterns
) -> None:
    allowed_log_patterns.append(r"failed sign-ins as 'bob'")
    metad, _ = drive
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as info:
            _sign_in(metad.address, "bob", "a wrong guess")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The next attempt for bob waits, even with the right password...
    with pytest.raises(grpc.RpcError) as info:
        _sign_in(metad.address, "bob", "bob's long password")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "try again in" in info.value.details()
    # ...while alice signs in as usual,
    assert _sign_in(metad.address, "alice", "alice's long password").token
    # and bob is in after the short wait.
    time.sleep(1.2)
    assert _sign_in(metad.address, "bob", "bob's long password").user.name == "bob"


def test_the_servers_own_sign_in_outlives_a_password_change(drive) -> None:
    """drive up signs in with the key file; giving yourself a password (to log in from
    another machine) must not sign out the drive you are running."""
    metad, blockd = drive
    local = signin.token(local=True)
    signed_in = signin.token()  # as a sign-in with a password gives it
    admin = AccountsClient(metad.address, lambda: local)
    try:
        admin.set_password("the owner's new password", name="owner")
    finally:
        admin.close()
    assert _metad_says(metad.address, signed_in) == grpc.StatusCode.UNAUTHENTICATED
    assert _metad_says(metad.address, local) == grpc.StatusCode.OK
    _eventually(lambda: _blockd_says(blockd.address, signed_in) == grpc.StatusCode.UNAUTHENTICATED)
    assert _blockd_says(blockd.address, local) == grpc.StatusCode.OK
