"""How the S3 backend drives its clients: what it hashes, where a wrapper's work runs.

Against ScriptedS3 on 127.0.0.1, which records every request and its
headers: a body is hashed only where nothing else proves it (plain HTTP to
another host), and a wrapper's encoding runs once per put however often the
PUT is retried, its decoding once per get; timestamps are parsed as
botocore parses them, faster. The data path's requests (obstore): a request
that times out is retried, then unavailable; wrong credentials are refused
at once (SeaweedFS checks signatures).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import boto3
import botocore.utils
import pytest

from blockd.backends.base import BackendUnavailable, Bytes, ObjectCorrupt
from blockd.backends.retry import RetryPolicy
from blockd.backends.s3 import S3Backend, is_temp_failure
from blockd.backends.s3client import client_config, make_client, parse_timestamp
from blockd.backends.s3objects import ObjectRequests, RequestFailed

if TYPE_CHECKING:
    from tests.s3server import S3Server

FORMAT_MARKER = b'{"format": "drivefs-blockd-s3", "version": 1}'
FAST = RetryPolicy(first_delay=0.01)


def with_s3(endpoint: str, scenario: Callable[[S3Backend], Awaitable[None]]) -> None:
    async def main() -> None:
        backend = await S3Backend.open(bucket="bucket", endpoint_url=endpoint, retry_policy=FAST)
        try:
            await scenario(backend)
        finally:
            await backend.close()

    asyncio.run(main())


def scripted(scripted_s3, replies):
    """A ScriptedS3 that answers the format marker, and every other request from replies."""
    replies = iter(replies)

    def script(method: str, path: str):
        return (200, FORMAT_MARKER) if path.endswith("/.format") else next(replies)

    return scripted_s3(script)


@pytest.mark.parametrize(
    ("endpoint", "signed"),
    [
        (None, False),  # AWS, over TLS
        ("https://s3.example.com", False),
        ("http://127.0.0.1:9000", False),
        ("http://[::1]:9000", False),
        ("http://localhost:9000", False),
        ("http://s3.example.com:9000", True),
        ("http://10.0.0.5:9000", True),
    ],
)
def test_a_body_is_signed_only_over_plain_http_to_another_host(
    endpoint: str | None, signed: bool
) -> None:
    config = client_config(endpoint, 4)
    assert config.s3["payload_signing_enabled"] is signed
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


@pytest.mark.parametrize(
    ("from_environment", "signed"),
    [("http://10.0.0.5:9000", True), ("http://127.0.0.1:9000", False), (None, False)],
)
def test_an_endpoint_from_the_environment_decides_the_signing_too(
    aws_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    from_environment: str | None,
    signed: bool,
) -> None:
    if from_environment is None:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL", from_environment)
    client = make_client(endpoint_url=None, region="us-east-1", concurrency=2)
    try:
        assert client.meta.config.s3["payload_signing_enabled"] is signed
    finally:
        client.close()


def test_a_put_on_loopback_carries_no_hash_of_its_body(scripted_s3) -> None:
    server = scripted(scripted_s3, [(200, b"")])

    async def scenario(backend: S3Backend) -> None:
        await backend.put("k", b"x" * 1000)

    with_s3(server.endpoint, scenario)
    requests = zip(server.requests, server.headers, strict=True)
    (put,) = [headers for (method, _), headers in requests if method == "PUT"]
    assert put["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert not [name for name in put if name.startswith("x-amz-checksum-")]
    assert "authorization" in put  # still signed: the headers, not the body


def test_put_made_encodes_once_however_often_the_put_is_retried(scripted_s3) -> None:
    server = scripted(scripted_s3, [(503, "SlowDown"), None, (200, b"")])
    made: list[int] = []

    def make() -> Bytes:
        made.append(1)
        return memoryview(b"encoded")

    async def scenario(backend: S3Backend) -> None:
        assert await backend.put_made("k", make) == len(b"encoded")

    with_s3(server.endpoint, scenario)
    assert server.requests.count(("PUT", "/bucket/k")) == 3
    assert len(made) == 1


def test_put_made_whose_encoding_fails_puts_nothing(scripted_s3) -> None:
    server = scripted(scripted_s3, [])

    def make() -> Bytes:
        raise ObjectCorrupt("k", "cannot encode")

    async def scenario(backend: S3Backend) -> None:
        with pytest.raises(ObjectCorrupt):
            await backend.put_made("k", make)

    with_s3(server.endpoint, scenario)
    assert ("PUT", "/bucket/k") not in server.requests


def test_get_then_decodes_the_body_and_a_failed_decode_is_not_retried(scripted_s3) -> None:
    server = scripted(scripted_s3, [(503, "SlowDown"), (200, b"body"), (200, b"bad")])

    def decode(data: Bytes) -> bytes:
        if bytes(data) == b"bad":
            raise ObjectCorrupt("k", "does not decode")
        return bytes(data).upper()

    async def scenario(backend: S3Backend) -> None:
        assert await backend.get_then("k", decode) == b"BODY"
        with pytest.raises(ObjectCorrupt):
            await backend.get_then("k", decode)

    with_s3(server.endpoint, scenario)
    assert server.requests.count(("GET", "/bucket/k")) == 3  # 2 for the first, 1 for the second


@pytest.mark.parametrize(
    "value",
    [
        "Sat, 28 Nov 2026 00:21:07 GMT",  # Last-Modified of a GET or HEAD
        "2026-11-28T00:21:07.000Z",  # LastModified of a listed object
        "2026-11-28T00:21:07.123456Z",
        "2026-11-28T00:21:07Z",
        "Sat, 28 Nov 2026 00:21:07 -0000",  # no zone: botocore's parser decides
        "2026-11-28T00:21:07+01:00",
        "1795825267",
    ],
)
def test_timestamps_parse_as_botocore_parses_them(value: str) -> None:
    assert parse_timestamp(value) == botocore.utils.parse_timestamp(value)
    assert parse_timestamp(value).tzinfo is not None


def test_a_listed_object_was_modified_now(s3_store: tuple[S3Server, str]) -> None:
    server, bucket = s3_store

    async def scenario(backend: S3Backend) -> None:
        await backend.put("k", b"data")
        (info,) = [info async for info in backend.list_objects()]
        assert abs(info.modified_ns / 1e9 - time.time()) < 60

    async def main() -> None:
        backend = await S3Backend.open(
            bucket=bucket, endpoint_url=server.endpoint, region="us-east-1"
        )
        try:
            await scenario(backend)
        finally:
            await backend.close()

    asyncio.run(main())


def test_a_request_that_times_out_is_retried_then_unavailable(scripted_s3) -> None:
    def script(method: str, path: str):
        if path.endswith("/.format"):
            return 200, FORMAT_MARKER
        time.sleep(0.6)  # longer than the request timeout
        return 200, b"late"

    server = scripted_s3(script)

    async def main() -> None:
        backend = await S3Backend.open(
            bucket="bucket",
            endpoint_url=server.endpoint,
            retry_policy=RetryPolicy(deadline=0.5, first_delay=0.01, max_delay=0.05),
            request_timeout=0.2,
        )
        try:
            with pytest.raises(BackendUnavailable, match="timed out"):
                await backend.get("k")
        finally:
            await backend.close()

    asyncio.run(main())
    assert server.requests.count(("GET", "/bucket/k")) >= 2


def test_wrong_credentials_on_the_data_path_are_access_denied_at_once(
    seaweed_server: S3Server, seaweed_bucket: str
) -> None:
    """SeaweedFS checks signatures: a refused request is not retried, and says why."""
    seaweed_server.put(seaweed_bucket, "k", b"data")
    wrong = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="wrong")
    requests = ObjectRequests(
        wrong,
        bucket=seaweed_bucket,
        endpoint_url=seaweed_server.endpoint,
        region="us-east-1",
        sign_payload=False,
        concurrency=2,
        timeout=10,
    )

    async def main() -> None:
        for attempt in (requests.get("k"), requests.put("k2", b"x"), requests.exists("k")):
            with pytest.raises(RequestFailed) as info:
                await attempt
            assert info.value.status == 403
            assert not info.value.transient
            assert not is_temp_failure(info.value)

    asyncio.run(main())
    assert seaweed_server.keys(seaweed_bucket) == ["k"]
