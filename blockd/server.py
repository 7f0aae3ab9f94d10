"""Assembles blockd: backend (local or S3) → codec → store → servicer.

Owns: which backend, wrappers and store settings the daemon runs with, the
worker threads they use, finding or creating the key file, the start-up log
lines, and the order of shutdown (server first, then the writes in flight,
then the backend).

Replicas: any number of blockd processes may serve one bucket. What makes
their answers the same is shared outside them: the objects (the bucket),
the auth key that signs tokens, grants and receipts (--auth-key, one file),
the master keys (--key-file, one file: a replica never creates a named key
file, and refuses a store its keys cannot read), and the collection fence
(in metad). Each keeps to itself only what may differ between them: the hot
blocks, the GetStats counters (this process's view), and the single-flight
tables of its own reads and writes.

Must not: handle requests or map errors (service), encode objects (codec),
or parse arguments and print errors for the user (__main__).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import grpc

from blockd import keys
from blockd.access import BlockAccess
from blockd.backends.base import Backend, BackendSetupError
from blockd.backends.codec import PLAIN_STORE, CodecBackend, first_object_kind
from blockd.backends.local import LocalBackend
from blockd.backends.s3 import S3Backend
from blockd.config import Config
from blockd.fence import Fence
from blockd.follow import DamageReports, FollowedRevocations
from blockd.hotcache import HotBlocks
from blockd.service import BlocksService, add_to_server
from blockd.store import BlockStore
from protos import auth, metrics, tls
from protos.drive.v1 import blocks_pb2
from protos.guard import MalformedRequests
from protos.metrics import RpcMetrics
from protos.runtime import listen_credentials, serve

log = logging.getLogger(__name__)

# Hashing, file I/O, compression and encryption run in the loop's default
# executor; disk waits (fsync) dominate, so more threads than cores keeps
# streams moving in parallel. The S3 backend has its own threads.
_WORKER_THREADS = 48
_BACKEND_CONCURRENCY = 32


async def run(config: Config) -> None:
    """Serves until SIGTERM/SIGINT.

    Raises BindError, BackendSetupError, KeyFileError, AuthKeyError or TlsError at start.
    """
    credentials = listen_credentials(
        config.listen, config.tls_cert, config.tls_key, config.insecure
    )
    metad_trust = _metad_trust(config)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=_WORKER_THREADS, thread_name_prefix="blockd-worker")
    )
    if config.auth_key is None:
        raise auth.AuthKeyError("blockd needs --auth-key (metad's DATA/auth.key)")
    auth_key = await asyncio.to_thread(auth.load_key, config.auth_key)
    backend, location = await _open_backend(config)
    try:
        if config.encryption:
            keyring = await _keyring(config, backend)
            backend = await CodecBackend.open(backend, keyring)
            log.info(
                "encryption on: writing with master key %s (%d in %s)",
                keyring.current.name,
                len(keyring.keys),
                config.key_path,
            )
        else:
            log.info("encryption off: blocks are stored as they are")
        fence = (
            Fence(config.metad, trust=metad_trust, token=auth_key.service_token)
            if config.metad
            else None
        )
        damage = DamageReports(fence) if fence is not None else None
        hot = HotBlocks(config.memory_cache_bytes) if config.memory_cache_bytes else None
        store = await BlockStore.open(
            backend, hot=hot, on_damaged=damage.add if damage is not None else None
        )
        stats = store.stats()
        log.info(
            "blockd data %s: %d blocks, %d bytes", location, stats.object_count, stats.stored_bytes
        )
        followed = FollowedRevocations(fence) if fence is not None else None
        access = (
            BlockAccess(auth_key, followed.revocations, followed.current)
            if followed is not None
            else BlockAccess(auth_key)
        )
        counted: list[grpc.aio.ServerInterceptor] = []
        if config.metrics:
            counted = [RpcMetrics()]
            metrics.register(partial(_store_metrics, store, hot))
            log.info("metrics on http://%s/metrics", metrics.serve_metrics(config.metrics))
        # metad's revocations and blockd's damage reports, for as long as blockd serves.
        followers = []
        if followed is not None and damage is not None:
            followers = [
                asyncio.create_task(followed.run()),
                asyncio.create_task(damage.run()),
            ]

        def add_services(server: grpc.aio.Server) -> list[str]:
            service = BlocksService(store, access, fence)
            add_to_server(service, server)
            return [blocks_pb2.DESCRIPTOR.services_by_name["Blocks"].full_name]

        try:
            await serve(
                "blockd",
                config.listen,
                add_services,
                ready_file=config.ready_file,
                interceptors=[
                    *counted,
                    MalformedRequests(),
                    auth.AuthInterceptor(auth_key, revocations=access.revocations),
                ],
                credentials=credentials,
            )
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            if fence is not None:
                await fence.close()
            await store.close()
    finally:
        await backend.close()


def _store_metrics(store: BlockStore, hot: HotBlocks | None) -> list[object]:
    """What the store counts anyway, for /metrics (read when it is asked for)."""
    stats = store.stats()
    found: list[object] = [
        metrics.gauge("drive_blocks", "blocks stored", stats.object_count),
        metrics.gauge("drive_stored_bytes", "bytes the stored blocks occupy", stats.stored_bytes),
        metrics.counter("drive_received_bytes", "block bytes uploaded", stats.bytes_received),
        metrics.counter("drive_received_blocks", "blocks uploaded", stats.blocks_received),
        metrics.counter("drive_sent_bytes", "block bytes downloaded", stats.bytes_sent),
        metrics.counter("drive_sent_blocks", "blocks downloaded", stats.blocks_sent),
    ]
    if hot is not None:
        found.append(metrics.counter("drive_hot_block_hits", "reads from memory", hot.hits))
        found.append(metrics.counter("drive_hot_block_misses", "reads from storage", hot.misses))
    return found


def _metad_trust(config: Config) -> tls.Trust | None:
    """What blockd trusts metad's certificate by (--metad-ca, --metad-name); None: plain text."""
    if config.metad_ca is None:
        return None
    trust = tls.load_trust(config.metad_ca)
    if config.metad_name:
        trust = dataclasses.replace(trust, target_name=config.metad_name)
    return trust


async def _open_backend(config: Config) -> tuple[Backend, str]:
    """The configured backend and where it keeps objects (for the log)."""
    if config.s3 is None:
        local = await LocalBackend.open(config.data_dir, concurrency=_BACKEND_CONCURRENCY)
        return local, str(local.root)
    s3 = await S3Backend.open(
        bucket=config.s3.bucket,
        prefix=config.s3.prefix,
        endpoint_url=config.s3.endpoint_url,
        region=config.s3.region,
        concurrency=_BACKEND_CONCURRENCY,
    )
    return s3, s3.location


async def _keyring(config: Config, backend: Backend) -> keys.Keyring:
    """Loads the key file; creates the default one on the first start of an empty store.

    A key file named with --key-file is never created: a missing one is more
    likely an unmounted secret than a first start.
    """
    path = config.key_path
    if config.key_file is not None or path.exists():
        return await asyncio.to_thread(keys.load, path)
    kind = await first_object_kind(backend)
    if kind == "encoded":
        raise keys.KeyFileError(
            f"key file {path} is missing, but the store holds encrypted blocks; "
            "restore the key file (or name it with --key-file)"
        )
    if kind == "plain":
        raise BackendSetupError(PLAIN_STORE)
    keyring = await asyncio.to_thread(keys.create, path)
    log.info(
        "created key file %s with master key %s; keep a copy elsewhere: "
        "without it the blocks cannot be read",
        path,
        keyring.current.name,
    )
    return keyring
