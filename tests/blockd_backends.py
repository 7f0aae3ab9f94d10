"""The conformance suites' backends: the fixture that makes each one, and how a scenario runs.

BACKENDS names every backend: the local directory, S3 on two real servers on
127.0.0.1 (moto's imitation, and SeaweedFS, a real object store; a fresh
bucket per test), and the codec wrapper around each. Each suite
(test_blockd_backend.py, test_blockd_backend_many.py) has a `make_backend`
fixture over BACKENDS that returns backend_maker's factory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from blockd.backends.base import Backend, ObjectInfo
from blockd.backends.codec import CodecBackend
from blockd.backends.local import LocalBackend
from blockd.backends.s3 import S3Backend
from blockd.keys import Keyring, new_master_key
from tests.s3server import S3_SERVERS, s3_of

MakeBackend = Callable[[], Awaitable[Backend]]
Scenario = Callable[[Backend], Awaitable[None]]


BACKENDS = ["local", "s3", "seaweed", "codec-local", "codec-s3", "codec-seaweed"]


def backend_maker(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    """What a suite's `make_backend` fixture (params=BACKENDS) returns."""
    kind = request.param
    inner = kind.removeprefix("codec-")
    if inner in S3_SERVERS:
        server, bucket = s3_of(request, inner)
    key = new_master_key()
    keyring = Keyring((key,), key)

    async def make() -> Backend:
        if inner == "local":
            backend: Backend = await LocalBackend.open(tmp_path / "local")
        else:
            backend = await S3Backend.open(
                bucket=bucket, endpoint_url=server.endpoint, region="us-east-1", prefix="p/"
            )
        if kind.startswith("codec-"):
            backend = await CodecBackend.open(backend, keyring)
        return backend

    return make


def run(make: MakeBackend, scenario: Scenario) -> None:
    async def main() -> None:
        backend = await make()
        try:
            await scenario(backend)
        finally:
            await backend.close()

    asyncio.run(main())


async def listing(backend: Backend, prefix: str = "") -> list[ObjectInfo]:
    return [info async for info in backend.list_objects(prefix)]
