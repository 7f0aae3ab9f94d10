"""TLS: the drive's own CA, pinning at `drive login`, and the clear line for every mismatch.

Real daemons serve TLS on 127.0.0.1 with certificates made by
protos.tls.ensure_drive_certificates, as `drive serve` makes them; the drive
command runs as a child process with its own XDG_CONFIG_HOME, so what it
pins and saves is the test's alone. Where a test must show that nothing
reached a server, a recording TLS server stands at the daemon's address.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fusefs.clients import AccountsClient
from fusefs.credentials import TOKEN_ENV
from fusefs.daemons import Daemon, DaemonError, start_daemon
from protos import tls
from tests import signin
from tests.conftest import assert_log_clean
from tests.running import drive_cli
from tests.waiting import eventually

TIMEOUT = 60
CAROL_PASSWORD = "carol's long password"
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


@dataclass
class TlsDrive:
    metad: Daemon
    blockd: Daemon | None
    files: tls.TlsFiles

    @property
    def fingerprint(self) -> str:
        return tls.fingerprint(self.files.ca_cert.read_bytes())

    @property
    def trust(self) -> tls.Trust:
        return tls.load_trust(self.files.ca_cert)


def serve_tls(daemons, base: Path, blockd: bool = True) -> TlsDrive:
    """metad (and blockd, reaching metad over TLS) with a drive CA of their own under base."""
    files = tls.ensure_drive_certificates(base / "tls", [])
    serve = ["--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)]
    metad = daemons.start("metad", base / "metad", extra_args=serve)
    if not blockd:
        return TlsDrive(metad, None, files)
    to_metad = ["--metad", metad.address, "--metad-ca", str(files.ca_cert)]
    return TlsDrive(
        metad, daemons.start("blockd", base / "blockd", extra_args=serve + to_metad), files
    )


@pytest.fixture
def tls_drive(daemons, tmp_path: Path) -> TlsDrive:
    return serve_tls(daemons, tmp_path / "drive")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A person on another machine: nothing signed in, nothing pinned yet."""
    clean = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The drive command, as the person env describes."""
    return drive_cli(*args, env=env, stdin=stdin, timeout=TIMEOUT)


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("drive: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def add_user(at: TlsDrive, name: str, password: str) -> None:
    admin = AccountsClient(at.metad.address, signin.token, trust=at.trust)
    try:
        admin.create_user(name, password)
    finally:
        admin.close()


def login(env: dict[str, str], name: str, metad: str, *options: str) -> subprocess.CompletedProcess:
    return cli(
        env, "login", name, "--metad", metad, "--password-stdin", *options,
        stdin=CAROL_PASSWORD + "\n",
    )  # fmt: skip


# --- certificates ---------------------------------------------------------------------------


def test_the_drive_ca_is_made_once_and_never_overwritten(tmp_path: Path) -> None:
    files = tls.ensure_drive_certificates(tmp_path / "tls", ["drive.example", "192.0.2.7"])
    for key in (files.ca_key, files.server_key):
        assert key.stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.startswith("drivefs CA")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    chain = x509.load_pem_x509_certificates(files.server_cert.read_bytes())
    assert chain[1] == ca, "server.pem carries the CA after the leaf"
    chain[0].verify_directly_issued_by(ca)
    names = tls.names(chain[0].public_bytes(Encoding.DER))
    for name in ("drivefs", "localhost", socket.gethostname(), "127.0.0.1", "::1"):
        assert name in names
    assert {"drive.example", "192.0.2.7"} <= set(names)
    der = ca.public_bytes(Encoding.DER)
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert tls.fingerprint(files.ca_cert.read_bytes()) == tls.fingerprint(der) == expected

    before = {p: p.read_bytes() for p in tmp_path.joinpath("tls").iterdir()}
    again = tls.ensure_drive_certificates(tmp_path / "tls", ["other.example"])
    assert again == files
    assert {p: p.read_bytes() for p in tmp_path.joinpath("tls").iterdir()} == before
    # A lost server certificate is made anew by the same CA: pins stay valid.
    files.server_cert.unlink()
    files.server_key.unlink()
    tls.ensure_drive_certificates(tmp_path / "tls", [])
    assert files.ca_cert.read_bytes() == before[files.ca_cert]
    leaf = x509.load_pem_x509_certificates(files.server_cert.read_bytes())[0]
    leaf.verify_directly_issued_by(ca)


def test_peer_chain_and_probe(tls_drive: TlsDrive, metad: Daemon, tmp_path: Path) -> None:
    chain = tls.peer_chain(tls_drive.metad.address)
    assert len(chain) == 2
    assert tls.fingerprint(tls.chain_ca(chain)) == tls_drive.fingerprint
    assert tls_drive.trust.target_name == "drivefs"
    assert tls_drive.trust.vouches_for(chain)
    other = tls.ensure_drive_certificates(tmp_path / "other-tls", [])
    assert not tls.load_trust(other.ca_cert).vouches_for(chain)
    assert tls.probe(tls_drive.metad.address) == "tls"
    assert tls.probe(metad.address) == "plaintext"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        assert tls.probe(f"127.0.0.1:{s.getsockname()[1]}") == "unreachable"


# --- the daemons ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["metad", "blockd"])
def test_plain_text_off_loopback_is_refused_unless_insecure(name: str, tmp_path: Path) -> None:
    # Both runs are in a network namespace of their own: 0.0.0.0 there is only that
    # namespace's loopback, so nothing is reachable from outside, even if the
    # refusal broke.
    args = ["unshare", "--net", sys.executable, "-m", name, "--data", str(tmp_path / name)]
    args += ["--auth-key", str(signin.KEY_PATH)] if name == "blockd" else []
    refused = subprocess.run(
        [*args, "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=20
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"{name}: error: refusing to listen on 0.0.0.0:0 in plain text: tokens and passwords "
        "would cross the network readable; give --tls-cert and --tls-key (or --insecure to do "
        "it anyway)"
    ]
    ready = tmp_path / f"{name}.ready"
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*args, "--listen", "0.0.0.0:0", "--insecure",
             "--ready-file", str(ready)],
            stdout=log, stderr=log,
        )  # fmt: skip
    try:
        eventually(lambda: ready.exists() or process.poll() is not None, timeout=20)
        assert process.poll() is None, log_path.read_text()
        assert ready.read_text().startswith("0.0.0.0:")
        assert "(plain text)" in log_path.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(TIMEOUT)
    assert process.returncode == 0
    assert_log_clean(log_path, [])


def test_a_daemon_with_a_key_not_of_its_certificate_says_so(tmp_path: Path) -> None:
    files = tls.ensure_drive_certificates(tmp_path / "tls", [])
    with pytest.raises(DaemonError, match="is not the key of the certificate"):
        start_daemon(
            "metad", tmp_path / "metad", "127.0.0.1:0",
            extra_args=["--tls-cert", str(files.server_cert), "--tls-key", str(files.ca_key)],
        )  # fmt: skip


# --- clients that expect the other thing ------------------------------------------------------


def test_plain_text_client_to_a_tls_drive_gets_one_clear_line(
    tls_drive: TlsDrive, env: dict[str, str], tmp_path: Path
) -> None:
    metad, blockd = tls_drive.metad.address, tls_drive.blockd.address  # type: ignore[union-attr]
    signed = {**env, TOKEN_ENV: signin.token()}
    speaks_tls = (f"the drive at {metad} speaks TLS", "drive login", "--ca")
    one_line_error(cli(signed, "whoami", "--metad", metad), *speaks_tls)
    one_line_error(cli(signed, "ls", "--metad", metad, "--insecure"), *speaks_tls)
    (tmp_path / "mnt").mkdir()
    mount = cli(
        signed, "mount", str(tmp_path / "mnt"), "--metad", metad, "--blockd", blockd,
        "--cache", str(tmp_path / "cache"),
    )  # fmt: skip
    one_line_error(mount, *speaks_tls)
    one_line_error(
        cli(signed, "gc", "--blockd", blockd, "--data", str(tmp_path / "none")),
        f"the drive at {blockd} speaks TLS",
    )
    # Given the CA, the same commands work.
    ca = ["--ca", str(tls_drive.files.ca_cert)]
    whoami = cli(signed, "whoami", "--metad", metad, *ca)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith("owner (user 1")
    gc = cli(signed, "gc", "--grace", "0", "--metad", metad, "--blockd", blockd, *ca)
    assert gc.returncode == 0, gc.stderr  # blockd asked metad over TLS which blocks are in use
    assert gc.stdout.startswith("scanned ")


def test_tls_client_to_a_plain_text_drive_gets_one_clear_line(
    drive, env: dict[str, str], tmp_path: Path
) -> None:
    metad, _ = drive
    files = tls.ensure_drive_certificates(tmp_path / "tls", [])
    fingerprint = tls.fingerprint(files.ca_cert.read_bytes())
    signed = {**env, TOKEN_ENV: signin.token()}
    one_line_error(
        cli(signed, "whoami", "--metad", metad.address, "--ca", str(files.ca_cert)),
        f"the drive at {metad.address} does not speak TLS",
    )
    one_line_error(
        login(env, "carol", metad.address, "--fingerprint", fingerprint),
        f"the drive at {metad.address} does not speak TLS",
    )
    # Plain text to a loopback daemon (drive up's) needs no option.
    assert cli(signed, "whoami", "--metad", metad.address).returncode == 0


def test_a_pinned_drive_back_in_plain_text_is_refused(daemons, tmp_path, env) -> None:
    first = serve_tls(daemons, tmp_path / "a", blockd=False)
    add_user(first, "carol", CAROL_PASSWORD)
    assert (
        login(env, "carol", first.metad.address, "--fingerprint", first.fingerprint).returncode == 0
    )
    first.metad.stop()
    daemons.start("metad", tmp_path / "a" / "metad", first.metad.address)  # no --tls-cert
    for result in (
        cli(env, "whoami", "--metad", first.metad.address),
        login(env, "carol", first.metad.address),
    ):
        one_line_error(result, "does not speak TLS", "pinned")


def test_a_pinned_drive_that_moved_is_trusted_at_its_new_address(daemons, tmp_path, env) -> None:
    """A drive moved to another address presents the CA pinned at the old one: a login
    there needs no fingerprint again, and moves the saved login; another CA still does."""
    first = serve_tls(daemons, tmp_path / "a", blockd=False)
    add_user(first, "carol", CAROL_PASSWORD)
    old = first.metad.address
    assert login(env, "carol", old, "--fingerprint", first.fingerprint).returncode == 0
    first.metad.stop()
    serve = ["--tls-cert", str(first.files.server_cert), "--tls-key", str(first.files.server_key)]
    moved = daemons.start("metad", tmp_path / "a" / "metad", extra_args=serve)
    assert moved.address != old
    signed_in = login(env, "carol", moved.address)  # no terminal, no fingerprint
    assert signed_in.returncode == 0, signed_in.stderr
    assert f"over TLS (CA {first.fingerprint})" in signed_in.stdout
    saved = json.loads((Path(env["XDG_CONFIG_HOME"]) / "drivefs" / "credentials.json").read_text())
    assert [(x["user"], x["metad"]) for x in saved["logins"]] == [("carol", moved.address)]
    assert cli(env, "whoami").stdout.startswith("carol (user ")
    other = serve_tls(daemons, tmp_path / "b", blockd=False)
    add_user(other, "carol", CAROL_PASSWORD)
    one_line_error(login(env, "carol", other.metad.address), "--fingerprint", "--ca")


# --- pinning ----------------------------------------------------------------------------------


class Recorder:
    """A TLS server with another drive's certificate that answers nothing, counting what it gets."""

    def __init__(self, address: str, files: tls.TlsFiles) -> None:
        host, port = address.rsplit(":", 1)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(files.server_cert, files.server_key)
        self._context.set_alpn_protocols(["h2"])
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, int(port)))
        self._listener.listen()
        self._listener.settimeout(0.1)
        self.handshakes = 0
        self.received = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self._context.wrap_socket(conn, server_side=True) as tls_conn:
                self.handshakes += 1
                self.received += len(tls_conn.recv(65536))  # then close: answer nothing
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._listener.close()


