"""The commands that run the drive: `drive up`, `drive serve`, `drive mount`.

Each settles what must hold before anything starts (the mountpoint, the data
folder held alone, the addresses: fusefs.cli.serving), starts the daemons as
child processes (fusefs.daemons) and runs the mount program, passing Ctrl-C
on so open files are saved.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from fusefs.cli import trust, where
from fusefs.cli.serving import (
    DEFAULT_PORTS,
    LOOPBACK,
    advertised,
    beyond_loopback,
    concrete,
    data_folder,
    join_host_port,
    keep_addresses,
    listen_addresses,
)
from fusefs.credentials import auth_key_path, find_token, token_from_env
from fusefs.daemons import Daemon, DaemonError, DaemonTls, Supervisor, serve_tls, start_daemon
from fusefs.mountpoints import check_mountpoint
from protos.runtime import huge_page_heap, split_host_port


def _first_user_name() -> str:
    """The embedded drive's first user is named after the person running it."""
    name = "".join(c for c in getpass.getuser() if c.isalnum() or c in "._-").lstrip("-")
    return name[:64] or "owner"


def start_daemons(
    args: argparse.Namespace, blockd_args: list[str], tls: DaemonTls | None = None
) -> list[Daemon]:
    """metad, then blockd (which needs metad's address), as `drive up`/`serve` run them."""
    blockd_args = blockd_args + (tls.blockd_args() if tls else [])
    started: list[Daemon] = []
    # Concrete ports, so a daemon started again after a crash is found where it was.
    args.metad, args.blockd = concrete(args.metad), concrete(args.blockd)
    try:
        metad_args = [
            "--first-user", _first_user_name(),
            "--blockd-address", advertised(args.blockd),
            *(tls.server_args() if tls else []),
            *_metrics_args(args, 0),
        ]  # fmt: skip
        metad_args += _log_level_args(args)
        if getattr(args, "metadata", None):  # drive serve --metadata postgresql://...
            metad_args += ["--database", args.metadata]
        blockd_args = blockd_args + _metrics_args(args, 1) + _log_level_args(args)
        started.append(
            start_daemon("metad", args.data / "metad", args.metad, extra_args=metad_args)
        )
        # blockd checks tokens with metad's key, and asks metad which blocks
        # are in use when it collects garbage.
        extra = [
            "--metad", started[0].address,
            "--auth-key", str(auth_key_path(args.data).absolute()),
            *blockd_args,
        ]  # fmt: skip
        started.append(start_daemon("blockd", args.data / "blockd", args.blockd, extra_args=extra))
    except DaemonError:
        for d in started:
            d.stop()
        raise
    return started


def _log_level_args(args: argparse.Namespace) -> list[str]:
    """drive --log-level, handed to the mount program and the daemons it starts."""
    level = getattr(args, "log_level", None)
    return ["--log-level", level] if level else []


def _metrics_args(args: argparse.Namespace, offset: int) -> list[str]:
    """--metrics HOST:PORT of drive up/serve is the first of three ports: metad's, then
    blockd's, then the mount's."""
    if not getattr(args, "metrics", None):
        return []
    host, port = split_host_port(args.metrics)
    return ["--metrics", f"{host}:{port + offset}"]


def up(args: argparse.Namespace, blockd_args: list[str]) -> int:
    """`drive up`: the daemons (kept running: Supervisor) and a mount of the drive in
    DATA, until Ctrl-C."""
    check_mountpoint(args.mountpoint)  # before starting anything
    with data_folder(args.data):
        asked = {"metad": args.metad, "blockd": args.blockd}
        chosen = listen_addresses(args.data, asked, args.listen)
        args.metad, args.blockd = chosen["metad"], chosen["blockd"]
        tls = None
        if beyond_loopback([args.metad, args.blockd]):  # reachable from elsewhere: TLS
            tls = serve_tls(args.data, [split_host_port(a)[0] for a in chosen.values()])
        return _up(args, blockd_args, tls)


def _up(args: argparse.Namespace, blockd_args: list[str], tls: DaemonTls | None) -> int:
    daemons = start_daemons(args, blockd_args, tls)
    supervisor = Supervisor(daemons).start()
    try:
        keep_addresses(args.data, {d.name: d.address for d in daemons})
        metad, blockd = (d.address for d in daemons)
        how = f" (TLS, certificate authority {tls.fingerprint})" if tls else ""
        print(f"metad on {metad}, blockd on {blockd}{how}; Ctrl-C unmounts and stops", flush=True)
        cache = args.cache or args.data / "cache"
        extra = ["--data", str(args.data), *_metrics_args(args, 2)]
        if tls is not None:
            extra += ["--ca", str(tls.ca.absolute())]
        metad, blockd = where.dialable(metad), where.dialable(blockd)
        command = _mount_command(args, metad, blockd, cache, extra, metrics=False)
        status = _run_mount_program(command)
    finally:
        supervisor.stop()
    print("drive stopped")
    return status


