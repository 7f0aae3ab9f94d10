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
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from protos import tls
from protos.runtime import PARENT_PID_ENV

log = logging.getLogger(__name__)


class DaemonError(Exception):
    """A daemon could not be started; the message is meant for the user."""


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path
    data_dir: Path | None = None  # how it was started, to start it again (restarted)
    extra_args: tuple[str, ...] = ()

    def restarted(self) -> Daemon:
        """The same daemon started again on the address it had bound (clients keep it)."""
        assert self.data_dir is not None, "not started by start_daemon"
        return start_daemon(self.name, self.data_dir, self.address, extra_args=[*self.extra_args])

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
        dns = [n for n in tls.names(chain[0]) if not tls.is_ip_address(n)]
        return DaemonTls(cert, key, cert, dns[0] if dns else None, tls.fingerprint(chain[-1]))
    except tls.TlsError as exc:
        raise DaemonError(str(exc)) from None


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
        "--log-file",  # rotated; stderr goes there too, for what is not logged (a crash)
        str(log_path),
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
            return Daemon(name, process, address, log_path, data_dir, tuple(extra_args or ()))
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


# A daemon that dies is started again after a delay that doubles while it keeps dying.
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
STEADY_SECONDS = 60.0  # one that ran this long before dying starts the backoff over


class Supervisor:
    """Keeps the daemons of `drive up`/`drive serve` running.

    A daemon that dies (a crash, kill -9, the OOM killer) is started again on
    the address it had, so the mount and other devices carry on: their calls
    retry while it is away. Each death and restart is logged; a daemon that
    keeps dying is retried less and less often (up to once a minute), never
    given up on. The watching runs in a thread; stop() ends it, then the daemons.
    """

    def __init__(self, daemons: list[Daemon]) -> None:
        self.daemons = list(daemons)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        for daemon in reversed(self.daemons):
            daemon.stop()

    def _watch(self) -> None:
        delay = {d.name: RESTART_FIRST_DELAY for d in self.daemons}
        since = {d.name: time.monotonic() for d in self.daemons}
        while not self._stopping.wait(0.5):
            for i, daemon in enumerate(self.daemons):
                if daemon.process.poll() is None:
                    continue
                name = daemon.name
                if time.monotonic() - since[name] > STEADY_SECONDS:
                    delay[name] = RESTART_FIRST_DELAY
                log.warning(
                    "%s stopped (%s); starting it again in %.0f s (its log: %s)",
                    name, _how_it_ended(daemon.process.returncode), delay[name], daemon.log_path,
                )  # fmt: skip
                if self._stopping.wait(delay[name]):
                    return
                since[name] = time.monotonic()
                delay[name] = min(delay[name] * 2, RESTART_MAX_DELAY)
                try:
                    self.daemons[i] = daemon.restarted()
                except DaemonError as exc:
                    log.warning("%s did not start again: %s", name, exc)
                    continue
                log.warning("%s running again on %s", name, daemon.address)


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"
