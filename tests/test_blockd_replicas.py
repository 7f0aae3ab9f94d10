"""Several blockd replicas on one bucket, and clients that take all their addresses.

Two blockd processes serve one S3 bucket (moto's server) with one key file
and one auth key, as an operator runs replicas; a client is given both
addresses (`HOST:PORT,HOST:PORT`) and spreads its calls over them
(protos.runtime.channel_target). What a user relies on: a block confirmed
through either replica is readable through the other, the proof of an
upload (a receipt) one replica gave is good at the other, and losing a
replica mid-way loses no confirmed block while the client carries on.
TLS over a list still checks the name every certificate must carry.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from blockd import keys
from blockd.config import parse_args
from fusefs import errors
from fusefs.clients import BlockClient
from fusefs.clients.proofs import Grant
from protos import tls
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from protos.runtime import ROUND_ROBIN, channel_target
from tests import signin
from tests.storedobjects import S3Objects
from tests.test_blockd import TIMEOUT, blocks_of, connect, download, h, stats, upload

if TYPE_CHECKING:
    from conftest import DaemonRunner

    from fusefs.daemons import Daemon
    from tests.s3server import S3Server


USER = 2  # not an administrator: FindMissing wants proof (a grant or receipt) from them


def start_replicas(
    daemons: DaemonRunner, base: Path, bucket: S3Objects, key_file: Path, *extra: str, n: int = 2
) -> list[Daemon]:
    """n blockd replicas on one bucket, each with a DATA of its own, sharing key_file."""
    args = [*bucket.blockd_args, "--key-file", str(key_file), *extra]
    return [daemons.start("blockd", base / f"blockd-{i}", extra_args=args) for i in range(n)]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """The one key file of the replicas (made as README says: rotate-key --new)."""
    path = tmp_path / "shared" / "keys.json"
    keys.create(path)
    return path


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str) -> S3Objects:
    return S3Objects(s3_server, s3_bucket)


def addresses(replicas: list[Daemon]) -> str:
    return ",".join(d.address for d in replicas)


def read_back(client: BlockClient, blocks: list[bytes]) -> list[bytes]:
    """The blocks downloaded through client, with grants as metad would give them."""
    hashes = [h(data) for data in blocks]
    granted = [Grant(g.grant, g.issued_ms, g.expires_s) for g in signin.grants(hashes, USER)]
    client.grants.add(0, hashes, granted)
    return [bytes(data) for _, data in client.download(hashes)]


def upload_one(client: BlockClient, data: bytes) -> None:
    result = client.upload(lambda: [(h(data), data)])
    assert result.blocks_stored == 1


def test_blocks_written_through_the_list_are_read_and_proven_at_either_replica(
    daemons: DaemonRunner, tmp_path: Path, bucket: S3Objects, key_file: Path
) -> None:
    replicas = start_replicas(daemons, tmp_path, bucket, key_file)
    client = signin.block_client(addresses(replicas), signin.token(USER))
    written: list[bytes] = []
    try:
        # Calls are spread over both: keep writing until each replica has taken some.
        for seed in range(40):
            written += blocks_of(1000 + seed, seed=seed)
            upload_one(client, written[-1])
            received = []
            for replica in replicas:
                with connect(replica) as stub:
                    received.append(stats(stub).blocks_received)
            if len(written) >= 4 and all(received):
                break
        assert all(received), f"every call went to one replica: {received}"
        assert sum(received) == len(written)
        hashes = [h(data) for data in written]
        # With the receipts each replica gave, whichever replica answers now.
        assert client.find_missing(hashes) == set()
        assert read_back(client, written) == written
    finally:
        client.close()
    for replica in replicas:
        with connect(replica) as stub:
            assert [b.data for b in download(stub, hashes)] == written
    assert sorted(bucket.blocks()) == sorted(digest.hex() for digest in hashes)


def test_a_receipt_from_one_replica_is_proof_at_the_other(
    daemons: DaemonRunner, tmp_path: Path, bucket: S3Objects, key_file: Path
) -> None:
    first, second = start_replicas(daemons, tmp_path, bucket, key_file)
    (data,) = blocks_of(4096, seed=7)
    with signin.channel(first.address, signin.token(USER)) as channel:
        (receipt,) = upload(blocks_pb2_grpc.BlocksStub(channel), [data]).receipts
    with signin.channel(second.address, signin.token(USER)) as channel:
        stub = blocks_pb2_grpc.BlocksStub(channel)

        def missing(*receipts: blocks_pb2.Receipt) -> list[bytes]:
            asked = blocks_pb2.FindMissingRequest(hashes=[h(data)], receipts=receipts)
            return list(stub.FindMissing(asked, timeout=TIMEOUT).missing)

        assert missing() == [h(data)]  # no proof: missing, whoever holds it
        assert missing(receipt) == []
        # Another user's receipt, or one for another size, proves nothing.
        assert missing(
            blocks_pb2.Receipt(hash=h(data), size=4096, mac=signin.receipt(h(data), 4096, 3))
        ) == [h(data)]
        assert missing(blocks_pb2.Receipt(hash=h(data), size=4095, mac=receipt.mac)) == [h(data)]


def received(replica: Daemon) -> int:
    """How many blocks the replica has taken in since it started."""
    with connect(replica) as stub:
        return stats(stub).blocks_received


def test_losing_a_replica_midway_loses_no_confirmed_block(
    daemons: DaemonRunner, tmp_path: Path, bucket: S3Objects, key_file: Path
) -> None:
    replicas = start_replicas(daemons, tmp_path, bucket, key_file)
    client = signin.block_client(addresses(replicas), signin.token(USER))
    confirmed: list[bytes] = []  # blocks whose upload returned: stored, says blockd
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for seed in itertools.count():
                if stop.is_set():
                    return
                (data,) = blocks_of(64 * 1024 + seed, seed=100 + seed)
                upload_one(client, data)
                confirmed.append(data)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not condition() and not failures and time.monotonic() < deadline:
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # The first replica dies once it has stored some blocks, with uploads coming on.
        wait_for(lambda: received(replicas[0]) >= 2)
        replicas[0].kill()  # SIGKILL
        before = len(confirmed)
        wait_for(lambda: len(confirmed) >= before + 10)
    finally:
        stop.set()
        thread.join(TIMEOUT)
    try:
        assert not failures, failures
        assert len(confirmed) >= before + 10
        assert read_back(client, confirmed) == confirmed
    finally:
        client.close()
    with connect(replicas[1]) as stub:
        hashes = [h(data) for data in confirmed]
        assert [b.data for b in download(stub, hashes)] == confirmed


def test_a_replica_given_another_key_file_is_refused_at_start(
    daemons: DaemonRunner, tmp_path: Path, bucket: S3Objects, key_file: Path
) -> None:
    (first,) = start_replicas(daemons, tmp_path, bucket, key_file, n=1)
    with connect(first) as stub:
        upload(stub, blocks_of(100))
    other = tmp_path / "other-keys.json"
    keys.create(other)
    with pytest.raises(Exception, match="the key file does not fit the stored objects"):
        start_replicas(daemons, tmp_path / "second", bucket, other, n=1)


# --- over TLS ------------------------------------------------------------------------------


def test_tls_replicas_behind_one_list_are_checked_against_the_drive_name(
    daemons: DaemonRunner, tmp_path: Path, bucket: S3Objects, key_file: Path
) -> None:
    files = tls.ensure_drive_certificates(tmp_path / "tls", [])
    serve = ["--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)]
    replicas = start_replicas(daemons, tmp_path, bucket, key_file, *serve)
    trust = tls.load_trust(files.ca_cert)
    token = signin.token(USER)
    client = BlockClient(addresses(replicas), lambda: token, trust=trust)
    try:
        (data,) = blocks_of(3000, seed=3)
        upload_one(client, data)
        assert read_back(client, [data]) == [data]
    finally:
        client.close()
    # The same CA, but a name the certificates do not carry: no replica is accepted.
    wrong = tls.Trust(trust.root_pem, target_name="not-drivefs")
    liar = BlockClient(addresses(replicas), lambda: token, trust=wrong, retry_window=0.5)
    try:
        with pytest.raises(errors.Unavailable):
            liar.check()
    finally:
        liar.close()


# --- the target a list of addresses makes ---------------------------------------------------


def test_one_ip_address_is_dialled_as_it_is() -> None:
    assert channel_target("127.0.0.1:7420") == ("127.0.0.1:7420", [])


def test_a_name_or_a_list_spreads_calls_round_robin() -> None:
    rr = ("grpc.service_config", ROUND_ROBIN)
    assert channel_target("localhost:7420") == ("localhost:7420", [rr])
    assert channel_target("127.0.0.1:1, 127.0.0.2:2") == ("ipv4:127.0.0.1:1,127.0.0.2:2", [rr])
    assert channel_target("[::1]:1,[::1]:2") == ("ipv6:[::1]:1,[::1]:2", [rr])
    target, _ = channel_target("localhost:1,127.0.0.9:2")
    assert target == "ipv4:127.0.0.1:1,127.0.0.9:2"


@pytest.mark.parametrize(
    "address",
    ["", "127.0.0.1:1,", ",127.0.0.1:1", "127.0.0.1:1,,127.0.0.1:2", "127.0.0.1:1,nohost",
     "127.0.0.1:1,[::1]:2", "127.0.0.1:1,no-such-host.invalid:2"],
)  # fmt: skip
def test_a_malformed_list_is_refused(address: str) -> None:
    with pytest.raises(ValueError):
        channel_target(address)


def test_tls_over_a_list_checks_one_name() -> None:
    pem = b"(root certificates)"
    drive = tls.Trust(pem, target_name="drivefs")
    _, options = channel_target("127.0.0.1:1,127.0.0.2:2", drive)
    assert ("grpc.ssl_target_name_override", "drivefs") in options
    # Without a name in the trust, the replicas' one shared host is the name...
    _, options = channel_target("localhost:1,localhost:2", tls.Trust(pem))
    assert ("grpc.ssl_target_name_override", "localhost") in options
    # ...and replicas at different hosts cannot all be checked against one of them.
    with pytest.raises(ValueError, match="different hosts"):
        channel_target("127.0.0.1:1,127.0.0.2:2", tls.Trust(pem))


def test_no_replica_answering_is_unavailable() -> None:
    # Nothing listens at either address: the client says so, after its retry window.
    client = BlockClient("127.0.0.1:1,127.0.0.1:2", lambda: "t", retry_window=0.3)
    try:
        with pytest.raises(errors.Unavailable):
            client.check()
    finally:
        client.close()


def test_blockd_takes_metad_replicas_as_a_list(tmp_path: Path) -> None:
    base = ["--data", str(tmp_path), "--auth-key", str(tmp_path / "auth.key")]
    replicas = "127.0.0.1:7401,127.0.0.2:7401"
    assert parse_args([*base, "--metad", replicas]).metad == replicas
    with pytest.raises(SystemExit):
        parse_args([*base, "--metad", "127.0.0.1:7401,"])
