"""The block store's counters on S3, kept without a HEAD before every PUT.

The store knows which blocks it holds (blockd/held.py) instead of asking the
backend before each write: on each real S3 server (moto's, SeaweedFS) a
block uploaded twice, or by several uploads at once, is one object and is
counted once, and the counters survive a reopen and a delete; against
ScriptedS3, an upload is PUTs only. HeldBlocks itself: its answers stay
right across the folding of its changes into its sorted array.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import blake3

from blockd.backends.retry import RetryPolicy
from blockd.backends.s3 import S3Backend
from blockd.held import HeldBlocks
from blockd.store import Block, BlockStore, StoredBlock

if TYPE_CHECKING:
    from tests.s3server import S3Server

FORMAT_MARKER = b'{"format": "drivefs-blockd-s3", "version": 1}'


def block(data: bytes) -> Block:
    return Block(blake3.blake3(data).digest(), data)


async def stream(*blocks: Block) -> AsyncIterator[Block]:
    for b in blocks:
        yield b


def with_store(
    endpoint: str, bucket: str, scenario: Callable[[BlockStore, S3Backend], Awaitable[None]]
) -> None:
    async def main() -> None:
        backend = await S3Backend.open(
            bucket=bucket,
            endpoint_url=endpoint,
            region="us-east-1",
            retry_policy=RetryPolicy(first_delay=0.01),
        )
        try:
            store = await BlockStore.open(backend)
            try:
                await scenario(store, backend)
            finally:
                await store.close()
        finally:
            await backend.close()

    asyncio.run(main())


def test_a_block_put_twice_or_at_once_is_counted_once(s3_store: tuple[S3Server, str]) -> None:
    server, bucket = s3_store
    a, b, c = (block(os.urandom(n)) for n in (1000, 70_000, 5))

    async def scenario(store: BlockStore, backend: S3Backend) -> None:
        await store.put_stream(stream(a, b, a))
        await store.put_stream(stream(a))
        assert (store.stats().object_count, store.stats().stored_bytes) == (2, 71_000)
        # Many uploads of one new block at once, each with the held ones.
        summaries = await asyncio.gather(*(store.put_stream(stream(a, c, b)) for _ in range(6)))
        assert [s.blocks_stored for s in summaries] == [3] * 6
        assert (store.stats().object_count, store.stats().stored_bytes) == (3, 71_005)

    with_store(server.endpoint, bucket, scenario)
    assert sorted(server.keys(bucket)) == sorted([".format", *(x.hash.hex() for x in (a, b, c))])

    async def reopened(store: BlockStore, backend: S3Backend) -> None:
        assert (store.stats().object_count, store.stats().stored_bytes) == (3, 71_005)
        await store.put_stream(stream(b, c))  # held since before the reopen
        assert store.stats().object_count == 3
        for _ in range(2):  # a second delete is not counted again
            await store.delete(StoredBlock(c.hash, 5, 0))
            assert (store.stats().object_count, store.stats().stored_bytes) == (2, 71_000)
        await store.put_stream(stream(c))  # gone, so new again
        assert (store.stats().object_count, store.stats().stored_bytes) == (3, 71_005)

    with_store(server.endpoint, bucket, reopened)


def test_an_upload_is_one_put_per_block_and_nothing_else(scripted_s3) -> None:
    """Held or not, a block costs one request, the same one (no oracle in the timing)."""

    def script(method: str, path: str):
        if path.endswith("/.format"):
            return 200, FORMAT_MARKER
        if method == "GET":  # the listing at open: an empty bucket
            return 200, b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"
        return 200, b""

    server = scripted_s3(script)
    a, b = block(b"a" * 100), block(b"b" * 100)

    async def scenario(store: BlockStore, backend: S3Backend) -> None:
        before = len(server.requests)
        await store.put_stream(stream(a, b))
        await store.put_stream(stream(a))
        assert sorted(server.requests[before:]) == sorted(
            [("PUT", f"/bucket/{x.hash.hex()}") for x in (a, b, a)]
        )
        assert store.stats().object_count == 2

    with_store(server.endpoint, "bucket", scenario)


def test_held_blocks_stay_right_across_folds() -> None:
    digests = [blake3.blake3(n.to_bytes(4, "big")).digest() for n in range(6000)]
    held = HeldBlocks(digests[:3000], fold_min=100)
    mirror = set(digests[:3000])
    rng = random.Random(5)
    for _ in range(30_000):  # enough changes to fold several times
        digest = rng.choice(digests)
        if rng.random() < 0.5:
            assert held.add(digest) is (digest not in mirror)
            mirror.add(digest)
        else:
            assert held.discard(digest) is (digest in mirror)
            mirror.discard(digest)
    assert len(held) == len(mirror)
    assert [d in held for d in digests] == [d in mirror for d in digests]


def test_held_blocks_listed_in_or_out_of_order_are_held_once() -> None:
    digests = sorted(blake3.blake3(n.to_bytes(4, "big")).digest() for n in range(500))
    held = HeldBlocks()
    for digest in [*digests[:300], digests[100], *digests[300:], digests[5]]:
        held.add_listed(digest)
    assert len(held) == 500
    assert all(digest in held for digest in digests)
    assert not held.add(digests[7]) and held.discard(digests[7]) and digests[7] not in held
