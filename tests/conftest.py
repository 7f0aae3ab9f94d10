"""Shared fixtures: real daemons as child processes on 127.0.0.1, real sockets.

Every daemon's log is checked when its fixture ends: a WARNING or ERROR line
fails the test unless the test declared it expected with the `allowed_log_patterns` fixture.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from fusefs.credentials import TOKEN_ENV
from fusefs.daemons import Daemon, start_daemon
from protos import auth
from protos.drive.v1 import blocks_pb2_grpc, metadata_pb2_grpc
from tests import signin
from tests.offline import relays_to
from tests.pgserver import database, pg_cluster, pg_database  # noqa: F401 - fixtures
from tests.s3server import (  # noqa: F401 - fixtures
    S3_SERVERS,
    aws_environment,
    s3_bucket,
    s3_of,
    s3_server,
    s3_store,
    scripted_s3,
    seaweed_bucket,
    seaweed_server,
)
from tests.storedobjects import LocalObjects, S3Objects, StoredObjects

_BAD_LOG_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b")


@pytest.fixture
def allowed_log_patterns() -> list[str]:
    """Regexes of WARNING/ERROR log lines a test expects; append to it."""
    return []


def assert_log_clean(log_path: Path, allowed: list[str]) -> None:
    bad = []
    for line in log_path.read_text(errors="replace").splitlines():
        if _BAD_LOG_LINE.search(line) and not any(re.search(p, line) for p in allowed):
            bad.append(line)
    assert not bad, f"unexpected log lines in {log_path.name}:\n" + "\n".join(bad[:20])


class DaemonRunner:
    """Starts daemons for a test and stops them (checking logs) at the end."""

    def __init__(self, allowed: list[str], new_database: Callable[[], str] | None = None) -> None:
        self.allowed = allowed
        self.daemons: list[Daemon] = []
        self._how: dict[int, tuple[str, Path, dict]] = {}
        self._new_database = new_database  # metad's metadata on PostgreSQL (see `daemons`)
        self._databases: dict[Path, str] = {}

    def start(self, name: str, data_dir: Path, listen: str = "127.0.0.1:0", **kw) -> Daemon:
        extra = list(kw.pop("extra_args", None) or [])
        if "--auth-key" not in extra:
            extra += ["--auth-key", str(signin.KEY_PATH)]
        if name == "metad" and "--quiet-seconds" not in extra:
            # Tests make and remove files within seconds: only names mark temporaries
            # here (tests of the quiet trash itself give the window).
            extra += ["--quiet-seconds", "0"]
        if name == "metad" and self._new_database and "--database" not in extra:
            if data_dir not in self._databases:
                self._databases[data_dir] = self._new_database()
            extra += ["--database", self._databases[data_dir]]
        daemon = start_daemon(name, data_dir, listen, extra_args=extra, **kw)
        kw["extra_args"] = extra
        self.daemons.append(daemon)
        self._how[id(daemon)] = (name, data_dir, kw)
        return daemon

    def restart(self, daemon: Daemon) -> Daemon:
        """Starts it again as it was started, on the same address (stopping it if running)."""
        daemon.stop()
        name, data_dir, kw = self._how[id(daemon)]
        return self.start(name, data_dir, daemon.address, **kw)

    def close(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        for daemon in self.daemons:
            assert_log_clean(daemon.log_path, self.allowed)


@pytest.fixture(scope="session", autouse=True)
def session_auth_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One auth key for every daemon of the session (see tests/signin.py)."""
    path = tmp_path_factory.mktemp("auth") / "auth.key"
    auth.load_or_create_key(path)
    signin.KEY_PATH = path
    return path


@pytest.fixture
def daemons(
    allowed_log_patterns: list[str], request: pytest.FixtureRequest
) -> Iterator[DaemonRunner]:
    """DRIVEFS_TEST_METADATA=postgresql: each metad keeps its metadata in a database of
    its own on the session's PostgreSQL cluster (not in CI: a whole-suite run by hand)."""
    new_database = None
    if os.environ.get("DRIVEFS_TEST_METADATA") == "postgresql":
        new_database = request.getfixturevalue("pg_cluster").create_database
    runner = DaemonRunner(allowed_log_patterns, new_database)
    yield runner
    runner.close()


@pytest.fixture
def metad(daemons: DaemonRunner, tmp_path: Path) -> Daemon:
    return daemons.start("metad", tmp_path / "metad")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Runs tests marked both_backends once on the local directory, once on S3 (moto),
    and those also marked seaweedfs_too once more on SeaweedFS."""
    marked = metafunc.definition.get_closest_marker
    if "block_backend" in metafunc.fixturenames and marked("both_backends"):
        backends = ["local", "s3", "seaweed"] if marked("seaweedfs_too") else ["local", "s3"]
        metafunc.parametrize("block_backend", backends, indirect=True)


@pytest.fixture
def block_backend(request: pytest.FixtureRequest) -> str:
    """Where the `blockd` fixture keeps blocks: "local" unless parametrized."""
    return getattr(request, "param", "local")


@pytest.fixture
def block_store(
    block_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> StoredObjects:
    """The objects of the `blockd` fixture's backend, as the storage holds them."""
    if block_backend in S3_SERVERS:
        return S3Objects(*s3_of(request, block_backend))
    return LocalObjects(tmp_path / "blockd")


