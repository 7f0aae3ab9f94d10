"""Conformance suite of the blockd Backend interface, run over every backend.

Each test gets `make_backend` (an async factory) and runs its scenario with
asyncio.run. The params: the local directory, S3 on two real servers on
127.0.0.1 (moto's imitation, and SeaweedFS, a real object store; a fresh
bucket per test), and the codec wrapper around each; every test in the first
part passes unchanged on all six. The second part holds what only the local
directory backend promises (its layout, FORMAT file, lock and crash
clean-up); the third what only S3 does (prefixes, the format marker,
listing-based `contains`, start-up errors: on both servers; retries: on a
scripted one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions
import pytest

from blockd.backends.base import (
    Backend,
    BackendSetupError,
    BackendUnavailable,
    ObjectCorrupt,
    ObjectNotFound,
)
from blockd.backends.codec import CodecBackend
from blockd.backends.local import FORMAT_VERSION, LocalBackend
from blockd.backends.retry import RetryPolicy, retry
from blockd.backends.s3 import S3Backend, is_temp_failure
from blockd.keys import Keyring, new_master_key
from tests.blockd_backends import BACKENDS, MakeBackend, backend_maker, listing, run

if TYPE_CHECKING:
    from tests.s3server import S3Server


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    return backend_maker(request, tmp_path)


# --- the interface: every backend ---------------------------------------------------------


def test_put_then_get_returns_the_bytes(make_backend: MakeBackend) -> None:
    objects = {"a0": b"", "a1": b"x", "b2": os.urandom(1 << 20), "ffee.data": os.urandom(777)}

    async def scenario(backend: Backend) -> None:
        for key, data in objects.items():
            size = await backend.put(key, data)
            assert isinstance(size, int) and size >= 0
        for key, data in objects.items():
            assert await backend.get(key) == data

    run(make_backend, scenario)


def test_get_of_a_missing_key_raises_object_not_found(make_backend: MakeBackend) -> None:
    async def scenario(backend: Backend) -> None:
        with pytest.raises(ObjectNotFound) as info:
            await backend.get("deadbeef")
        assert info.value.key == "deadbeef"
        assert "deadbeef" in str(info.value)

    run(make_backend, scenario)


def test_get_many_returns_each_object_in_order_and_a_missing_ones_error_in_its_place(
    make_backend: MakeBackend,
) -> None:
    objects = {"m0": os.urandom(300_000), "m1": b"small", "m2": os.urandom(1 << 20)}

    async def scenario(backend: Backend) -> None:
        for key, data in objects.items():
            await backend.put(key, data)
        got = await backend.get_many(["m2", "gone", "m0", "m1", "m2"])
        assert isinstance(got[1], ObjectNotFound) and got[1].key == "gone"
        assert [got[0], *got[2:]] == [objects["m2"], objects["m0"], objects["m1"], objects["m2"]]

    run(make_backend, scenario)


def test_put_is_idempotent_and_replaces(make_backend: MakeBackend) -> None:
    async def scenario(backend: Backend) -> None:
        await backend.put("k1", b"first")
        await backend.put("k1", b"first")
        assert await backend.get("k1") == b"first"
        await backend.put("k1", b"second")
        assert await backend.get("k1") == b"second"
        assert [info.key for info in await listing(backend)] == ["k1"]

    run(make_backend, scenario)


def test_contains_answers_many_keys_in_order(make_backend: MakeBackend) -> None:
    held = [f"{i:064x}" for i in range(0, 20_000, 97)]
    asked = [f"{i:064x}" for i in range(20_000)]

    async def scenario(backend: Backend) -> None:
        await asyncio.gather(*(backend.put(key, b"x") for key in held))
        result = await backend.contains(asked)
        assert result == [i % 97 == 0 for i in range(20_000)]
        assert await backend.contains([held[0], "nothere", held[0]]) == [True, False, True]
        assert await backend.contains([]) == []

    run(make_backend, scenario)


def test_delete_removes_and_is_idempotent(make_backend: MakeBackend) -> None:
    async def scenario(backend: Backend) -> None:
        await backend.put("gone", b"data")
        await backend.put("kept", b"data")
        await backend.delete("gone")
        await backend.delete("gone")
        await backend.delete("never-there")
        with pytest.raises(ObjectNotFound):
            await backend.get("gone")
        assert await backend.contains(["gone", "kept"]) == [False, True]
        assert [info.key for info in await listing(backend)] == ["kept"]

    run(make_backend, scenario)


def test_list_objects_yields_keys_sizes_in_order_with_prefix(make_backend: MakeBackend) -> None:
    keys = ["ab01", "ab02", "abff", "ac00", "b000", "bz", "c1"]

    async def scenario(backend: Backend) -> None:
        assert await listing(backend) == []
        sizes = {}
        for n, key in enumerate(reversed(keys)):
            sizes[key] = await backend.put(key, os.urandom(n * 100))
        everything = await listing(backend)
        assert [info.key for info in everything] == keys
        assert {info.key: info.size for info in everything} == sizes
        for prefix in ["a", "ab", "ab0", "ab02", "b", "bz", "c", "d", "abc"]:
            got = [info.key for info in await listing(backend, prefix)]
            assert got == [key for key in keys if key.startswith(prefix)], prefix

    run(make_backend, scenario)


def test_quarantine_moves_an_object_out_of_sight_and_a_put_stores_anew(
    make_backend: MakeBackend,
) -> None:
    async def scenario(backend: Backend) -> None:
        await backend.put("aa01", b"damaged, say")
        await backend.put("aa02", b"neighbour")
        assert await backend.quarantine("aa01") > 0
        with pytest.raises(ObjectNotFound):
            await backend.get("aa01")
        assert await backend.contains(["aa01", "aa02"]) == [False, True]
        assert [info.key for info in await listing(backend)] == ["aa02"]
        assert await backend.quarantine("aa01") == 0  # nothing there any more
        assert await backend.quarantine("bb03") == 0  # never was
        await backend.put("aa01", b"healed")
        assert await backend.get("aa01") == b"healed"
        assert [info.key for info in await listing(backend)] == ["aa01", "aa02"]

    run(make_backend, scenario)


def test_concurrent_puts_and_gets(make_backend: MakeBackend) -> None:
    objects = {f"{i:02x}{i:062x}": os.urandom(64 * 1024 + i) for i in range(64)}

    async def scenario(backend: Backend) -> None:
        await asyncio.gather(*(backend.put(k, v) for k, v in objects.items()))
        got = await asyncio.gather(*(backend.get(k) for k in objects))
        assert got == list(objects.values())
        assert len(await listing(backend)) == len(objects)

    run(make_backend, scenario)


@pytest.mark.parametrize("key", ["", ".hidden", "a/b", "../x", "a b", "x" * 201, "é"])
def test_a_bad_key_is_refused(make_backend: MakeBackend, key: str) -> None:
    async def scenario(backend: Backend) -> None:
        with pytest.raises(ValueError):
            await backend.put(key, b"data")
        with pytest.raises(ValueError):
            await backend.get(key)

    run(make_backend, scenario)


def test_objects_persist_across_reopen(make_backend: MakeBackend) -> None:
    async def scenario(backend: Backend) -> None:
        await backend.put("persist", b"still here")
        await backend.close()
        await backend.close()  # idempotent
        again = await make_backend()
        try:
            assert await again.get("persist") == b"still here"
        finally:
            await again.close()

    run(make_backend, scenario)


# --- the local directory backend only -----------------------------------------------------


def open_local(root: Path) -> LocalBackend:
    return asyncio.run(LocalBackend.open(root))


def test_local_layout_has_no_temp_files_left(tmp_path: Path) -> None:
    key = "ab" + "c" * 62

    async def scenario() -> None:
        backend = await LocalBackend.open(tmp_path)
        try:
            await backend.put(key, b"payload")
        finally:
            await backend.close()

    asyncio.run(scenario())
    assert (tmp_path / "blocks" / "ab" / key).read_bytes() == b"payload"
    assert os.listdir(tmp_path / "blocks" / "ab") == [key]
    assert json.loads((tmp_path / "FORMAT").read_text())["version"] == FORMAT_VERSION


def test_local_removes_stray_temp_files_at_open(tmp_path: Path) -> None:
    asyncio.run(open_local(tmp_path).close())
    (tmp_path / "blocks" / "ab").mkdir()
    stray = tmp_path / "blocks" / "ab" / ".abcd.0123456789ab.tmp"
    stray.write_bytes(b"half a block")
    (tmp_path / "blocks" / "ab" / "abcd").write_bytes(b"whole")

    async def scenario() -> None:
        backend = await LocalBackend.open(tmp_path)
        try:
            assert [info.key for info in await listing(backend)] == ["abcd"]
        finally:
            await backend.close()

    asyncio.run(scenario())
    assert not stray.exists()


def test_local_refuses_a_newer_format(tmp_path: Path) -> None:
    asyncio.run(open_local(tmp_path).close())
    (tmp_path / "FORMAT").write_text(
        json.dumps({"format": "drivefs-blockd-local", "version": FORMAT_VERSION + 1})
    )
    with pytest.raises(BackendSetupError, match=f"format version {FORMAT_VERSION + 1}"):
        open_local(tmp_path)


def test_local_refuses_a_foreign_format_file(tmp_path: Path) -> None:
    tmp_path.joinpath("FORMAT").write_text("SQLite format 3\n")
    with pytest.raises(BackendSetupError, match="FORMAT"):
        open_local(tmp_path)


def test_local_refuses_a_directory_in_use(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = await LocalBackend.open(tmp_path)
        try:
            with pytest.raises(BackendSetupError, match="in use"):
                await LocalBackend.open(tmp_path)
        finally:
            await first.close()
        second = await LocalBackend.open(tmp_path)  # the lock went with close()
        await second.close()

    asyncio.run(scenario())


def test_local_unusable_directory_is_a_setup_error(tmp_path: Path) -> None:
    (tmp_path / "blocks").write_text("not a directory")
    with pytest.raises(BackendSetupError, match="cannot use data directory"):
        open_local(tmp_path)


def test_local_unreadable_object_is_corrupt(tmp_path: Path) -> None:
    key = "ab" + "0" * 62

    async def scenario() -> None:
        backend = await LocalBackend.open(tmp_path)
        try:
            # A directory where the object's file should be: EISDIR on read.
            (tmp_path / "blocks" / "ab" / key).mkdir(parents=True)
            with pytest.raises(ObjectCorrupt, match=key):
                await backend.get(key)
        finally:
            await backend.close()

    asyncio.run(scenario())


# --- the S3 backend only ------------------------------------------------------------------

FORMAT_MARKER = b'{"format": "drivefs-blockd-s3", "version": 1}'


@contextlib.contextmanager
def socket_closed_port():
    """A port on 127.0.0.1 where nothing listens (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def open_s3(endpoint: str, bucket: str, **kw: object) -> S3Backend:
    return asyncio.run(S3Backend.open(bucket=bucket, endpoint_url=endpoint, **kw))  # type: ignore[arg-type]


def with_s3(endpoint: str, bucket: str, scenario: Callable[[S3Backend], Awaitable[None]], **kw):
    async def main() -> None:
        backend = await S3Backend.open(bucket=bucket, endpoint_url=endpoint, **kw)  # type: ignore[arg-type]
        try:
            await scenario(backend)
        finally:
            await backend.close()

    asyncio.run(main())


def test_s3_prefixes_keep_stores_apart_and_hide_the_format_marker(
    s3_store: tuple[S3Server, str],
) -> None:
    s3_server, s3_bucket = s3_store

    async def scenario(backend: S3Backend) -> None:
        await backend.put("k1", b"one")
        other = await S3Backend.open(bucket=s3_bucket, endpoint_url=s3_server.endpoint, prefix="b/")
        try:
            await other.put("k2", b"two")
            assert [info.key for info in await listing(other)] == ["k2"]
            assert await other.contains(["k1", "k2"]) == [False, True]
            with pytest.raises(ObjectNotFound):
                await other.get("k1")
        finally:
            await other.close()
        assert [info.key for info in await listing(backend)] == ["k1"]

    with_s3(s3_server.endpoint, s3_bucket, scenario, prefix="a/")
    assert s3_server.keys(s3_bucket) == ["a/.format", "a/k1", "b/.format", "b/k2"]
    assert json.loads(s3_server.get(s3_bucket, "a/.format")) == json.loads(FORMAT_MARKER)


def test_s3_contains_by_listing_pages_dense_and_sparse_keys(
    s3_store: tuple[S3Server, str],
) -> None:
    s3_server, s3_bucket = s3_store
    # Pages of 5 keys: answering 1,000 keys takes many LISTs, walks from
    # several places at once, and switches to HEADs where the asked keys are
    # sparse among the objects.
    held = [f"{i:04x}" for i in range(0, 3000, 50)]
    dense = [f"{i:04x}" for i in range(1000)]
    sparse = [f"{i:04x}" for i in range(0, 3000, 151)] + ["0032", f"{2950:04x}", "zz"]

    async def scenario(backend: S3Backend) -> None:
        await asyncio.gather(*(backend.put(key, b"x") for key in held))
        for asked in (dense, sparse, list(reversed(dense)) + dense[:3]):
            assert await backend.contains(asked) == [key in held for key in asked]

    with_s3(s3_server.endpoint, s3_bucket, scenario, list_page=5)


def test_s3_missing_bucket_is_a_setup_error(s3_store: tuple[S3Server, str]) -> None:
    s3_server, _ = s3_store
    with pytest.raises(BackendSetupError, match="the bucket does not exist"):
        open_s3(s3_server.endpoint, "no-such-bucket")


def test_s3_store_of_a_newer_format_is_refused(s3_store: tuple[S3Server, str]) -> None:
    s3_server, s3_bucket = s3_store
    s3_server.put(s3_bucket, ".format", FORMAT_MARKER.replace(b"1}", b"9}"))
    with pytest.raises(BackendSetupError, match="format version 9"):
        open_s3(s3_server.endpoint, s3_bucket)


def test_s3_unreachable_endpoint_is_a_setup_error_after_retries(s3_server: S3Server) -> None:
    with socket_closed_port() as port:
        start = time.monotonic()
        with pytest.raises(BackendSetupError, match="Could not connect"):
            open_s3(f"http://127.0.0.1:{port}", "bucket", retry_policy=RetryPolicy(deadline=0.5))
    assert time.monotonic() - start < 5


def test_s3_transient_errors_are_retried_until_success(scripted_s3, caplog) -> None:
    replies = iter([(503, "SlowDown"), None, (500, "InternalError"), (200, b"hi")])

    def script(method: str, path: str):
        if path.endswith("/.format"):
            return 200, FORMAT_MARKER
        return next(replies)

    server = scripted_s3(script)
    caplog.set_level("DEBUG", logger="blockd.backends.retry")

    async def scenario(backend: S3Backend) -> None:
        assert await backend.get("k") == b"hi"

    with_s3(server.endpoint, "bucket", scenario, retry_policy=RetryPolicy(first_delay=0.01))
    assert server.requests.count(("GET", "/bucket/k")) == 4
    assert sum("transient failure" in r.message for r in caplog.records) == 3


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((403, "AccessDenied"), BackendUnavailable),
        ((404, "NoSuchKey"), ObjectNotFound),
        ((400, "InvalidRequest"), BackendUnavailable),
    ],
    ids=["denied", "missing", "bad-request"],
)
def test_s3_permanent_errors_are_not_retried(scripted_s3, reply, error) -> None:
    def script(method: str, path: str):
        return (200, FORMAT_MARKER) if path.endswith("/.format") else reply

    server = scripted_s3(script)

    async def scenario(backend: S3Backend) -> None:
        with pytest.raises(error):
            await backend.get("k")

    with_s3(server.endpoint, "bucket", scenario)
    assert server.requests.count(("GET", "/bucket/k")) == 1


