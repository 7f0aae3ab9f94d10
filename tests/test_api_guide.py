"""protos/API.md holds for a client in another language: a Node.js program
(tests/api_node/guide.mjs, @grpc/grpc-js loading the .proto files and nothing else of
drivefs) follows it step by step against a real `drive up`. What the mount wrote reads
right there, what Node wrote reads back byte for byte through the mount with Node as
its author, and another user showing Node's proofs, or nobody at all, is refused.
Against `drive serve` it connects over TLS trusting the drive's own CA."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from tests.running import announced_addresses, drive_cli, drive_up
from tests.waiting import eventually

API_NODE = Path(__file__).parent / "api_node"
MiB = 1024 * 1024


def _node() -> str:
    """The node program, with the client's packages installed (npm ci, as .ci/run does)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "node and npm are not installed: this test runs a Node.js client "
            "(bash .ci/run installs Debian's nodejs and npm; or apt-get install nodejs npm)"
        )
    if not (API_NODE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=API_NODE, capture_output=True, text=True
        )
        assert installed.returncode == 0, installed.stderr
    return node


def _drive(*args: str, stdin: str = "") -> str:
    """A drive command's stdout (given --data, it acts as that drive's administrator)."""
    done = drive_cli(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


PASSWORDS = {"ada": "ada's secret", "mallory": "mallory's own"}


def _guide(node: str, metad: str, *args: str, env: dict[str, str]) -> dict:
    """What guide.mjs reports after following the guide (the test fails if it did not)."""
    ran = subprocess.run(
        [node, str(API_NODE / "guide.mjs"), "--metad", metad, *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def test_a_node_client_follows_the_api_guide(tmp_path: Path) -> None:
    node = _node()
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    up = drive_up(mnt, data, log)
    try:
        metad, _ = announced_addresses(log)[-1]
        written_here = os.urandom(5 * MiB + 777)
        (mnt / "inbox").mkdir()
        (mnt / "inbox" / "from-mount.bin").write_bytes(written_here)
        _drive("sync", str(mnt))
        for name, password in PASSWORDS.items():
            _drive("user", "add", name, "--password-stdin", "--data", str(data), stdin=password)
        _drive("share", "inbox", "ada", "--role", "write", "--data", str(data))

        summary = _guide(
            node, metad, "--user", "ada", "--shared", "inbox", "--read", "from-mount.bin",
            "--write", "from-node.bin", "--intruder", "mallory",
            env={"DRIVE_PASSWORD": PASSWORDS["ada"], "INTRUDER_PASSWORD": PASSWORDS["mallory"]},
        )  # fmt: skip

        # Node read what the mount wrote, and hashes it as drivefs does.
        assert summary["read"]["size"] == len(written_here)
        assert summary["read"]["sha256"] == hashlib.sha256(written_here).hexdigest()
        assert summary["read"]["blake3"] == blake3.blake3(written_here).hexdigest()

        # What Node wrote is in the owner's mount, byte for byte, made by Node as ada.
        wrote = summary["wrote"]
        there = mnt / "inbox" / "from-node.bin"
        eventually(lambda: there.stat().st_size == wrote["size"], timeout=30)
        assert hashlib.sha256(there.read_bytes()).hexdigest() == wrote["sha256"]
        listed = _drive("history", "inbox/from-node.bin", "--json", "--data", str(data))
        history = [json.loads(line) for line in listed.splitlines()]
        assert [(h["revision"], h["author"], h["device"]) for h in history[:2]] == [
            (int(wrote["revision"]), "ada", "api-guide-node"),
            (int(wrote["revision"]) - 1, "ada", "api-guide-node"),
        ]
        assert history[0]["current"] and history[0]["size"] == wrote["size"]
        assert wrote["blocks_sent"] == [6, 2]  # the edit sent only the blocks it changed

        refused = summary["refused"]
        # Each refusal explains itself to any client, naming no program of ours.
        details = {what: r.pop("details") for what, r in refused.items()}
        assert not any("drive login" in said for said in details.values()), details
        assert "Accounts.SignIn" in details["no_token"]
        assert refused == {
            "no_token": {"code": "UNAUTHENTICATED", "reason": ""},
            "forged_token": {"code": "UNAUTHENTICATED", "reason": ""},
            "their_revision": {"code": "NOT_FOUND", "reason": "not-found"},
            "their_grants": {"code": "PERMISSION_DENIED", "reason": ""},
            "their_receipts": {"code": "PERMISSION_DENIED", "reason": "unproven-blocks"},
        }
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()


def test_the_node_client_over_tls_trusting_the_drives_ca(tmp_path: Path) -> None:
    node = _node()
    data = tmp_path / "data"
    serve = subprocess.Popen(
        [sys.executable, "-m", "fusefs.cli", "serve", "--data", str(data),
         "--metad", "127.0.0.1:0", "--blockd", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        announced = serve.stdout.readline()  # "metad on HOST:PORT, blockd on …(TLS)"
        assert announced.startswith("metad on ") and "(TLS)" in announced, announced
        metad = announced.split()[2].rstrip(",")
        ada = PASSWORDS["ada"]
        _drive("user", "add", "ada", "--password-stdin", "--data", str(data), stdin=ada)
        summary = _guide(
            node, metad, "--ca", str(data / "tls" / "ca.pem"), "--user", "ada",
            "--write", "over-tls.bin", env={"DRIVE_PASSWORD": ada},
        )  # fmt: skip
        assert summary["wrote"]["blocks_sent"] == [6, 2]
        assert summary["wrote"]["size"] == 6 * MiB + 12345
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, serve.communicate()[1]
