"""Which drive a command acts on, where its daemons are, and as whom.

A command given no address acts on the drive running on this machine under
--data (its daemons' ready files), as that drive's first user; with none
running there, on the drive of the most recent `drive login` (with --as
NAME: the most recent login of NAME). blockd's address, when not given, is
the ready file's or what metad says (Accounts.GetDrive): another device
needs only metad's.

Must not: parse arguments (cli) or keep tokens (credentials).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fusefs import credentials
from fusefs.cli import admin, trust
from fusefs.clients import AccountsClient
from fusefs.daemons import DaemonError
from fusefs.errors import InvalidArgument
from protos.tls import Trust

METAD_PORT = 7401


@dataclass(frozen=True)
class Metad:
    address: str
    here: bool  # the drive running under --data on this machine


def with_port(text: str, port: int = METAD_PORT) -> str:
    """HOST[:PORT] as a person types it, as HOST:PORT ([v6] too); a comma-separated list
    (one service's replicas) each part so."""
    if "," in text:
        return ",".join(with_port(part, port) for part in text.split(","))
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise InvalidArgument(f"not a HOST[:PORT] address: {text!r}")
    if text.startswith("["):
        return text if "]:" in text else f"{text}:{port}"
    if text.count(":") > 1:  # a bare IPv6 address
        return f"[{text}]:{port}"
    host, sep, given = text.rpartition(":")
    if not sep:
        return f"{text}:{port}"
    if not host or not given.isdigit() or not 0 < int(given) < 65536:
        raise InvalidArgument(f"not a HOST[:PORT] address: {text!r}")
    return text


def ready_address(data: Path, name: str) -> str | None:
    """Where to reach the daemon `name` of the drive under data, if it runs."""
    try:
        listening = (data / name / f"{name}.ready").read_text().strip()
    except FileNotFoundError:
        return None
    return dialable(listening) if listening else None


def dialable(address: str) -> str:
    """A listen address as this machine dials it: a wildcard host is its loopback (the
    name a certificate carries; 0.0.0.0 is none)."""
    host, _, port = address.rpartition(":")
    bare = host.strip("[]")
    if bare == "0.0.0.0":
        return f"127.0.0.1:{port}"
    if bare == "::":
        return f"[::1]:{port}"
    return address


def metad(args: argparse.Namespace) -> Metad:
    """The metad a command talks to. Raises DaemonError when there is none to be found."""
    if getattr(args, "metad", None):
        return Metad(with_port(args.metad), here=False)
    user = getattr(args, "as_user", None)
    running = ready_address(args.data, "metad")
    if running is not None:
        return Metad(running, here=True)
    login = credentials.find_login(user=user)
    if login is not None:
        return Metad(login.metad, here=False)
    whose = f" for {user}" if user else ""
    raise DaemonError(
        f"no drive running under {args.data} and no saved login{whose}: start the drive, "
        f"or drive login HOST[:PORT] {user or 'NAME'}"
    )


def blockd(
    args: argparse.Namespace,
    metad_found: Callable[[], Metad],
    trusted: Callable[[str], Trust | None],
) -> str:
    """The blockd of the drive whose metad is found: given, running here, or as metad says
    (metad is looked for only then: `drive gc --blockd ADDR` needs none)."""
    if getattr(args, "blockd", None):
        return with_port(args.blockd, METAD_PORT + 1)
    found = metad_found()
    if found.here and (running := ready_address(args.data, "blockd")) is not None:
        return running
    return blockd_of(found.address, trusted(found.address))


def blockd_of(metad_address: str, tls_trust: Trust | None) -> str:
    """Where metad says its blockd is."""
    client = AccountsClient(metad_address, trust=tls_trust)
    try:
        address = client.drive_info().blockd_address
    finally:
        client.close()
    if not address:
        raise InvalidArgument(
            f"metad at {metad_address} does not say where blockd is: give --blockd"
        )
    return address


def connection(args: argparse.Namespace) -> admin.Connection:
    """The running drive's addresses, the token for it (see fusefs.credentials) and the
    trust in its certificate (fusefs.cli.trust: --ca, --insecure, the pin, DATA/tls/ca.pem).
    Addresses are settled when first needed: `drive gc --blockd ADDR` needs no metad."""
    env_token = credentials.token_from_env()
    found: list[Metad] = []

    def metad_found() -> Metad:
        if not found:
            found.append(metad(args))
        return found[0]

    try:
        first = metad_found().address
    except DaemonError:
        if env_token is None or not getattr(args, "blockd", None):
            raise
        first = None  # e.g. drive gc --blockd HOST:PORT with DRIVEFS_TOKEN: needs only blockd
    trusted = trust.DriveTrust.choose(
        first, data_dir=args.data, ca_file=args.ca, insecure=args.insecure
    )
    if env_token is not None:
        token = env_token
    else:
        at, user = metad_found(), getattr(args, "as_user", None)
        token = credentials.find_token(at.address, args.data, prefer_local=at.here, user=user)[0]
    return admin.Connection(
        lambda: metad_found().address,
        lambda: blockd(args, metad_found, trusted),
        lambda: token,
        trusted,
    )
