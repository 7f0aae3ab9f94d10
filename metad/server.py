"""Assembly of metad: data directory, store, commit signal, servicer, gRPC server.

Owns the order of startup and shutdown and the data directory layout
(metadata.db plus its WAL files unless the metadata is on PostgreSQL, and
metad.lock, which keeps a second metad off the same directory: on SQLite its
commit notifications would not reach our subscribers). The gRPC lifecycle
itself (bind, health, reflection, ready file, SIGTERM) is protos.runtime.serve's.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc

from metad import accounts, quiet, security
from metad.accounts import AccountsService
from metad.changes import CommitSignal
from metad.errors import StartupError
from metad.housekeeping import Housekeeping, run_forever
from metad.security import RevocationBoard
from metad.service import MetadataService
from metad.store import FIRST_USER_NAME, Store
from protos import auth, metrics
from protos.drive.v1 import accounts_pb2_grpc, metadata_pb2, metadata_pb2_grpc
from protos.guard import MalformedRequests
from protos.metrics import RpcMetrics
from protos.runtime import listen_credentials, serve

log = logging.getLogger(__name__)

DATABASE_NAME = "metadata.db"
LOCK_NAME = "metad.lock"
SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["Metadata"].full_name


AUTH_KEY_NAME = "auth.key"
DRIVE_ID_NAME = "drive.id"
DEFAULT_QUOTA_BYTES = 10 * 1024**3


@dataclass(frozen=True)
class Config:
    data_dir: Path
    listen: str  # HOST:PORT; port 0 = any free port (reported through ready_file)
    ready_file: Path | None = None
    auth_key: Path | None = None  # None: data_dir/auth.key, created on first start
    first_user: str = FIRST_USER_NAME  # name of the administrator made on first start
    default_quota: int = DEFAULT_QUOTA_BYTES  # of users created without one; 0 = unlimited
    quiet_ns: int = quiet.WINDOW_NS  # a file removed this soon after it came skips the trash
    housekeeping: Housekeeping = field(default_factory=Housekeeping)
    tls_cert: Path | None = None  # with tls_key: serve TLS; None: plain text (loopback only)
    tls_key: Path | None = None
    insecure: bool = False  # plain text on a non-loopback address too
    blockd_address: str = ""  # where clients reach blockd (GetDrive), if told
    metrics: str | None = None  # HOST:PORT of /metrics; None: not served
    # The metadata: None = DATA/metadata.db (SQLite); or a postgresql:// URL, which
    # several metad may share (each with its own data directory, one auth key).
    database: str | None = None


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
    """Serves until SIGTERM/SIGINT. Raises StartupError, BindError or TlsError at start."""
    credentials = listen_credentials(
        config.listen, config.tls_cert, config.tls_key, config.insecure
    )
    with _claim_data_dir(config.data_dir):
        key = _auth_key(config)
        commits = CommitSignal()
        store = await Store.open(
            config.database or config.data_dir / DATABASE_NAME,
            on_commit=commits.publish,
            first_user=config.first_user,
            first_user_quota=config.default_quota,
            quiet_ns=config.quiet_ns,
        )
        try:
            drive = accounts.DriveInfo(
                await _adopt_drive_id(store, config.data_dir), config.blockd_address
            )
        except BaseException:
            await store.close()
            raise
        board = RevocationBoard()
        board.publish(await store.revocations())
        chores = asyncio.create_task(run_forever(store, config.housekeeping))
        tasks = [chores]
        if store.shared:  # revocations made through other replicas
            tasks.append(asyncio.create_task(security.follow_database(store.revocations, board)))
        try:
            commits.publish(await store.last_sequence())
            log.info(
                "data %s, schema version %d, journal at sequence %d",
                store.description,
                await store.schema_version(),
                commits.latest,
            )

            counted: list[grpc.aio.ServerInterceptor] = []
            if config.metrics:
                counted = [RpcMetrics()]
                metrics.register(partial(_journal_metrics, commits))
                log.info("metrics on http://%s/metrics", metrics.serve_metrics(config.metrics))

            def add_services(server: grpc.aio.Server) -> Sequence[str]:
                metadata_pb2_grpc.add_MetadataServicer_to_server(
                    MetadataService(
                        store, commits, key, trash_ns=config.housekeeping.trash_ns, board=board
                    ),
                    server,
                )
                accounts_pb2_grpc.add_AccountsServicer_to_server(
                    AccountsService(store, key, config.default_quota, board=board, drive=drive),
                    server,
                )
                return [SERVICE_NAME, accounts.SERVICE_NAME]

            async def end_subscriptions() -> None:
                commits.close()
                board.close()

            await serve(
                "metad",
                config.listen,
                add_services,
                ready_file=config.ready_file,
                on_stopping=end_subscriptions,
                interceptors=[
                    *counted,
                    MalformedRequests(),
                    auth.AuthInterceptor(key, accounts.OPEN_METHODS, board.revocations),
                ],
                credentials=credentials,
            )
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            commits.close()
            await store.close()


def _journal_metrics(commits: CommitSignal) -> list[object]:
    return [
        metrics.gauge("drive_journal_sequence", "the journal's last change", commits.latest),
        metrics.gauge("drive_subscribers", "change subscriptions open now", commits.followers),
    ]


def _drive_id(data_dir: Path) -> str:
    """The drive's id: made at its first start (DATA/drive.id), kept for its lifetime."""
    path = data_dir / DRIVE_ID_NAME
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    made = uuid.uuid4().hex
    _write_drive_id(data_dir, made)
    return made


def _write_drive_id(data_dir: Path, drive_id: str) -> None:
    path = data_dir / DRIVE_ID_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(drive_id + "\n")
    os.replace(tmp, path)


async def _adopt_drive_id(store: Store, data_dir: Path) -> str:
    """The drive's id as its database keeps it, written to DATA/drive.id too.

    Replicas sharing a database tell clients one id: the first to start gave
    its own, the others take it (and keep it in their data directory, where the
    drive command on this machine reads it).
    """
    local = _drive_id(data_dir)
    stored = await store.adopt_drive_id(local)
    if stored != local:
        log.info("this metad serves drive %s, as its database says (not %s)", stored, local)
        _write_drive_id(data_dir, stored)
    return stored


def _auth_key(config: Config) -> auth.AuthKey:
    """The key tokens are signed with: the one named, or DATA/auth.key (made on first start)."""
    try:
        if config.auth_key is not None:
            return auth.load_key(config.auth_key)
        path = config.data_dir / AUTH_KEY_NAME
        existed = path.exists()
        key = auth.load_or_create_key(path)
        if not existed:
            log.info("created auth key %s; give it to blockd with --auth-key", path)
        return key
    except auth.AuthKeyError as exc:
        raise StartupError(str(exc)) from None