@pytest.fixture
def recorder_at() -> Iterator:
    made: list[Recorder] = []

    def start(address: str, files: tls.TlsFiles) -> Recorder:
        made.append(Recorder(address, files))
        return made[-1]

    yield start
    for recorder in made:
        recorder.close()


def test_another_certificate_than_the_pinned_one_gets_nothing(
    daemons, tmp_path: Path, env: dict[str, str], recorder_at
) -> None:
    first = serve_tls(daemons, tmp_path / "a", blockd=False)
    add_user(first, "carol", CAROL_PASSWORD)
    address = first.metad.address
    signed_in = login(env, "carol", address, "--fingerprint", first.fingerprint)
    assert signed_in.returncode == 0, signed_in.stderr
    assert f"over TLS (CA {first.fingerprint})" in signed_in.stdout
    # Another drive (its own CA) now answers at the pinned address.
    first.metad.stop()
    other = tls.ensure_drive_certificates(tmp_path / "b" / "tls", [])
    now = tls.fingerprint(other.ca_cert.read_bytes())
    recorder = recorder_at(address, other)
    changed = (
        f"the certificate of the drive at {address} changed: pinned {first.fingerprint}, "
        f"now {now}; ",
        f"run drive login again with --fingerprint {now}",
    )
    one_line_error(login(env, "carol", address), *changed)  # no password sent
    one_line_error(cli(env, "whoami", "--metad", address), *changed)  # no token sent
    (tmp_path / "mnt").mkdir()
    mount = cli(
        env, "mount", str(tmp_path / "mnt"), "--metad", address, "--blockd", address,
        "--cache", str(tmp_path / "cache"),
    )  # fmt: skip
    one_line_error(mount, *changed)
    one_line_error(
        login(env, "carol", address, "--fingerprint", first.fingerprint),
        f"presents certificate authority {now}, not {first.fingerprint}",
    )
    assert recorder.handshakes >= 4, "each command looked at the server"
    assert recorder.received == 0, "a token or a password reached the other server"
    # The recorder does see what a client sends once it trusts it.
    assert login(env, "carol", address, "--fingerprint", now).returncode != 0
    assert recorder.received > 0


