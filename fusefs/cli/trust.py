"""Which certificate a client trusts for a drive, checked before anything is sent to it.

Owns: choosing what one command or mount expects of a drive (--insecure;
--ca FILE; the pin `drive login` saved for the metad address; DATA/tls/ca.pem
of a drive served from this machine; else plain text, to a loopback daemon
only), the look at what each daemon presents before a token or a password
goes to it, the sign-in's trust on first use as ssh does it (a fingerprint
given, or confirmed at a terminal), and the one sentence a person reads for
each mismatch: plain text to a TLS drive, TLS to a plain-text one, a
certificate that is not the one pinned.

Why look first: a gRPC channel with the wrong expectation fails only after
its retries, with a transport error and gRPC's own log lines on stderr; one
raw handshake (protos.tls.look) answers in milliseconds and sends nothing.
blockd is held to the same trust as metad: one drive, one CA.

Must not: make channels or call the daemons (clients), keep tokens or pins
on disk (credentials), parse arguments or print (cli).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fusefs import credentials
from fusefs.errors import DriveError, InvalidArgument, Unavailable
from protos import tls
from protos.runtime import is_loopback

LOCAL_CA = Path("tls") / tls.CA_CERT  # under DATA: the CA of a drive `drive serve` runs here
PINNED = "the pin"


class UntrustedDrive(DriveError):
    """The drive speaks other than this client expects; nothing was sent to it."""


@dataclass(frozen=True)
class Expectation:
    trust: tls.Trust | None  # None: plain text
    source: str  # how it was chosen, for messages: PINNED, "--ca FILE", a path, ""
    soft: bool = False  # a guess (DATA's CA): a drive it does not fit is judged without it
    plaintext_ok: bool = False  # plain text was chosen (--insecure, or pinned so)


def choose(
    metad: str | None,
    *,
    data_dir: Path | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
) -> Expectation:
    """What to expect of the drive whose metad is at metad (None: not known), without asking it."""
    if insecure:
        return Expectation(None, "--insecure", plaintext_ok=True)
    if ca_file is not None:
        return Expectation(_load(ca_file), f"the CA in {ca_file}")
    pin = credentials.saved_pin(metad) if metad else None
    if pin is not None and pin.ca_pem is None:
        return Expectation(None, PINNED, plaintext_ok=True)
    if pin is not None and pin.ca_pem is not None:
        return Expectation(tls.Trust.for_ca(pin.ca_pem), PINNED)
    local = data_dir / LOCAL_CA if data_dir is not None else None
    if local is not None and local.exists():
        return Expectation(_load(local), f"the CA in {local}", soft=True)
    return Expectation(None, "")


class DriveTrust:
    """The trust of one command or mount in one drive, settled at the first daemon it reaches.

    Called with the address about to be dialled, it looks at that daemon once
    and returns the Trust to dial it with (None: plain text), or raises
    UntrustedDrive; an unreachable daemon is left to the call to report.
    """

    def __init__(self, expectation: Expectation) -> None:
        self._expect = expectation
        self._checked: dict[str, tls.Trust | None] = {}

    @classmethod
    def choose(
        cls,
        metad: str | None,
        *,
        data_dir: Path | None = None,
        ca_file: Path | None = None,
        insecure: bool = False,
    ) -> DriveTrust:
        return cls(choose(metad, data_dir=data_dir, ca_file=ca_file, insecure=insecure))

    def __call__(self, address: str) -> tls.Trust | None:
        if address not in self._checked:
            state, chain = tls.look(address, server_name=_sni(address, self._expect.trust))
            if state == "unreachable":
                return self._expect.trust
            self._checked[address] = self._settle(address, state, chain)
        return self._checked[address]

    def _settle(self, address: str, state: tls.Probe, chain: list[bytes]) -> tls.Trust | None:
        e = self._expect
        if state == "plaintext":
            if e.trust is not None and not e.soft:
                raise UntrustedDrive(not_tls(address, e.source))
            if not e.plaintext_ok and not _loopback(address):
                raise UntrustedDrive(plain_refused(address))
            self._expect = Expectation(None, e.source, plaintext_ok=e.plaintext_ok)
            return None
        if e.trust is None:
            raise UntrustedDrive(speaks_tls(address, e.source))
        problem = mismatch(address, chain, e.trust, e.source)
        if problem is not None:
            raise UntrustedDrive(speaks_tls(address, "") if e.soft else problem)
        self._expect = dataclasses.replace(e, soft=False)
        return e.trust


# --- drive login: trust on first use -----------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """What a sign-in trusts, and the pin to save once it has succeeded (None: none)."""

    trust: tls.Trust | None
    pin: credentials.Pin | None


def for_login(
    metad: str,
    *,
    data_dir: Path | None,
    ca_file: Path | None,
    fingerprint: str | None,
    insecure: bool,
    ask: Callable[[str], bool] | None,
) -> Accepted:
    """Looks at metad and decides, as ssh does, whether to trust it with a password.

    A drive that speaks TLS is trusted by --ca FILE, by --fingerprint (the
    CA it presents must have it), by the pin saved before (it must still
    present that CA), by DATA/tls/ca.pem on the server itself, or by the
    person answering ask() at a terminal; --fingerprint or --ca replace a
    pin. Plain text only with --insecure, or to a loopback daemon.
    """
    if sum(map(bool, (ca_file, fingerprint, insecure))) > 1:
        raise InvalidArgument("--ca, --fingerprint and --insecure exclude each other")
    state, chain = tls.look(metad, server_name=_sni(metad, _load(ca_file) if ca_file else None))
    if state == "unreachable":
        raise Unavailable(f"cannot reach metad at {metad}: is the drive running?")
    pin = credentials.saved_pin(metad)
    if state == "plaintext":
        if ca_file or fingerprint:
            raise UntrustedDrive(f"the drive at {metad} does not speak TLS: there is no "
                                 "certificate to check against --ca or --fingerprint")  # fmt: skip
        if pin is not None and pin.ca_pem is not None:
            raise UntrustedDrive(not_tls(metad, PINNED))
        if insecure:
            return Accepted(None, credentials.Pin(None))
        if _loopback(metad):
            return Accepted(None, None)
        raise UntrustedDrive(plain_refused(metad))
    if insecure:
        raise UntrustedDrive(
            f"the drive at {metad} speaks TLS: sign in without --insecure "
            "(drive login pins its certificate) or pass --ca FILE"
        )
    try:
        presented = tls.chain_ca(chain)
    except tls.TlsError as exc:
        raise UntrustedDrive(f"the drive at {metad}: {exc}") from None
    now = tls.fingerprint(presented)
    if ca_file is not None:
        return _accept(metad, chain, _load(ca_file), f"the CA in {ca_file}")
    if fingerprint is not None:
        if _normal(fingerprint) != now:
            raise UntrustedDrive(
                f"the drive at {metad} presents certificate authority {now}, "
                f"not {_normal(fingerprint)}: check what drive serve printed on the server"
            )
        trust = tls.Trust.for_ca(tls.der_to_pem(presented))
        return _accept(metad, chain, trust, "the fingerprint given")
    if pin is not None and pin.ca_pem is not None:
        return _accept(metad, chain, tls.Trust.for_ca(pin.ca_pem), PINNED)
    moved_from = credentials.pinned_elsewhere(now)
    if moved_from is not None:  # the drive pinned at its old address, moved here
        trust = tls.Trust.for_ca(tls.der_to_pem(presented))
        return _accept(metad, chain, trust, f"the pin of {moved_from}")
    local = data_dir / LOCAL_CA if data_dir is not None else None
    if local is not None and local.exists() and tls.fingerprint(local.read_bytes()) == now:
        return _accept(metad, chain, _load(local), f"the CA in {local}")
    if ask is None:
        raise UntrustedDrive(
            f"the drive at {metad} speaks TLS and is not known here (it presents certificate "
            f"authority {now}): pass --fingerprint as drive serve printed it on the server, "
            "or --ca FILE"
        )
    question = (
        f"the drive at {metad} presents certificate authority\n    {now}\n"
        "compare it with the one drive serve printed on the server. Trust it? [y/N] "
    )
    if not ask(question):
        raise UntrustedDrive(f"not signed in: the drive at {metad} is not trusted")
    return _accept(metad, chain, tls.Trust.for_ca(tls.der_to_pem(presented)), "you")


def _accept(metad: str, chain: list[bytes], trust: tls.Trust, source: str) -> Accepted:
    problem = mismatch(metad, chain, trust, source)
    if problem is not None:
        raise UntrustedDrive(problem)
    return Accepted(trust, credentials.Pin(trust.root_pem))


# --- what a person reads -----------------------------------------------------------------------


def mismatch(address: str, chain: list[bytes], trust: tls.Trust, source: str) -> str | None:
    """Why the chain a daemon at address presented is not acceptable by trust; None if it is."""
    if not trust.vouches_for(chain):
        try:
            now = tls.fingerprint(tls.chain_ca(chain))
        except tls.TlsError:
            now = tls.fingerprint(chain[-1]) if chain else "nothing"
        if source == PINNED:
            return (
                f"the certificate of the drive at {address} changed: pinned {trust.fingerprint}, "
                f"now {now}; if this is expected (compare it with what drive serve printed), "
                f"run drive login again with --fingerprint {now}"
            )
        return f"the drive at {address} presents a certificate {source} did not sign (CA {now})"
    expected = _expected_name(address, trust)
    names = tls.names(chain[0])
    if not tls.names_host(names, expected):
        return (
            f"the certificate of the drive at {address} is not valid for {expected} "
            f"(it names {', '.join(names) or 'nothing'}): connect by one of those names"
        )
    return None


def speaks_tls(address: str, source: str) -> str:
    if source == PINNED:  # pinned to plain text by drive login --insecure
        return f"the drive at {address} now speaks TLS; sign in again with drive login"
    return (
        f"the drive at {address} speaks TLS; sign in with drive login "
        "(it pins the certificate) or pass --ca FILE"
    )


def not_tls(address: str, source: str) -> str:
    held = "its certificate is pinned here" if source == PINNED else f"{source} was given"
    return (
        f"the drive at {address} does not speak TLS, though {held}; nothing was sent "
        "(if it really serves plain text now, pass --insecure)"
    )


def plain_refused(address: str) -> str:
    return (
        f"the drive at {address} does not speak TLS; pass --insecure to use it anyway "
        "(your password and token cross the network readable)"
    )


def _expected_name(address: str, trust: tls.Trust) -> str:
    """The name a daemon's certificate must carry: the trust's, else the host dialled."""
    return trust.target_name or address.rpartition(":")[0].strip("[]")


def _sni(address: str, trust: tls.Trust | None) -> str | None:
    """What a look sends as SNI: what gRPC will send (an IP address is never sent)."""
    name = _expected_name(address, trust) if trust is not None else None
    return None if name is None or tls.is_ip_address(name) else name


def _loopback(address: str) -> bool:
    return is_loopback(address.rpartition(":")[0])


def _load(path: Path) -> tls.Trust:
    try:
        return tls.load_trust(path)
    except tls.TlsError as exc:
        raise InvalidArgument(str(exc)) from None


def _normal(fingerprint: str) -> str:
    """SHA256:… as tls.fingerprint writes it, from what a person typed or pasted."""
    bare = fingerprint.strip().removeprefix("SHA256:").rstrip("=")
    return f"SHA256:{bare}"
