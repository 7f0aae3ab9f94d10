"""Starting and stopping metad and blockd as child processes, and the TLS they serve.

Used by `drive up` / `drive serve` and by the tests, so both run the daemons
exactly as an operator would. A daemon reports the address it bound (it may
have been asked for port 0) through a ready file. `drive serve` always
speaks TLS: with the drive's own certificates (DATA/tls, made on first
start) or the operator's (`--tls-cert/--tls-key`); DaemonTls holds the
options that hands both daemons.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from protos import tls
from protos.runtime import PARENT_PID_ENV


class DaemonError(Exception):
    """A daemon could not be started; the message is meant for the user."""


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to everyone else."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass(frozen=True)
class DaemonTls:
    """The certificate both daemons serve, and how blockd trusts metad's."""

    cert: Path  # the certificate followed by its chain
    key: Path
    ca: Path  # what blockd trusts metad by: DATA/tls/ca.pem, or the chain file itself
    metad_name: str | None  # the name blockd expects metad's certificate to carry
    fingerprint: str  # of the CA a client pins at `drive login`

    def server_args(self) -> list[str]:
        return ["--tls-cert", str(self.cert.absolute()), "--tls-key", str(self.key.absolute())]

    def blockd_args(self) -> list[str]:
        """For blockd, which reaches metad when it collects garbage."""
        name = ["--metad-name", self.metad_name] if self.metad_name else []
        return [*self.server_args(), "--metad-ca", str(self.ca.absolute()), *name]


def serve_tls(
    data_dir: Path, hosts: list[str], cert: Path | None = None, key: Path | None = None
) -> DaemonTls:
    """The operator's certificate (cert, key), or the drive's own, made on first use.

    hosts: the listen hosts, which the drive's own server certificate names.
    Raises DaemonError for certificates that cannot serve.
    """
    try:
        if cert is None or key is None:
            files = tls.ensure_drive_certificates(data_dir / "tls", hosts)
            ca_fingerprint = tls.fingerprint(files.ca_cert.read_bytes())
            return DaemonTls(
                files.server_cert, files.server_key, files.ca_cert, None, ca_fingerprint
            )
        tls.server_credentials(cert, key)  # a clear line now rather than from a daemon
        chain = tls.load_chain(cert)
        dns = [n for n in tls.names(chain[0]) if not _is_ip(n)]
        return DaemonTls(cert, key, cert, dns[0] if dns else None, tls.fingerprint(chain[-1]))
    except tls.TlsError as exc:
        raise DaemonError(str(exc)) from None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def start_daemon(
    name: str,
    data_dir: Path,
    listen: str,
    *,
    extra_args: list[str] | None = None,
    timeout: float = 20.0,
) -> Daemon:
    """Starts `python -m {name}` and waits until it listens.

    Its log goes to data_dir/{name}.log. Raises DaemonError carrying the
    daemon's own last error line if it exits before it is ready.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ready_file = data_dir / f"{name}.ready"
    with contextlib.suppress(FileNotFoundError):
        ready_file.unlink()
    log_path = data_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    cmd = [
        sys.executable,
        "-m",
        name,
        "--data",
        str(data_dir),
        "--listen",
        listen,
        "--ready-file",
        str(ready_file),
        *(extra_args or []),
    ]
    start_offset = log_file.tell()
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
        # Own process group: a Ctrl-C meant for `drive up` must not stop the
        # daemons before the mount has saved open files.
        start_new_session=True,
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            address = ready_file.read_text().strip()
            return Daemon(name, process, address, log_path)
        if process.poll() is not None:
            raise DaemonError(_last_error(log_path, start_offset) or f"{name} exited at start")
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise DaemonError(f"{name} did not start within {timeout:.0f}s (see {log_path})")


def _last_error(log_path: Path, offset: int) -> str:
    """The daemon's last meaningful line, e.g. 'metad: cannot listen on ...'."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
