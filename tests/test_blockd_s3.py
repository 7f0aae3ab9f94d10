"""blockd end to end on the S3 backend: a real daemon, gRPC, and a real S3 API server.

The daemon runs with `--backend s3` against each real S3 server of
tests/s3server.py on 127.0.0.1 (moto's, and SeaweedFS), each test in a
bucket of its own. What test_blockd.py
shows on the local directory is shown here on a bucket: blocks round trip,
dedup and FindMissing, nothing readable at rest, text stored smaller,
persistence across a restart, a damaged object reaching the client as
DATA_LOSS, and start-up failures as one line with exit status 2 (wrong
credentials only on SeaweedFS: moto takes any).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from fusefs.daemons import Daemon
from tests import signin
from tests.test_blockd import (
    MARKER,
    TIMEOUT,
    MiB,
    blocks_of,
    connect,
    download,
    find_missing,
    h,
    stats,
    stored_size,
    text_like,
    upload,
)

if TYPE_CHECKING:
    from conftest import DaemonRunner

    from tests.s3server import S3Server


PREFIX = "drive/"


def s3_args(server: S3Server, bucket: str) -> list[str]:
    return [
        "--backend", "s3", "--s3-endpoint", server.endpoint, "--s3-bucket", bucket,
        "--s3-region", "us-east-1", "--s3-prefix", PREFIX,
    ]  # fmt: skip


def start_on_s3(daemons: DaemonRunner, data_dir: Path, server: S3Server, bucket: str) -> Daemon:
    return daemons.start("blockd", data_dir, extra_args=s3_args(server, bucket))


def test_blocks_round_trip_through_a_bucket_encrypted_and_compressed(
    daemons: DaemonRunner, tmp_path: Path, s3_store: tuple[S3Server, str]
) -> None:
    s3_server, s3_bucket = s3_store
    data_dir = tmp_path / "blockd"
    text = text_like(2 * MiB, marker=MARKER)
    noise, small = blocks_of(3 * MiB, 100, seed=41)
    daemon = start_on_s3(daemons, data_dir, s3_server, s3_bucket)
    with connect(daemon) as stub:
        hashes = [h(text), h(noise), h(small)]
        assert find_missing(stub, hashes) == hashes
        first = upload(stub, [text, noise, text])
        assert (first.blocks_received, first.blocks_stored) == (3, 3)
        assert find_missing(stub, hashes) == [h(small)]
        upload(stub, [small, noise])
        assert [b.data for b in download(stub, [*hashes, h(text)])] == [text, noise, small, text]
        s = stats(stub)

    objects = s3_server.objects(s3_bucket)
    assert sorted(objects) == sorted(
        [f"{PREFIX}.format"] + [f"{PREFIX}{digest.hex()}" for digest in hashes]
    )
    for key, body in objects.items():
        assert MARKER not in body, key
    assert len(objects[PREFIX + h(text).hex()]) < len(text) // 2
    assert len(objects[PREFIX + h(noise).hex()]) == stored_size(len(noise)) <= len(noise) + 100
    blocks = [PREFIX + digest.hex() for digest in hashes]
    assert (s.object_count, s.stored_bytes) == (3, sum(len(objects[key]) for key in blocks))
    assert not (data_dir / "blocks").exists()  # nothing stored locally but the key file
    log = daemon.log_path.read_text()
    assert f"blockd data s3://{s3_bucket}/{PREFIX} at {s3_server.endpoint}: 0 blocks" in log


def test_a_bucket_survives_a_restart_and_a_damaged_object_is_data_loss(
    daemons: DaemonRunner,
    tmp_path: Path,
    s3_store: tuple[S3Server, str],
    allowed_log_patterns: list[str],
) -> None:
    s3_server, s3_bucket = s3_store
    allowed_log_patterns += [
        r"ERROR blockd\.store: stored block [0-9a-f]{64} is unreadable",
        r"WARNING blockd\.store: quarantined corrupt block",
    ]
    data_dir = tmp_path / "blockd"
    healthy, victim = blocks_of(5000, MiB, seed=42)
    first = start_on_s3(daemons, data_dir, s3_server, s3_bucket)
    with connect(first) as stub:
        upload(stub, [healthy, victim])
    assert first.stop() == 0

    key = PREFIX + h(victim).hex()
    body = bytearray(s3_server.get(s3_bucket, key))
    body[len(body) // 2] ^= 0x01
    s3_server.put(s3_bucket, key, bytes(body))

    second = start_on_s3(daemons, data_dir, s3_server, s3_bucket)
    with connect(second) as stub:
        s = stats(stub)
        assert (s.object_count, s.stored_bytes) == (2, stored_size(5000, MiB))
        assert find_missing(stub, [h(healthy), h(victim)]) == []
        got = []
        with pytest.raises(grpc.RpcError) as info:
            for block in stub.Download(
                signin.download_request([h(healthy), h(victim)]), timeout=TIMEOUT
            ):
                got.append(block.data)
        assert info.value.code() == grpc.StatusCode.DATA_LOSS
        assert h(victim).hex() in info.value.details()
        assert got == [healthy]
        # Quarantined: kept aside under quarantine/, missing until uploaded again.
        assert find_missing(stub, [h(healthy), h(victim)]) == [h(victim)]
        moved = [k for k in s3_server.objects(s3_bucket) if k.startswith(f"{PREFIX}quarantine/")]
        assert [k.rsplit("/", 1)[1].split(".")[0] for k in moved] == [h(victim).hex()]
        upload(stub, [victim])
        assert [b.data for b in download(stub, [h(victim)])] == [victim]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no bucket", r"cannot use s3://no-such-bucket/drive/ at .*: the bucket does not exist"),
        ("no credentials", r"no S3 credentials \(set AWS_ACCESS_KEY_ID"),
    ],
)
def test_an_unusable_bucket_at_start_is_one_line_and_exit_status_2(
    tmp_path: Path, s3_store: tuple[S3Server, str], case: str, message: str
) -> None:
    s3_server, s3_bucket = s3_store
    env = dict(os.environ)
    bucket = s3_bucket
    if case == "no bucket":
        bucket = "no-such-bucket"
    else:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(name, None)
    assert_refused_at_start(tmp_path, s3_server, bucket, env, message)


@pytest.mark.parametrize(
    ("variable", "code"),
    [
        ("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"),
        ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_at_start_are_access_denied_in_one_line(
    tmp_path: Path, seaweed_server: S3Server, seaweed_bucket: str, variable: str, code: str
) -> None:
    env = {**os.environ, variable: "not-the-right-one"}
    message = rf"cannot use s3://{seaweed_bucket}/drive/ at .*: access denied \({code}\)"
    assert_refused_at_start(tmp_path, seaweed_server, seaweed_bucket, env, message)


def assert_refused_at_start(
    tmp_path: Path, s3_server: S3Server, bucket: str, env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blockd", "--data", str(tmp_path / "blockd"), "--listen",
         "127.0.0.1:0", "--auth-key", str(signin.KEY_PATH), *s3_args(s3_server, bucket)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("blockd: error:") == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("blockd: error: ")
    assert re.search(message, last), last
    assert "Traceback" not in result.stderr