def test_s3_gives_up_on_transient_errors_at_the_deadline(scripted_s3) -> None:
    def script(method: str, path: str):
        return (200, FORMAT_MARKER) if path.endswith("/.format") else (503, "SlowDown")

    server = scripted_s3(script)

    async def scenario(backend: S3Backend) -> None:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"SlowDown|503"):
            await backend.put("k", b"data")
        assert 0.2 < time.monotonic() - start < 2

    policy = RetryPolicy(deadline=0.4, first_delay=0.02, max_delay=0.1)
    with_s3(server.endpoint, "bucket", scenario, retry_policy=policy)
    assert server.requests.count(("PUT", "/bucket/k")) >= 3


# --- the retry policy -----------------------------------------------------------------------


def client_error(status: int, code: str) -> botocore.exceptions.ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, "GetObject")  # type: ignore[arg-type]


class Flaky:
    """Fails with the given errors in turn, then returns "done"; counts the attempts."""

    retry_policy = RetryPolicy(deadline=1.0, first_delay=0.01, max_delay=0.05)

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.attempts = 0

    def is_temp_failure(self, exc: BaseException) -> bool:
        return isinstance(exc, TimeoutError)

    @retry
    async def call(self) -> str:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retry_repeats_transient_failures_until_success() -> None:
    flaky = Flaky(TimeoutError("1"), TimeoutError("2"), TimeoutError("3"))
    assert asyncio.run(flaky.call()) == "done"
    assert flaky.attempts == 4


