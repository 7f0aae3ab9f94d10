"""Assembly of metad: data directory, store, commit signal, servicer, gRPC server.

Owns the order of startup and shutdown and the data directory layout
(metadata.db plus its WAL files, and metad.lock, which keeps a second metad
off the same directory: its commit notifications would not reach our
subscribers). The gRPC lifecycle itself (bind, health, reflection, ready file,
SIGTERM) is protos.runtime.serve's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from metad.changes import CommitSignal
from metad.errors import StartupError
from metad.service import MetadataService
from metad.store import Store
from protos.drive.v1 import metadata_pb2, metadata_pb2_grpc
from protos.runtime import serve

log = logging.getLogger(__name__)

DATABASE_NAME = "metadata.db"
LOCK_NAME = "metad.lock"
SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["Metadata"].full_name


@dataclass(frozen=True)
class Config:
    data_dir: Path
    listen: str  # HOST:PORT; port 0 = any free port (reported through ready_file)
    ready_file: Path | None = None


@contextlib.contextmanager
def _claim_data_dir(data_dir: Path) -> Iterator[None]:
    """Creates the data directory if needed and holds its lock while metad runs."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {data_dir}: {exc.strerror}") from exc
    if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(f"data directory {data_dir} is not writable")
    try:
        lock_file = open(data_dir / LOCK_NAME, "a")  # noqa: SIM115 - held open while running
    except OSError as exc:
        raise StartupError(f"data directory {data_dir} is not writable: {exc.strerror}") from exc
    with lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StartupError(f"data directory {data_dir} is in use by another metad") from exc
        yield


async def run(config: Config) -> None:
    """Serves until SIGTERM/SIGINT. Raises StartupError or BindError if it cannot start."""
    with _claim_data_dir(config.data_dir):
        commits = CommitSignal()
        store = await Store.open(config.data_dir / DATABASE_NAME, on_commit=commits.publish)
        try:
            commits.publish(await store.last_sequence())
            log.info(
                "data %s, schema version %d, journal at sequence %d",
                store.path,
                await store.schema_version(),
                commits.latest,
            )

            def add_services(server: grpc.aio.Server) -> Sequence[str]:
                metadata_pb2_grpc.add_MetadataServicer_to_server(
                    MetadataService(store, commits), server
                )
                return [SERVICE_NAME]

            async def end_subscriptions() -> None:
                commits.close()

            await serve(
                "metad",
                config.listen,
                add_services,
                ready_file=config.ready_file,
                on_stopping=end_subscriptions,
            )
        finally:
            commits.close()
            await store.close()
