"""Signing in as a person does it: one address (`drive login HOST[:PORT] NAME`), then
`drive mount MNT` and every command with nothing else; logins kept per drive, so a drive
that moved needs one login again; `--as NAME`; `--listen` beyond loopback with TLS; and a
metad that lies about its drive is refused before anything is stored or dialled."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fusefs.credentials import TOKEN_ENV
from protos import tls
from protos.drive.v1 import accounts_pb2
from tests import grpcfake
from tests.running import announced_addresses, drive_cli, drive_up

PASSWORD = "bob's long password"


class Device:
    """The `drive` command as run on one device: its own config and data folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_DATA_HOME": str(root / "share"),
        }
        self.env.pop(TOKEN_ENV, None)

    def drive(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return drive_cli(*args, env=self.env, stdin=stdin, timeout=90)

    def add_user(self, data: Path, name: str) -> None:
        """`drive user add NAME` on the server, as its administrator (under --data)."""
        added = self.drive(
            "user", "add", name, "--password-stdin", "--data", str(data),
            stdin=f"{PASSWORD}\n{PASSWORD}\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr

    def login(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`drive login ARGS… --password-stdin`, typing PASSWORD."""
        return self.drive("login", *args, "--password-stdin", stdin=PASSWORD + "\n")

    def logins(self) -> list[dict]:
        saved = json.loads((self.root / "config" / "drivefs" / "credentials.json").read_text())
        assert saved["version"] == 2
        return saved["logins"]

    def mount(self, mnt: Path, *args: str) -> subprocess.Popen:
        """`drive mount MNT ARGS…` in the background, once it has mounted."""
        mnt.mkdir(exist_ok=True)
        log = self.root / "mount.log"
        with open(log, "ab") as out:
            p = subprocess.Popen(
                [sys.executable, "-m", "fusefs.cli", "mount", str(mnt), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            assert p.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return p


def _stop(p: subprocess.Popen, log: Path | None = None) -> None:
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 0, log.read_text() if log else ""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A drive up on this machine (data, log, metad's address) with a user bob."""
    mnt, data, log = tmp_path / "server-mnt", tmp_path / "server-data", tmp_path / "up.log"
    mnt.mkdir()
    up = drive_up(mnt, data, log)
    try:
        Device(tmp_path / "server").add_user(data, "bob")
        (mnt / "from-owner.txt").write_bytes(b"the owner's")
        yield data, log, announced_addresses(log)[-1][0]
    finally:
        _stop(up, log)


def test_another_device_needs_one_address_once_then_nothing(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data, _, metad = served
    laptop = Device(tmp_path / "laptop")
    signed = laptop.login(metad, "bob")
    assert signed.returncode == 0, signed.stderr
    assert f"signed in to {metad} as bob" in signed.stdout
    drive_id = (data / "metad" / "drive.id").read_text().strip()
    (login,) = laptop.logins()
    assert (login["drive"], login["metad"], login["user"]) == (drive_id, metad, "bob")

    mnt = tmp_path / "laptop-mnt"
    mounted = laptop.mount(mnt, "--cache", str(tmp_path / "laptop-cache"))
    try:
        (mnt / "bobs.txt").write_bytes(b"bob's own")
        assert laptop.drive("sync", str(mnt)).returncode == 0
        listed = laptop.drive("ls", "--json")  # no address: the drive of the last login
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["bobs.txt"]
        me = laptop.drive("whoami")
        assert me.stdout.startswith("bob (user "), me.stderr
        watched = subprocess.Popen(
            [sys.executable, "-m", "fusefs.cli", "watch", "--json", "--count", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=laptop.env,
        )  # fmt: skip
        time.sleep(1.5)  # the watch starts at the journal's head
        (mnt / "seen.txt").write_bytes(b"watch this")
        out, err = watched.communicate(timeout=60)
        assert watched.returncode == 0, err
        change = json.loads(out.splitlines()[-1])
        assert (change["kind"], change["path"], change["by"]) == ("created", "seen.txt", "bob")
        assert change["sequence"] > 0 and change["node_kind"] == "file"
    finally:
        _stop(mounted, laptop.root / "mount.log")


def test_a_drive_that_moved_costs_one_login_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    laptop = Device(tmp_path / "laptop")
    up = drive_up(mnt, data, log)
    try:
        server = Device(tmp_path / "server")
        for name in ("bob", "carol"):
            server.add_user(data, name)
        old = announced_addresses(log)[-1][0]
        for name in ("carol", "bob"):
            ok = laptop.login(old, name)
            assert ok.returncode == 0, ok.stderr
    finally:
        _stop(up, log)
    # The drive comes back elsewhere (a new machine, a new port).
    (data / "addresses.json").unlink()
    up = drive_up(mnt, data, log, "--metad", "127.0.0.1:0", "--blockd", "127.0.0.1:0")
    try:
        new = announced_addresses(log)[-1][0]
        assert new != old
        stale = laptop.drive("whoami")
        assert stale.returncode == 1 and "not reachable" in stale.stderr
        again = laptop.login(new, "bob")
        assert again.returncode == 0, again.stderr
        logins = laptop.logins()
        assert {(x["user"], x["metad"]) for x in logins} == {("bob", new), ("carol", new)}
        assert laptop.drive("whoami").stdout.startswith("bob (user ")
        as_carol = laptop.drive("whoami", "--as", "carol")  # moved along, no login again
        assert as_carol.stdout.startswith("carol (user "), as_carol.stderr
    finally:
        _stop(up, log)


def test_on_the_server_commands_act_as_the_first_user_unless_told_as_whom(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data, _, metad = served
    server = Device(tmp_path / "server")
    first = server.drive("whoami", "--data", str(data))
    assert first.returncode == 0 and "administrator" in first.stdout, first.stderr
    nobody = server.drive("whoami", "--data", str(data), "--as", "bob")
    assert nobody.returncode == 1
    assert nobody.stderr.strip() == (
        f"drive: error: not signed in to {metad} as bob: run drive login {metad} bob"
    )
    signed = server.login("bob", "--data", str(data))
    assert signed.returncode == 0, signed.stderr
    still_first = server.drive("whoami", "--data", str(data))
    assert "administrator" in still_first.stdout  # a saved login does not take over
    bob = server.drive("whoami", "--data", str(data), "--as", "bob")
    assert bob.stdout.startswith("bob (user ") and "administrator" not in bob.stdout
    refused = server.drive("user", "quota", "carol", "1G", "--data", str(data), "--as", "bob")
    assert refused.returncode == 1 and "administrator" in refused.stderr


def test_drive_up_listens_beyond_loopback_only_with_tls(tmp_path: Path) -> None:
    mnt, data, log = tmp_path / "mnt", tmp_path / "data", tmp_path / "up.log"
    mnt.mkdir()
    up = drive_up(mnt, data, log, "--listen", "0.0.0.0")
    try:
        (mnt / "a.txt").write_bytes(b"over TLS")  # the mount on this machine works on
        assert "(TLS, certificate authority SHA256:" in log.read_text()
        metad, blockd = announced_addresses(log)[-1]
        assert metad.startswith("0.0.0.0:") and blockd.startswith("0.0.0.0:")
        # 127.0.0.2 is not where a loopback-only daemon listens: reached, it speaks TLS.
        for address in (metad, blockd):
            state, _ = tls.look("127.0.0.2:" + address.rpartition(":")[2])
            assert state == "tls"
        listed = Device(tmp_path / "server").drive("ls", "--json", "--data", str(data))
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["a.txt"]
    finally:
        _stop(up, log)


@pytest.fixture
def lying_metad() -> Iterator[tuple[str, accounts_pb2.DriveInfo]]:
    """A plain-text gRPC server answering GetDrive with whatever the test puts there."""
    answer = accounts_pb2.DriveInfo()
    signed_in: list[str] = []

    def get_drive(request, context):
        return answer

    def sign_in(request, context):
        signed_in.append(request.password)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "no")

    handlers = {
        "GetDrive": grpc.unary_unary_rpc_method_handler(
            get_drive,
            request_deserializer=accounts_pb2.GetDriveRequest.FromString,
            response_serializer=accounts_pb2.DriveInfo.SerializeToString,
        ),
        "SignIn": grpc.unary_unary_rpc_method_handler(
            sign_in,
            request_deserializer=accounts_pb2.SignInRequest.FromString,
            response_serializer=accounts_pb2.SignInResponse.SerializeToString,
        ),
    }
    with grpcfake.serving("drive.v1.Accounts", handlers) as address:
        yield address, answer
    assert signed_in == [], "a password went to a metad that lied about its drive"


@pytest.mark.parametrize(
    ("drive_id", "blockd", "said"),
    [
        ("../../etc/passwd", "127.0.0.1:7402", "gave a malformed drive id"),
        ("x" * 65, "127.0.0.1:7402", "gave a malformed drive id"),
        ("a1b2", "evil", "gave an unusable blockd address"),
        ("a1b2", "host:99999", "gave an unusable blockd address"),
        ("a1b2", "bad host:7402", "gave an unusable blockd address"),
        ("a1b2", "127.0.0.1:7402\n--insecure", "gave an unusable blockd address"),
    ],
)
def test_a_metad_lying_about_its_drive_is_refused_before_anything_is_kept(
    lying_metad: tuple[str, accounts_pb2.DriveInfo],
    tmp_path: Path,
    drive_id: str,
    blockd: str,
    said: str,
) -> None:
    address, answer = lying_metad
    answer.drive_id, answer.blockd_address = drive_id, blockd
    laptop = Device(tmp_path / "laptop")
    login = laptop.login(address, "bob")
    assert login.returncode == 1
    assert login.stderr.strip() == f"drive: error: metad at {address} {said}"
    assert not (laptop.root / "config" / "drivefs" / "credentials.json").exists()
    if "blockd" in said:
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        env_token = {**laptop.env, TOKEN_ENV: "not-a-real-token"}
        mounted = subprocess.run(
            [sys.executable, "-m", "fusefs.cli", "mount", str(mnt), "--metad", address],
            capture_output=True, text=True, timeout=60, env=env_token,
        )  # fmt: skip
        assert mounted.returncode == 1
        assert mounted.stderr.strip() == f"drive: error: metad at {address} {said}"
        assert not os.path.ismount(mnt)


def test_a_second_device_carries_on_across_three_restarts_without_a_new_login(
    tmp_path: Path,
) -> None:
    mnt, data, log = tmp_path / "server-mnt", tmp_path / "server-data", tmp_path / "up.log"
    mnt.mkdir()
    laptop = Device(tmp_path / "laptop")
    laptop_mnt = tmp_path / "laptop-mnt"
    up = drive_up(mnt, data, log)
    mounted = watching = None
    try:
        Device(tmp_path / "server").add_user(data, "bob")
        metad = announced_addresses(log)[-1][0]
        signed = laptop.login(metad, "bob")
        assert signed.returncode == 0, signed.stderr
        mounted = laptop.mount(laptop_mnt, "--cache", str(tmp_path / "laptop-cache"))
        watching = subprocess.Popen(
            [sys.executable, "-m", "fusefs.cli", "watch", "--json", "--from", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=laptop.env,
        )  # fmt: skip
        seen: queue.Queue[dict] = queue.Queue()
        threading.Thread(
            target=lambda: [seen.put(json.loads(line)) for line in watching.stdout], daemon=True
        ).start()
        for restart in range(3):
            _stop(up, log)
            up = drive_up(mnt, data, log)
            name = f"after-restart-{restart}.txt"
            (laptop_mnt / name).write_bytes(name.encode())
            _synced(laptop, laptop_mnt)
            _wait_for_change(seen, name)
        assert len(set(announced_addresses(log))) == 1  # one address for all four starts
        listed = laptop.drive("ls", "--json")
        names = {json.loads(line)["name"] for line in listed.stdout.splitlines()}
        assert names == {f"after-restart-{n}.txt" for n in range(3)}, listed.stderr
        assert len(laptop.logins()) == 1
    finally:
        if watching is not None:
            watching.send_signal(signal.SIGINT)
            watching.wait(30)
        if mounted is not None:
            _stop(mounted, laptop.root / "mount.log")
        _stop(up, log)


def _synced(device: Device, mnt: Path) -> None:
    """drive sync until it succeeds: a mount that saw metad go away finds it back within
    a few seconds (it probes every second)."""
    deadline = time.monotonic() + 60
    while (synced := device.drive("sync", str(mnt))).returncode != 0:
        assert time.monotonic() < deadline, synced.stdout + synced.stderr
        time.sleep(0.5)


def _wait_for_change(seen: queue.Queue[dict], path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"drive watch never showed {path}"
        try:
            change = seen.get(timeout=remaining)
        except queue.Empty:
            continue
        if change["path"] == path:
            return
