"""A throwaway PostgreSQL cluster for the tests, and a fresh database per test.

The cluster starts once per test session from the PostgreSQL binaries on the
machine (Debian's `postgresql` package; .ci/run installs it), as the
`postgres` OS user when the tests run as root (initdb refuses root), on
127.0.0.1 and a free port, without fsync: nothing in it must outlive the
session. The server is a child of the test process that gets SIGINT (a fast
shutdown) if that process dies, so it never outlives the session either.
Each test that asks gets a database of its own (CREATE DATABASE is quick).

Without PostgreSQL binaries the PostgreSQL tests are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PR_SET_PDEATHSIG = 1
_names = itertools.count(1)


def _binaries() -> Path | None:
    """The directory of initdb and postgres: the newest Debian install, else PATH."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(f"{found}/initdb") and os.path.exists(f"{found}/postgres"):
            return Path(found)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("postgres") else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    port: int
    log: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


def _as_postgres_user() -> dict[str, object]:
    """subprocess arguments that run a program as the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _die_with_parent() -> None:
    """In the server's process: a fast shutdown when the test process goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)


@contextlib.contextmanager
def running_cluster(durable: bool = False) -> Iterator[Cluster]:
    """durable: fsync and synchronous commits on, as a real server runs (for benchmarks);
    the tests run without them."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb/postgres): apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="drivefs-pg-"))
    as_postgres = _as_postgres_user()
    try:
        if as_postgres:
            os.chown(base, as_postgres["user"], as_postgres["group"])  # type: ignore[arg-type]
        data = base / "data"
        subprocess.run(
            [
                binaries / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **as_postgres,  # type: ignore[arg-type]
        )
        port = _free_port()
        log = base / "postgres.log"
        with open(log, "wb") as log_file:
            server = subprocess.Popen(
                [
                    binaries / "postgres",
                    "-D",
                    data,
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=200",
                    *(
                        ()
                        if durable
                        else (
                            "-c",
                            "fsync=off",
                            "-c",
                            "synchronous_commit=off",
                            "-c",
                            "full_page_writes=off",
                        )
                    ),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                **as_postgres,  # type: ignore[arg-type]
            )
        try:
            cluster = Cluster(port, log)
            _wait_ready(cluster, server)
            yield cluster
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(cluster: Cluster, server: subprocess.Popen[bytes]) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited: {cluster.log.read_text()[-2000:]}")
        try:
            with psycopg.connect(cluster.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster (skips the test if PostgreSQL is not installed)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_database(pg_cluster: Cluster) -> str:
    """The URL of a new, empty database of the session's cluster."""
    return pg_cluster.create_database()


ENGINES = (pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgresql))


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store keeps its metadata, once per engine: a SQLite file, a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "metadata.db"
    return request.getfixturevalue("pg_database")