def _mount_command(
    args: argparse.Namespace,
    metad: str,
    blockd: str,
    cache: Path,
    extra: list[str],
    *,
    metrics: bool = True,
) -> list[str]:
    """The mount program (fusefs.mount, a program of its own) with the options given
    (--metrics too when metrics: drive up gives the mount the third port instead)."""
    command = [
        sys.executable, "-m", "fusefs.mount", str(args.mountpoint.resolve()),
        "--metad", metad, "--blockd", blockd, "--cache", str(cache),
        "--cache-size", str(args.cache_size), *extra,
    ]  # fmt: skip
    if args.device:
        command += ["--device", args.device]
    if args.log_file:
        command += ["--log-file", str(args.log_file.absolute())]
    if metrics and args.metrics:
        command += ["--metrics", args.metrics]
    if args.verbose:
        command.append("--verbose")
    command += _log_level_args(args)
    return command


def _run_mount_program(command: list[str]) -> int:
    """Runs the mount as a child until it ends; Ctrl-C and SIGTERM are passed on (once:
    it has a process group of its own), so it unmounts cleanly. Its exit status."""
    child = subprocess.Popen(command, process_group=0, env=huge_page_heap(os.environ))
    forward = lambda signum, _frame: child.send_signal(signum)  # noqa: E731
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(args: argparse.Namespace, blockd_args: list[str]) -> None:
    """`drive serve`: the daemons alone, over TLS, until Ctrl-C (a daemon that dies is
    started again: Supervisor)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if (args.tls_cert is None) != (args.tls_key is None):
        raise DaemonError("--tls-cert and --tls-key go together")
    host = args.listen or LOOPBACK
    args.metad = args.metad or join_host_port(host, DEFAULT_PORTS["metad"])
    args.blockd = args.blockd or join_host_port(host, DEFAULT_PORTS["blockd"])
    try:
        hosts = [split_host_port(address)[0] for address in (args.metad, args.blockd)]
    except ValueError as exc:
        raise DaemonError(str(exc)) from None
    with data_folder(args.data):
        tls = serve_tls(args.data, hosts, args.tls_cert, args.tls_key)
        _serve(args, blockd_args, tls, stop)


def _serve(
    args: argparse.Namespace, blockd_args: list[str], tls: DaemonTls, stop: threading.Event
) -> None:
    daemons = start_daemons(args, blockd_args, tls)
    supervisor = Supervisor(daemons).start()
    try:
        print(f"metad on {daemons[0].address}, blockd on {daemons[1].address} (TLS)")
        print(
            f"TLS certificate authority {tls.fingerprint}: "
            "compare it when you drive login from another machine",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        supervisor.stop()


def mount(args: argparse.Namespace, default_cache: Path) -> None:
    """`drive mount`: settles which drive (fusefs.cli.where), whom to trust (asking if need
    be) and as whom, then becomes the mount program (exec: the same process, so signals
    and kill reach the mount itself)."""
    cache = args.cache or default_cache
    check_mountpoint(args.mountpoint)
    found = where.metad(args)
    trusted = trust.DriveTrust.choose(
        found.address,
        data_dir=args.data if found.here else None,
        ca_file=args.ca,
        insecure=args.insecure,
    )
    tls_trust = trusted(found.address)
    blockd = where.blockd(args, lambda: found, trusted)
    trusted(blockd)  # before any token goes out
    # The drive of this machine: its first user, with the drive's own key.
    local = found.here and args.as_user is None and token_from_env() is None
    extra = ["--data", str(args.data)] if local else []
    if not local:
        find_token(found.address, None, user=args.as_user)  # not signed in: said before mounting
        extra += ["--as", args.as_user] if args.as_user else []
    if tls_trust is not None:
        cache.mkdir(parents=True, exist_ok=True)
        pem = cache / "trust.pem"
        pem.write_bytes(tls_trust.root_pem)
        extra += ["--ca", str(pem)]
    command = _mount_command(args, found.address, blockd, cache, extra)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, huge_page_heap(os.environ))