def test_retry_raises_a_permanent_failure_at_once() -> None:
    flaky = Flaky(TimeoutError("1"), ValueError("bad"), TimeoutError("3"))
    with pytest.raises(ValueError, match="bad"):
        asyncio.run(flaky.call())
    assert flaky.attempts == 2


def test_retry_gives_up_at_the_deadline_with_the_last_error() -> None:
    flaky = Flaky(*[TimeoutError(str(n)) for n in range(10_000)])
    flaky.retry_policy = RetryPolicy(deadline=0.3, first_delay=0.01, max_delay=0.05)
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        asyncio.run(flaky.call())
    assert time.monotonic() - start <= 0.3 + 0.1
    assert flaky.attempts >= 5
    assert info.value.args == (str(flaky.attempts - 1),)


def test_retry_pauses_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(first_delay=0.1, max_delay=1.0)
    for attempt, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        pauses = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= pause <= bound for pause in pauses)
        assert max(pauses) > bound / 2  # jitter spreads over the whole range


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (client_error(503, "SlowDown"), True),
        (client_error(500, "InternalError"), True),
        (client_error(429, "TooManyRequestsException"), True),
        (client_error(400, "RequestTimeout"), True),
        (client_error(403, "AccessDenied"), False),
        (client_error(404, "NoSuchKey"), False),
        (client_error(400, "InvalidArgument"), False),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), True),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), True),
        (botocore.exceptions.NoCredentialsError(), False),
        (ValueError("a bug"), False),
    ],
    ids=lambda value: value if isinstance(value, bool) else type(value).__name__,
)
def test_s3_is_temp_failure_only_for_transient_errors(exc: Exception, transient: bool) -> None:
    assert is_temp_failure(exc) is transient


