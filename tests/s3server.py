"""A real S3 API server on 127.0.0.1 for the tests: moto's standalone server.

conftest.py imports the fixtures below, so any test can ask for them. The
server is started once per test session as a child process
(`python -m moto.server -H 127.0.0.1 -p PORT`) on a free port, and stopped
at the end; every test gets a bucket of its own, so tests
share the server but never see each other's objects. Dummy AWS credentials are
set in the environment for the session, so in-process clients and daemons
started as child processes find them through boto3's standard chain, and
nothing from the host's ~/.aws leaks in.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import os
import socket
import subprocess
import sys
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
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait on an instance-metadata lookup
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
_bucket_numbers = itertools.count(1)


class S3Server:
    """A running moto server."""

    def __init__(self, process: subprocess.Popen[bytes], endpoint: str, log_path: Path) -> None:
        self.process = process
        self.endpoint = endpoint
        self.log_path = log_path
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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh empty bucket for one test; emptied and removed after it."""
    bucket = s3_server.create_bucket()
    yield bucket
    with contextlib.suppress(Exception):  # only to free the server's memory
        keys = s3_server.keys(bucket)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            s3_server.client.delete_objects(Bucket=bucket, Delete={"Objects": batch})
        s3_server.client.delete_bucket(Bucket=bucket)


# --- a scripted fake, for what a real server will not do on cue ------------------------------

# (HTTP status, body or, for an error, its S3 error code); None: drop the connection
Reply = tuple[int, bytes | str] | None


class ScriptedS3:
    """An HTTP server on 127.0.0.1 answering S3 requests from a script.

    `script(method, path)` returns the reply to each request: (200, b"body"),
    (503, "SlowDown") for an S3 error with that code, or None to close the
    connection without a reply. Every request is recorded as
    (method, path) in `requests`. For retries and error mapping: throttling,
    5xx, dropped connections, access denied, in the order a test wants them.
    """

    def __init__(self, script: Callable[[str, str], Reply]) -> None:
        self.script = script
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path))
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
                self.end_headers()
                if self.command != "HEAD":
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
        yield start
    for server in servers:
        server.close()