def test_new_certificates_need_a_login_with_the_new_fingerprint(
    daemons, tmp_path: Path, env: dict[str, str]
) -> None:
    first = serve_tls(daemons, tmp_path / "a", blockd=False)
    add_user(first, "carol", CAROL_PASSWORD)
    address, old = first.metad.address, first.fingerprint
    assert login(env, "carol", address, "--fingerprint", old).returncode == 0
    # The operator makes the drive's certificates anew and restarts metad.
    first.metad.stop()
    for path in (tmp_path / "a" / "tls").iterdir():
        path.unlink()
    files = tls.ensure_drive_certificates(tmp_path / "a" / "tls", [])
    new = tls.fingerprint(files.ca_cert.read_bytes())
    serve = ["--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)]
    daemons.start("metad", tmp_path / "a" / "metad", address, extra_args=serve)
    one_line_error(cli(env, "whoami", "--metad", address), f"pinned {old}, now {new}")
    renewed = login(env, "carol", address, "--fingerprint", new)
    assert renewed.returncode == 0, renewed.stderr
    whoami = cli(env, "whoami", "--metad", address)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith("carol (user ")


# --- a second device --------------------------------------------------------------------------


def test_second_device_signs_in_over_tls_and_mounts(
    tls_drive: TlsDrive, env: dict[str, str], mounts, tmp_path: Path
) -> None:
    metad, blockd = tls_drive.metad.address, tls_drive.blockd.address  # type: ignore[union-attr]
    # The server's own mount signs in with the key file, as drive up's does: it
    # outlives the password change below (which signs out everything else).
    first = mounts.mount(
        tls_drive.metad,
        tls_drive.blockd,
        "server",
        extra_args=["--ca", str(tls_drive.files.ca_cert)],
        token=signin.token(local=True),
    )
    admin = AccountsClient(metad, signin.token, trust=tls_drive.trust)
    try:
        admin.set_password(CAROL_PASSWORD, name="owner")
    finally:
        admin.close()
    # No terminal, no fingerprint: one line that shows the fingerprint to compare.
    unknown = one_line_error(login(env, "owner", metad), "--fingerprint", "--ca")
    assert FINGERPRINT.findall(unknown) == [tls_drive.fingerprint]
    signed_in = login(env, "owner", metad, "--fingerprint", tls_drive.fingerprint)
    assert signed_in.returncode == 0, signed_in.stderr
    pins = Path(env["XDG_CONFIG_HOME"]) / "drivefs" / "known_drives.json"
    assert pins.stat().st_mode & 0o777 == 0o600
    assert tls_drive.fingerprint in pins.read_text()

    second = mounts.mount_as(env, metad, blockd, "laptop")
    data = os.urandom(3 * 1024 * 1024 + 17)
    (second.path / "from-laptop.bin").write_bytes(data)
    eventually(lambda: (first.path / "from-laptop.bin").read_bytes() == data, timeout=10)
    watched = cli(env, "watch", "--from", "0", "--count", "1", "--metad", metad)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip() == "owner created from-laptop.bin"


def at_a_terminal(env: dict[str, str], args: list[str], answers: list[tuple[str, str]]) -> str:
    """Runs the drive command on a pseudo-terminal, answering each prompt; what it showed."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fusefs.cli", *args],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    shown = b""

    def read_until(prompt: bytes) -> None:
        nonlocal shown
        while prompt not in shown:
            ready, _, _ = select.select([controller], [], [], TIMEOUT)
            assert ready, f"no {prompt!r} in {shown!r}"
            try:
                shown += os.read(controller, 4096)
            except OSError:  # the command ended: the terminal is gone
                assert prompt in shown, shown
                return

    try:
        for prompt, answer in answers:
            read_until(prompt.encode())
            os.write(controller, answer.encode() + b"\n")
        process.wait(TIMEOUT)
        with contextlib.suppress(OSError):  # what it wrote last, until the terminal is gone
            while select.select([controller], [], [], 0.5)[0]:
                chunk = os.read(controller, 4096)
                if not chunk:
                    break
                shown += chunk
    finally:
        process.kill()
        process.wait()
        os.close(controller)
    return f"exit {process.returncode}\n" + shown.decode(errors="replace")


def test_at_a_terminal_login_shows_the_fingerprint_and_asks(
    tls_drive: TlsDrive, env: dict[str, str]
) -> None:
    add_user(tls_drive, "carol", CAROL_PASSWORD)
    args = ["login", "carol", "--metad", tls_drive.metad.address]
    refused = at_a_terminal(env, args, [("[y/N] ", "n")])
    assert refused.startswith("exit 1\n"), refused
    assert tls_drive.fingerprint in refused
    assert "not trusted" in refused and "password" not in refused
    pins = Path(env["XDG_CONFIG_HOME"]) / "drivefs" / "known_drives.json"
    assert not pins.exists()
    accepted = at_a_terminal(env, args, [("[y/N] ", "y"), ("password for carol: ", CAROL_PASSWORD)])
    assert accepted.startswith("exit 0\n"), accepted
    assert f"signed in to {tls_drive.metad.address} as carol over TLS" in accepted
    assert tls_drive.fingerprint in pins.read_text()
    # Pinned now: no question the next time.
    again = at_a_terminal(env, args, [("password for carol: ", CAROL_PASSWORD)])
    assert again.startswith("exit 0\n") and "[y/N]" not in again, again


def test_serve_prints_the_fingerprint_login_shows_and_keeps_it(
    tmp_path: Path, env: dict[str, str], allowed_log_patterns: list[str]
) -> None:
    data = tmp_path / "data"

    def serve() -> tuple[subprocess.Popen[str], str, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "fusefs.cli", "serve", "--data", str(data),
             "--metad", "127.0.0.1:0", "--blockd", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            addresses, announced = process.stdout.readline(), process.stdout.readline()
            assert addresses.startswith("metad on 127.0.0.1:") and "(TLS)" in addresses
            assert announced.startswith("TLS certificate authority SHA256:"), announced
            assert "compare it when you drive login from another machine" in announced
            return process, addresses.split()[2].rstrip(","), FINGERPRINT.findall(announced)[0]
        except BaseException:
            stop(process)
            raise

    def stop(process: subprocess.Popen[str]) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(TIMEOUT)

    process, metad, fingerprint = serve()
    try:
        assert fingerprint == tls.fingerprint((data / "tls" / "ca.pem").read_bytes())
        owner = {**env, TOKEN_ENV: ""}
        passwd = cli(
            owner, "user", "passwd", "--password-stdin", "--data", str(data),
            stdin="\n" + CAROL_PASSWORD + "\n" + CAROL_PASSWORD + "\n",
        )  # fmt: skip
        assert passwd.returncode == 0, passwd.stderr
        name = passwd.stdout.split()[2]
        shown = one_line_error(login(env, name, metad), "not known here")
        assert FINGERPRINT.findall(shown) == [fingerprint]
        assert login(env, name, metad, "--fingerprint", fingerprint).returncode == 0
    finally:
        stop(process)
    # Restarted, the drive keeps its CA: pins made before stay valid.
    process, metad, again = serve()
    try:
        assert again == fingerprint
    finally:
        stop(process)
    for log in (data / "metad" / "metad.log", data / "blockd" / "blockd.log"):
        assert_log_clean(log, allowed_log_patterns)
