"""Assembles blockd: backend → store → servicer, served by protos.runtime.

Owns: which backend and store settings the daemon runs with, the worker
threads they use, the start-up log line, and the order of shutdown (server
first, then the writes in flight, then the backend).

Must not: handle requests or map errors (service), or parse arguments and
print errors for the user (__main__).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc

from blockd.backends.local import LocalBackend
from blockd.config import Config
from blockd.service import BlocksService
from blockd.store import BlockStore
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from protos.runtime import serve

log = logging.getLogger(__name__)

# Hashing and file I/O both run in the loop's default executor; disk waits
# (fsync) dominate, so more threads than cores keeps streams moving in parallel.
_WORKER_THREADS = 48
_BACKEND_CONCURRENCY = 32


async def run(config: Config) -> None:
    """Serves until SIGTERM/SIGINT. Raises BindError or BackendSetupError at start."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=_WORKER_THREADS, thread_name_prefix="blockd-worker")
    )
    backend = await LocalBackend.open(config.data_dir, concurrency=_BACKEND_CONCURRENCY)
    try:
        store = await BlockStore.open(backend)
        stats = store.stats()
        log.info(
            "blockd data %s: %d blocks, %d bytes",
            backend.root,
            stats.object_count,
            stats.stored_bytes,
        )

        def add_services(server: grpc.aio.Server) -> list[str]:
            blocks_pb2_grpc.add_BlocksServicer_to_server(BlocksService(store), server)
            return [blocks_pb2.DESCRIPTOR.services_by_name["Blocks"].full_name]

        try:
            await serve("blockd", config.listen, add_services, ready_file=config.ready_file)
        finally:
            await store.close()
    finally:
        await backend.close()
