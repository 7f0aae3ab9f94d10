"""Conformance suite of the blockd Backend interface, run over every backend.

Each test gets `make_backend` (an async factory) and runs its scenario with
asyncio.run. To add a backend (S3, a codec wrapper around local or S3), add a
param to `make_backend`; every test in the first part must pass unchanged.
The second part holds what only the local directory backend promises (its
layout, FORMAT file, lock and crash clean-up).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from blockd.backends.base import (
    Backend,
    BackendSetupError,
    ObjectCorrupt,
    ObjectInfo,
    ObjectNotFound,
)
from blockd.backends.local import FORMAT_VERSION, LocalBackend

MakeBackend = Callable[[], Awaitable[Backend]]
Scenario = Callable[[Backend], Awaitable[None]]


@pytest.fixture(params=["local"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    if request.param == "local":

        async def make() -> Backend:
            return await LocalBackend.open(tmp_path / "local")

        return make
    raise AssertionError(f"unknown backend {request.param}")


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
