"""Conformance suite of Backend.put_many and put_many_made, run over every backend.

put_many is how the block store writes a stream's small blocks: one call per
group, each object's size or error in its place, each object durable when its
size is returned. The local backend writes a group in one thread job (a
group commit); its own promises close the file.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from blockd.backends.base import Backend, BackendUnavailable, Bytes
from blockd.backends.local import LocalBackend
from tests.blockd_backends import BACKENDS, MakeBackend, backend_maker, listing, run


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    return backend_maker(request, tmp_path)


def key(n: int) -> str:
    return f"{n:064x}"[::-1]  # spread over the local backend's fan-out directories


def test_put_many_stores_each_object_and_returns_its_size_in_order(
    make_backend: MakeBackend,
) -> None:
    objects = {key(n): os.urandom(n * 997) for n in range(40)}  # 0 B to ~38 KiB
    objects[key(99)] = b"\0" * 300_000  # compressible (the codec shrinks it)

    async def scenario(backend: Backend) -> None:
        sizes = await backend.put_many(list(objects.items()))
        assert len(sizes) == len(objects)
        assert all(isinstance(size, int) for size in sizes)
        for k, data in objects.items():
            assert await backend.get(k) == data
        listed = {info.key: info.size for info in await listing(backend)}
        assert [listed[k] for k in objects] == sizes
        assert await backend.put_many([]) == []

    run(make_backend, scenario)


def test_put_many_replaces_what_a_key_held(make_backend: MakeBackend) -> None:
    async def scenario(backend: Backend) -> None:
        await backend.put(key(1), b"old")
        await backend.put_many([(key(1), b"new"), (key(2), b"two")])
        await backend.put_many([(key(2), b"two again")])
        assert [await backend.get(key(n)) for n in (1, 2)] == [b"new", b"two again"]
        assert len(await listing(backend)) == 2

    run(make_backend, scenario)


def test_put_many_made_stores_what_make_returns(make_backend: MakeBackend) -> None:
    def make(k: str, data: Bytes) -> bytes:
        return k.encode() + bytes(data)

    async def scenario(backend: Backend) -> None:
        items = [(key(n), bytes([n]) * n) for n in range(1, 20)]
        sizes = await backend.put_many_made(items, make)
        assert all(isinstance(size, int) for size in sizes)
        for k, data in items:
            assert await backend.get(k) == make(k, data)

    run(make_backend, scenario)


# --- the local directory backend only -----------------------------------------------------


def test_local_put_many_fails_only_the_objects_it_cannot_write(tmp_path: Path) -> None:
    blocked = "ab" + "0" * 62  # its fan-out directory is a file: ENOTDIR
    others = [key(n) for n in range(10)]

    async def scenario() -> None:
        backend = await LocalBackend.open(tmp_path)
        (tmp_path / "blocks" / "ab").write_bytes(b"not a directory")
        try:
            items = [(k, k.encode()) for k in others[:5]] + [(blocked, b"x")]
            items += [(k, k.encode()) for k in others[5:]]
            results = await backend.put_many(items)
            assert isinstance(results[5], BackendUnavailable)
            assert results[:5] + results[6:] == [64] * 10
            assert [await backend.get(k) for k in others] == [k.encode() for k in others]
        finally:
            await backend.close()

    asyncio.run(scenario())
    leftovers = [
        name
        for directory in (tmp_path / "blocks").iterdir()
        if directory.is_dir()
        for name in os.listdir(directory)
        if name.startswith(".")
    ]
    assert leftovers == []  # no temp file of the group stays behind


def test_local_put_many_objects_persist_across_reopen(tmp_path: Path) -> None:
    items = [(key(n), os.urandom(4096)) for n in range(30)]

    async def main() -> None:
        backend = await LocalBackend.open(tmp_path)
        await backend.put_many(items)
        await backend.close()
        again = await LocalBackend.open(tmp_path)
        try:
            assert [await again.get(k) for k, _ in items] == [data for _, data in items]
        finally:
            await again.close()

    asyncio.run(main())