@pytest.fixture
def blockd(daemons: DaemonRunner, tmp_path: Path, block_store: StoredObjects) -> Daemon:
    return daemons.start("blockd", tmp_path / "blockd", extra_args=block_store.blockd_args)


@pytest.fixture
def drive(daemons, tmp_path: Path):
    """metad, and blockd told where metad is (as `drive up` starts them)."""
    metad = daemons.start("metad", tmp_path / "metad")
    blockd = daemons.start("blockd", tmp_path / "blockd", extra_args=["--metad", metad.address])
    return metad, blockd


@pytest.fixture
def behind_relays(metad: Daemon, blockd: Daemon):
    """metad and blockd as a device behind a network that a test can cut reaches them
    (tests/offline.py)."""
    relays = relays_to(metad, blockd)
    yield relays
    for relay in relays:
        relay.close()


@pytest.fixture
def metadata_stub(metad: Daemon) -> Iterator[metadata_pb2_grpc.MetadataStub]:
    """Signed in as the first user."""
    with signin.channel(metad.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield metadata_pb2_grpc.MetadataStub(channel)


@pytest.fixture
def blocks_stub(blockd: Daemon) -> Iterator[blocks_pb2_grpc.BlocksStub]:
    """Signed in as the first user (an administrator)."""
    with signin.channel(blockd.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield blocks_pb2_grpc.BlocksStub(channel)


# --- real FUSE mounts ------------------------------------------------------


class Mount:
    """A `drive mount` child process serving a real FUSE mount."""

    def __init__(self, path: Path, cache: Path, device: str, process, log_path: Path) -> None:
        self.path = path
        self.cache = cache
        self.device = device
        self.process = process
        self.log_path = log_path

    def sync(self, timeout: float = 120.0) -> None:
        """`drive sync`: returns once what was closed in the mount is on the servers."""
        done = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "sync", str(self.path)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def unmount(self, timeout: float = 60.0) -> None:
        """SIGTERM: what Ctrl-C does; the mount saves open files and unmounts."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
                raise
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)


def _wait_mounted(path: Path, process, log_path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(path):
            return
        if process.poll() is not None:
            raise RuntimeError(f"mount exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"not mounted after {timeout}s: {log_path.read_text()[-2000:]}")


class MountRunner:
    def __init__(self, base: Path, allowed: list[str]) -> None:
        self.base = base
        self.allowed = allowed
        self.mounts: list[Mount] = []

    def mount(self, metad: Daemon, blockd: Daemon, device: str = "dev-a", **kw) -> Mount:
        """Mounts as the first user, or as the bearer of kw["token"]."""
        token = kw.get("token") or signin.token()
        path = kw.get("path") or self.base / f"mnt-{device}-{len(self.mounts)}"
        cache = kw.get("cache") or self.base / f"cache-{device}"
        path.mkdir(parents=True, exist_ok=True)
        log_path = self.base / f"mount-{device}-{len(self.mounts)}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "fusefs.cli", "--verbose", "mount", str(path),
                    "--metad", metad.address, "--blockd", blockd.address,
                    "--cache", str(cache), "--device", device,
                    *kw.get("extra_args", []),
                ],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                env={**os.environ, TOKEN_ENV: token},
            )  # fmt: skip
        m = Mount(path, cache, device, process, log_path)
        self.mounts.append(m)
        _wait_mounted(path, process, log_path)
        return m

    def mount_as(
        self, env: dict[str, str], metad: str, blockd: str, device: str, *extra_args: str
    ) -> Mount:
        """`drive mount` run with env alone: the sign-in and pins its XDG_CONFIG_HOME holds."""
        path = self.base / f"mnt-{device}-{len(self.mounts)}"
        cache = self.base / f"cache-{device}"
        path.mkdir(parents=True, exist_ok=True)
        log_path = self.base / f"mount-{device}-{len(self.mounts)}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "fusefs.cli", "--verbose", "mount", str(path),
                    "--metad", metad, "--blockd", blockd,
                    "--cache", str(cache), "--device", device, *extra_args,
                ],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
            )  # fmt: skip
        m = Mount(path, cache, device, process, log_path)
        self.mounts.append(m)
        _wait_mounted(path, process, log_path)
        return m

    def close(self) -> None:
        for m in reversed(self.mounts):
            m.unmount()
        for m in self.mounts:
            assert_log_clean(m.log_path, self.allowed)


@pytest.fixture
def mounts(
    tmp_path: Path,
    allowed_log_patterns: list[str],
    daemons: DaemonRunner,
    block_store: StoredObjects,
) -> Iterator[MountRunner]:
    # Depends on `daemons` and `block_store` so mounts are unmounted (sending what
    # they journaled) before the daemons stop and the storage goes away.
    runner = MountRunner(tmp_path, allowed_log_patterns)
    yield runner
    runner.close()


@pytest.fixture
def public(mounts: MountRunner) -> Iterator[Path]:
    """A folder every user may pass through (pytest's own are root's, mode 0700), for
    mountpoints other users of the machine must reach; removed after the mounts."""
    path = Path(tempfile.mkdtemp(prefix="drivefs-public-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    for m in mounts.mounts:
        m.unmount()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mount(mounts: MountRunner, metad: Daemon, blockd: Daemon) -> Mount:
    """One mount of a fresh drive."""
    return mounts.mount(metad, blockd, "dev-a")
