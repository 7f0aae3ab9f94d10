"""How blockd's S3 clients are set up: botocore's config, the endpoint, signing.

Owns the choices both clients of the S3 backend share (s3.py: one boto3 client
for the format marker, listings and quarantine; s3objects.py's obstore requests
for the data path): which endpoint and region they talk to, whether a body is
signed (only where nothing else proves it on the wire), botocore's retries off
(the backend's one policy retries instead), and a timestamp parser without
dateutil.

Must not: make requests beyond the one HEAD that finds an AWS bucket's region;
map errors (s3.py does, once).
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import urllib.parse
from typing import Any

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config as BotoConfig

from blockd.backends.s3objects import ObjectRequests


def client_config(endpoint_url: str | None, concurrency: int) -> BotoConfig:
    """How botocore is set up: our retries, a connection per worker, and hashing once.

    Every object is checked above this backend (the store hashes a block
    before it puts it and after it gets it, or the codec authenticates it),
    so botocore's own CRC32 of each body, and the SHA-256 of each body it
    puts in the signature, only spend CPU on what is checked anyway: off,
    except where the operation requires a checksum, and except the payload
    signature over plain HTTP to another host, where it is the only thing
    that proves on the wire that the body is the one we sent. Over TLS the
    channel proves it; on loopback there is no wire.
    """
    s3: dict[str, object] = {"payload_signing_enabled": not _private_channel(endpoint_url)}
    if endpoint_url:
        s3["addressing_style"] = "path"
    return BotoConfig(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},  # ours retry instead
        connect_timeout=10,
        read_timeout=60,
        s3=s3,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="drivefs-blockd",
    )


def _private_channel(endpoint_url: str | None) -> bool:
    """Whether no one can alter a request on its way: TLS (AWS's default), or loopback."""
    if endpoint_url is None:
        return True
    url = urllib.parse.urlsplit(endpoint_url)
    if url.scheme == "https":
        return True
    host = url.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_client(*, endpoint_url: str | None, region: str | None, concurrency: int) -> Any:
    """The boto3 client, set up by client_config for the endpoint it really talks to.

    Without endpoint_url, boto3 may still take one from the environment
    (AWS_ENDPOINT_URL) or ~/.aws/config: if that one is plain HTTP to
    another host, the client is made again, signing its bodies.
    """
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    session = boto3.session.Session(botocore_session=core)
    client = session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=client_config(endpoint_url, concurrency),
    )
    actual = client.meta.endpoint_url
    if _private_channel(actual) == _private_channel(endpoint_url):
        return client
    client.close()
    return session.client(
        "s3", endpoint_url=actual, region_name=region, config=client_config(actual, concurrency)
    )


def parse_timestamp(value: str | float) -> datetime.datetime:
    """botocore's timestamp parser, without dateutil for the two forms S3 sends.

    dateutil takes 30-40 us a value, and S3 sends one in every GET and HEAD
    reply (Last-Modified) and one per object listed (28 ms a page of 1000).
    Anything else, or a date without a zone, goes to botocore's own parser.
    """
    if isinstance(value, str):
        try:
            if value.endswith("Z") and "T" in value:  # ISO 8601, UTC: in listings
                parsed = datetime.datetime.fromisoformat(value[:-1])
                return parsed.replace(tzinfo=datetime.UTC)
            parsed = email.utils.parsedate_to_datetime(value)  # an HTTP date: in headers
            if parsed.tzinfo is not None:
                return parsed
        except (ValueError, TypeError, IndexError):
            pass
    return botocore.utils.parse_timestamp(value)


def object_requests(
    client: Any, bucket: str, endpoint_url: str | None, concurrency: int, timeout: float
) -> ObjectRequests:
    """The data path's requests, set up as the boto3 client is (see s3objects.py).

    The endpoint is the one boto3 talks to when it was named or came from the
    environment or ~/.aws/config; AWS's own otherwise, in the bucket's region
    (asked once: obstore does not follow S3's redirects to it, boto3 does).
    The body is signed where client_config signs it. Thread-side.
    """
    actual = client.meta.endpoint_url
    named = endpoint_url or (actual if not _is_aws(actual) else None)
    region = client.meta.region_name
    if named is None:  # AWS: the bucket's own region (boto3 follows redirects; obstore not)
        head = client.head_bucket(Bucket=bucket)
        region = head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region", region)
    return ObjectRequests(
        boto3.session.Session(),
        bucket=bucket,
        endpoint_url=named,
        region=region or "us-east-1",
        sign_payload=not _private_channel(named),
        concurrency=concurrency,
        timeout=timeout,
    )


def _is_aws(endpoint_url: str) -> bool:
    host = urllib.parse.urlsplit(endpoint_url).hostname or ""
    return host == "amazonaws.com" or host.endswith(".amazonaws.com")
