"""The drive command: the usual mistakes end in one clear line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from fusefs.credentials import TOKEN_ENV
from tests import signin
from tests.running import drive_cli


def drive(
    *args: str, timeout: float = 60, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if token is not None:
        env[TOKEN_ENV] = token
    return drive_cli(*args, env=env, timeout=timeout)


def _one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("drive: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_mountpoint(tmp_path: Path) -> None:
    result = drive("up", str(tmp_path / "nope"), "--data", str(tmp_path / "data"))
    _one_line_error(result, "does not exist")
    assert not (tmp_path / "data").exists(), "nothing is started for a bad mountpoint"


def test_mountpoint_not_empty(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    (tmp_path / "mnt" / "precious.txt").write_text("keep me")
    result = drive("up", str(tmp_path / "mnt"), "--data", str(tmp_path / "data"))
    _one_line_error(result, "not empty")
    assert (tmp_path / "mnt" / "precious.txt").read_text() == "keep me"


def test_mountpoint_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _one_line_error(drive("up", str(tmp_path / "file")), "not a directory")


def test_daemon_unreachable(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = drive(
        "mount", str(tmp_path / "mnt"),
        "--metad", f"127.0.0.1:{port}", "--blockd", f"127.0.0.1:{port}",
        "--cache", str(tmp_path / "cache"), token=signin.token(),
    )  # fmt: skip
    _one_line_error(result, "cannot reach metad", str(port))
    # Maintenance commands too: one line, no traceback.
    for command in ("status", "gc", "scrub"):
        result = drive(
            command, "--metad", f"127.0.0.1:{port}", "--blockd", f"127.0.0.1:{port}",
            token=signin.token(),
        )  # fmt: skip
        _one_line_error(result, "not reachable: is it running?")


def test_mount_without_sign_in(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    result = drive(
        "mount", str(tmp_path / "mnt"), "--metad", "127.0.0.1:1", "--blockd", "127.0.0.1:1",
        "--cache", str(tmp_path / "cache"), token="",
    )  # fmt: skip
    _one_line_error(result, "not signed in to 127.0.0.1:1", "drive login")


def test_a_refused_token_says_how_to_sign_in_again(metad) -> None:
    """metad tells any client to sign in again; the drive command adds how."""
    expired = signin.key().token(1, admin=True, ttl_seconds=3600, now=0)
    result = drive("whoami", "--metad", metad.address, token=expired)
    _one_line_error(result, "token expired: sign in again with drive login")


def test_port_taken(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = drive(
            "up", str(tmp_path / "mnt"), "--data", str(tmp_path / "data"),
            "--metad", f"127.0.0.1:{port}",
        )  # fmt: skip
    _one_line_error(result, "cannot listen", str(port))


def test_serve_port_taken_stops_the_other_daemon(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = drive(
            "serve", "--data", str(tmp_path / "data"),
            "--metad", "127.0.0.1:0", "--blockd", f"127.0.0.1:{port}",
        )  # fmt: skip
    _one_line_error(result, "blockd", "cannot listen")
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "data")], capture_output=True)
    assert out.stdout == b"", "a daemon was left running"
