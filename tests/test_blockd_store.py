"""The block store and the servicer's error table, with backends that misbehave on cue.

The daemon tests (test_blockd.py) cannot make a disk slow or fail; here the
store runs in-process (asyncio.run) over the local backend wrapped by test
wrappers that delay, count or fail operations, the way a real wrapper (codec)
wraps a backend. The last tests serve the store over an in-process grpc.aio
server to check each store error's status code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import blake3
import grpc
import pytest

from blockd.access import BlockAccess
from blockd.backends.base import (
    Backend,
    BackendError,
    BackendFull,
    BackendUnavailable,
    ObjectCorrupt,
    ObjectNotFound,
    WrappingBackend,
)
from blockd.backends.codec import CodecBackend
from blockd.backends.local import LocalBackend
from blockd.hotcache import HotBlocks
from blockd.keys import Keyring, new_master_key
from blockd.service import BlocksService, add_to_server
from blockd.store import Block, BlockStore
from blockd.storeerrors import (
    BlockCorrupt,
    BlockNotFound,
    InvalidBlock,
    StoreFull,
    StoreUnavailable,
)
from protos import auth
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from protos.runtime import GRPC_OPTIONS
from tests import signin


def block(data: bytes) -> Block:
    return Block(blake3.blake3(data).digest(), data)


async def stream(*blocks: Block) -> AsyncIterator[Block]:
    """Blocks as a client stream delivers them: with a pause before each."""
    for b in blocks:
        await asyncio.sleep(0.01)
        yield b


class SlowPuts(WrappingBackend):
    """Every put takes `delay` seconds more; counts the puts."""

    def __init__(self, backend: Backend, delay: float) -> None:
        super().__init__(backend)
        self.delay = delay
        self.puts: list[str] = []

    async def put(self, key: str, data: bytes) -> int:
        self.puts.append(key)
        await asyncio.sleep(self.delay)
        return await self.backend.put(key, data)


class Failing(WrappingBackend):
    """Every get and put raises the given backend error."""

    def __init__(self, backend: Backend, error: Callable[[str], BackendError]) -> None:
        super().__init__(backend)
        self.error = error

    async def get(self, key: str) -> bytes:
        raise self.error(key)

    async def put(self, key: str, data: bytes) -> int:
        raise self.error(key)


def with_store(
    tmp_path: Path,
    wrap: Callable[[Backend], Backend],
    scenario: Callable[[BlockStore, Backend], Awaitable[None]],
) -> None:
    async def main() -> None:
        backend = wrap(await LocalBackend.open(tmp_path / "data"))
        store = await BlockStore.open(backend)
        try:
            await scenario(store, backend)
        finally:
            await store.close()
            await backend.close()

    asyncio.run(main())


def test_a_bad_block_fails_only_after_the_writes_before_it_finish(tmp_path: Path) -> None:
    good = [block(bytes([n]) * 1000) for n in range(3)]
    bad = Block(blake3.blake3(b"claimed").digest(), b"actual")

    async def scenario(store: BlockStore, backend: Backend) -> None:
        with pytest.raises(InvalidBlock, match=bad.hash.hex()):
            await store.put_stream(stream(*good, bad, block(b"after")))
        assert await backend.contains([b.hash.hex() for b in good]) == [True] * 3
        assert await backend.contains([bad.hash.hex()]) == [False]
        assert store.stats().object_count == 3
        assert 4 <= store.stats().blocks_received <= 5  # reading stops at the bad one

    with_store(tmp_path, lambda b: SlowPuts(b, 0.2), scenario)


def test_the_earliest_bad_block_is_the_one_reported(tmp_path: Path) -> None:
    first_bad = Block(blake3.blake3(b"one").digest(), b"x" * 200_000)  # hashed in a thread
    second_bad = Block(b"\x00" * 31, b"y")  # refused at once

    async def scenario(store: BlockStore, backend: Backend) -> None:
        with pytest.raises(InvalidBlock, match="hash mismatch"):
            await store.put_stream(stream(block(b"ok"), first_bad, second_bad))

    with_store(tmp_path, lambda b: b, scenario)


def test_concurrent_uploads_of_one_block_write_it_once(tmp_path: Path) -> None:
    shared = block(b"shared" * 10_000)
    slow: list[SlowPuts] = []

    def wrap(backend: Backend) -> Backend:
        slow.append(SlowPuts(backend, 0.1))
        return slow[0]

    async def scenario(store: BlockStore, backend: Backend) -> None:
        summaries = await asyncio.gather(
            *(store.put_stream(stream(shared, block(bytes([n])))) for n in range(4))
        )
        assert sum(s.blocks_stored for s in summaries) == 4 * 2
        assert slow[0].puts.count(shared.hash.hex()) == 1
        assert store.stats().object_count == 5

    with_store(tmp_path, wrap, scenario)


def test_a_write_outlives_the_cancelled_upload_and_is_counted(tmp_path: Path) -> None:
    b = block(b"in flight")

    async def scenario(store: BlockStore, backend: Backend) -> None:
        upload = asyncio.create_task(store.put_stream(stream(b)))
        await asyncio.sleep(0.05)  # verified, now in the slow put
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        await store.close()  # waits for the write
        assert await backend.contains([b.hash.hex()]) == [True]
        assert store.stats().object_count == 1

    with_store(tmp_path, lambda backend: SlowPuts(backend, 0.2), scenario)


def test_object_count_and_bytes_come_from_the_backend_at_open(tmp_path: Path) -> None:
    async def main() -> None:
        backend = await LocalBackend.open(tmp_path)
        store = await BlockStore.open(backend)
        await store.put_stream(stream(block(b"a" * 10), block(b"b" * 20), block(b"a" * 10)))
        await store.close()
        again = await BlockStore.open(backend)
        assert (again.stats().object_count, again.stats().stored_bytes) == (2, 30)
        await backend.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("error", "store_error"),
    [
        (lambda key: BackendUnavailable("disk gone"), StoreUnavailable),
        (lambda key: BackendFull("disk full"), StoreFull),
    ],
)
def test_backend_write_errors_become_store_errors(
    tmp_path: Path,
    error: Callable[[str], BackendError],
    store_error: type[Exception],
) -> None:
    async def scenario(store: BlockStore, backend: Backend) -> None:
        with pytest.raises(store_error):
            await store.put_stream(stream(block(b"data")))
        assert store.stats().object_count == 0

    with_store(tmp_path, lambda b: Failing(b, error), scenario)


def test_an_unreadable_object_is_block_corrupt(tmp_path: Path) -> None:
    b = block(b"data")

    async def scenario(store: BlockStore, backend: Backend) -> None:
        with pytest.raises(BlockCorrupt, match=b.hash.hex()):
            async for _ in store.get_stream([b.hash]):
                pass

    with_store(
        tmp_path, lambda backend: Failing(backend, lambda k: ObjectCorrupt(k, "EIO")), scenario
    )


def test_a_damaged_block_in_a_run_ends_the_stream_after_the_ones_before_it(
    tmp_path: Path,
) -> None:
    """Blocks are read in runs (one backend call each): the damaged block's error comes
    after the blocks before it, it is quarantined, and its neighbours stay readable."""
    blocks = [block(bytes([n]) * (100_000 + n)) for n in range(6)]

    async def scenario(store: BlockStore, backend: Backend) -> None:
        await store.put_stream(stream(*blocks))
        path = tmp_path / "data" / "blocks" / blocks[2].hash.hex()[:2] / blocks[2].hash.hex()
        path.write_bytes(b"not the block" + path.read_bytes()[13:])
        got: list[bytes] = []
        with pytest.raises(BlockCorrupt, match=blocks[2].hash.hex()):
            async for b in store.get_stream([b.hash for b in blocks]):
                got.append(b.data)
        assert got == [blocks[0].data, blocks[1].data]
        assert not path.exists()  # quarantined: missing until uploaded again
        rest = [b for n, b in enumerate(blocks) if n != 2]
        assert await read(store, *reversed(rest)) == [b.data for b in reversed(rest)]
        with pytest.raises(BlockNotFound):
            await read(store, blocks[2])

    with_store(tmp_path, lambda backend: backend, scenario)


# --- the servicer's status codes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (lambda key: BackendUnavailable("disk gone"), grpc.StatusCode.UNAVAILABLE),
        (lambda key: BackendFull("disk full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (lambda key: ObjectCorrupt(key, "EIO"), grpc.StatusCode.DATA_LOSS),
    ],
    ids=["unavailable", "full", "corrupt"],
)
def test_store_errors_map_to_status_codes(
    tmp_path: Path, error: Callable[[str], BackendError], code: grpc.StatusCode
) -> None:
    data = b"some block"
    digest = blake3.blake3(data).digest()

    async def main() -> None:
        local = await LocalBackend.open(tmp_path)
        await local.put(digest.hex(), data)  # so a get reaches the failing read
        backend = Failing(local, error)
        store = await BlockStore.open(backend)
        key = signin.key()
        server = grpc.aio.server(options=GRPC_OPTIONS, interceptors=[auth.AuthInterceptor(key)])
        service = BlocksService(store, BlockAccess(key))
        add_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            signed = auth.bearer_metadata(signin.token())
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = blocks_pb2_grpc.BlocksStub(channel)
                if code == grpc.StatusCode.DATA_LOSS:
                    request = signin.download_request([digest])
                    call = stub.Download(request, timeout=10, metadata=signed)
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        async for _ in call:
                            pass
                else:
                    fresh = b"a new block"
                    request = blocks_pb2.UploadRequest(
                        hash=blake3.blake3(fresh).digest(), data=fresh
                    )
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await stub.Upload(iter([request]), timeout=10, metadata=signed)
                assert info.value.code() == code
        finally:
            await server.stop(None)
            await store.close()
            await backend.close()

    asyncio.run(main())


# --- hot blocks --------------------------------------------------------------------------------


class CountingGets(WrappingBackend):
    """Counts the gets that reach the backend; each takes `delay` seconds more."""

    def __init__(self, backend: Backend, delay: float = 0.0) -> None:
        super().__init__(backend)
        self.delay = delay
        self.gets = 0

    async def get(self, key: str) -> bytes:
        self.gets += 1
        await asyncio.sleep(self.delay)
        return await self.backend.get(key)


async def read(store: BlockStore, *blocks: Block) -> list[bytes]:
    return [b.data async for b in store.get_stream([b.hash for b in blocks])]


def test_hot_blocks_evict_the_least_recently_used_by_bytes() -> None:
    hot = HotBlocks(100)
    a, b, c, d = (bytes([n]) * 30 for n in range(4))
    for data in (a, b, c):
        hot.add(data[:1], data)
    assert hot.get(a[:1]) == a  # now the most recent
    hot.add(d[:1], d)  # 120 bytes: b, the least recently used, goes
    assert [hot.get(x[:1]) for x in (a, b, c, d)] == [a, None, c, d]
    assert (hot.size_bytes, len(hot)) == (90, 3)
    hot.add(b"big", b"x" * 101)  # larger than the whole budget: never held
    assert hot.get(b"big") is None
    assert (hot.size_bytes, len(hot)) == (90, 3)


def test_written_and_read_blocks_are_served_from_memory(tmp_path: Path) -> None:
    written, cold = block(b"w" * 5000), block(b"c" * 7000)

    async def main() -> None:
        local = await LocalBackend.open(tmp_path)
        await local.put(cold.hash.hex(), cold.data)  # stored by an earlier run
        backend = CountingGets(local)
        store = await BlockStore.open(backend, hot=HotBlocks(1024 * 1024))
        await store.put_stream(stream(written))
        assert await read(store, written, written) == [written.data] * 2
        assert backend.gets == 0
        assert await read(store, cold, cold, written) == [cold.data, cold.data, written.data]
        assert backend.gets == 1
        await store.close()

        uncached = await BlockStore.open(backend)
        assert await read(uncached, cold) == await read(uncached, cold) == [cold.data]
        assert backend.gets == 3
        await uncached.close()
        await backend.close()

    asyncio.run(main())


def test_a_codec_encodes_and_decodes_through_the_wrapper_beneath_it(tmp_path: Path) -> None:
    """The codec encodes and decodes in the backend's own threads (put_made, get_then),
    yet a wrapper between them (faults, counting) still sees every put and get."""
    key = new_master_key()
    data = b"d" * 300_000

    async def main() -> None:
        counting = CountingGets(SlowPuts(await LocalBackend.open(tmp_path), delay=0))
        codec = CodecBackend(counting, Keyring((key,), key))
        await codec.put("ab" * 32, data)
        assert counting.backend.puts == ["ab" * 32]
        assert await codec.get("ab" * 32) == data
        assert counting.gets == 1
        failing = CodecBackend(Failing(counting, ObjectNotFound), Keyring((key,), key))
        with pytest.raises(ObjectNotFound):
            await failing.get("ab" * 32)
        await codec.close()

    asyncio.run(main())


def test_a_block_whose_write_failed_is_not_served_from_memory(tmp_path: Path) -> None:
    b = block(b"never stored")

    async def main() -> None:
        local = await LocalBackend.open(tmp_path)
        hot = HotBlocks(1024 * 1024)
        failing = Failing(local, lambda key: BackendFull("disk full"))
        store = await BlockStore.open(failing, hot=hot)
        with pytest.raises(StoreFull):
            await store.put_stream(stream(b))
        reading = await BlockStore.open(local, hot=hot)  # the same memory, a sane disk
        with pytest.raises(BlockNotFound):
            await read(reading, b)
        await local.close()

    asyncio.run(main())


def test_concurrent_reads_of_one_block_read_it_once(tmp_path: Path) -> None:
    b = block(b"popular" * 1000)

    async def main() -> None:
        local = await LocalBackend.open(tmp_path)
        await local.put(b.hash.hex(), b.data)
        backend = CountingGets(local, delay=0.1)
        store = await BlockStore.open(backend)  # no hot blocks: only single flight helps
        quitter = asyncio.create_task(read(store, b))
        await asyncio.sleep(0.02)
        quitter.cancel()  # the first reader leaves; the read goes on for the others
        results = await asyncio.gather(*(read(store, b) for _ in range(5)), read(store, b, b, b))
        assert results == [[b.data]] * 5 + [[b.data] * 3]
        assert backend.gets == 1
        await store.close()
        await backend.close()

    asyncio.run(main())