def test_local_reads_back_every_size_around_the_direct_read_boundaries(tmp_path: Path) -> None:
    """Large objects are read with O_DIRECT into reused aligned buffers: every size
    around the threshold and the 4 KiB alignment reads back exact, many at once."""
    sizes = [256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 4096 * 300, 1 << 20, (1 << 20) + 82]
    sizes += [(4 << 20) + 4095, 3 * 4096 - 1]
    objects = {f"k{i:02d}": os.urandom(size) for i, size in enumerate(sizes * 2)}

    async def scenario() -> None:
        backend = await LocalBackend.open(tmp_path / "local")
        try:
            for key, data in objects.items():
                await backend.put(key, data)
            for _ in range(2):  # concurrently, then again with the kept buffers
                got = await asyncio.gather(*(backend.get(key) for key in objects))
                assert got == list(objects.values())
        finally:
            await backend.close()

    asyncio.run(scenario())


def test_local_codec_objects_damaged_on_disk_are_corrupt_and_the_rest_read_on(
    tmp_path: Path,
) -> None:
    """The codec decodes straight from the local backend's read buffer (get_then): a
    damaged large object fails authentication there, and the reads after it (reusing
    the buffers) still return exact bytes."""
    key = new_master_key()
    objects = {f"k{i}": os.urandom((1 << 20) + i * 4097) for i in range(12)}

    async def scenario() -> None:
        backend = await CodecBackend.open(await LocalBackend.open(tmp_path), Keyring((key,), key))
        try:
            for name, data in objects.items():
                await backend.put(name, data)
            path = tmp_path / "blocks" / "k3"[:2] / "k3"
            damaged = bytearray(path.read_bytes())
            damaged[len(damaged) // 2] ^= 1
            path.write_bytes(bytes(damaged))
            for _ in range(3):
                with pytest.raises(ObjectCorrupt, match="k3"):
                    await backend.get("k3")
                rest = [name for name in objects if name != "k3"]
                got = await asyncio.gather(*(backend.get(name) for name in rest))
                assert got == [objects[name] for name in rest]
                # Read as one run (one thread job): the damaged one fails in its place.
                run = await backend.get_many(list(objects))
                assert isinstance(run[3], ObjectCorrupt)
                assert [run[i] for i in range(12) if i != 3] == [objects[n] for n in rest]
        finally:
            await backend.close()

    asyncio.run(scenario())
