"""TLS for drivefs: the drive's own certificates, what a client trusts, and the gRPC credentials.

Owns: making a drive's private certificate authority and its server
certificate (`ensure_drive_certificates`), the ssh-style fingerprint of a
certificate, the `Trust` a client holds (a root certificate, and the TLS name
to expect), gRPC server and channel credentials, and looking at what a server
presents without trusting it (`peer_chain`, `probe`), so a client can pin it.

The drive's files, under DATA/tls:

    ca.pem      the private CA (EC P-256, self-signed, CN "drivefs CA <id>", 20 years)
    ca.key      its key (0600); needed only to make a server certificate
    server.pem  the server certificate (EC P-256, ~10 years), followed by ca.pem,
                so a server sends the whole chain and a client can pin the CA
    server.key  its key (0600)

Every server certificate a drivefs CA signs names "drivefs" among its
subject alternative names, so a client trusting a drivefs CA expects that
name (`Trust.target_name`) whatever address it dials; a client trusting any
other CA (the operator's own) checks the address's host name as usual.

Must not: decide whom to trust (pinning, asking the person: fusefs), word
messages for a person beyond naming the file or address at fault, or know
tokens, users or the daemons' services.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import ipaddress
import itertools
import os
import secrets
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DRIVE_CA_PREFIX = "drivefs CA"
DRIVE_NAME = "drivefs"  # in every server certificate a drivefs CA signs
CA_YEARS = 20
SERVER_DAYS = 3650
PROBE_TIMEOUT = 5.0

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
_LOCK = ".lock"

Probe = Literal["tls", "plaintext", "unreachable"]


class TlsError(Exception):
    """A certificate or key that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path  # the server certificate followed by the CA's
    server_key: Path


# --- certificates -------------------------------------------------------------------------------


def ensure_drive_certificates(tls_dir: Path, hosts: list[str]) -> TlsFiles:
    """The drive's CA and server certificate under tls_dir, made on first use.

    hosts (host names or IP addresses the daemons listen on) join the server
    certificate's names. A complete set is never touched, and a CA is never
    replaced once ca.pem exists (clients pin it): a server certificate or key
    gone missing is made anew by that CA. ca.pem is written last, so a first
    start interrupted before it (nothing handed out yet) simply starts over.
    A lock keeps two starts from mixing their files.
    """
    files = TlsFiles(*(tls_dir / n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)))
    with _locked(tls_dir):
        have = {p: p.exists() for p in (files.ca_cert, files.ca_key, files.server_cert)}
        if have[files.ca_cert] and files.server_key.exists() and have[files.server_cert]:
            return files
        if have[files.ca_cert]:
            if not have[files.ca_key]:
                raise TlsError(
                    f"{files.ca_key} is missing: cannot make a server certificate for "
                    f"{files.ca_cert} (restore the key, or give --tls-cert and --tls-key)"
                )
            ca_cert = _load_certs(files.ca_cert.read_bytes(), files.ca_cert)[0]
            ca_key = _load_key(files.ca_key.read_bytes(), files.ca_key)
            _write_server(files, ca_cert, ca_key, hosts)
            return files
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key)
        _write(files.ca_key, _key_pem(ca_key), private=True)
        _write_server(files, ca_cert, ca_key, hosts)
        _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    return files


@contextlib.contextmanager
def _locked(tls_dir: Path) -> Iterator[None]:
    try:
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = open(tls_dir / _LOCK, "a")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise TlsError(f"cannot write certificates under {tls_dir}: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{DRIVE_CA_PREFIX} {secrets.token_hex(4)}")]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS + CA_YEARS // 4))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_server(
    files: TlsFiles, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DRIVE_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_server_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    _write(files.server_key, _key_pem(key), private=True)
    _write(files.server_cert, chain)


def _server_names(hosts: list[str]) -> list[x509.GeneralName]:
    """drivefs, localhost, this machine's name, the loopback addresses and hosts, once each."""
    names: list[x509.GeneralName] = []
    for host in [DRIVE_NAME, "localhost", socket.gethostname(), "127.0.0.1", "::1", *hosts]:
        bare = host.strip().strip("[]")
        if not bare:
            continue
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            name: x509.GeneralName = x509.DNSName(bare.lower())
        else:
            if address.is_unspecified:  # 0.0.0.0 and :: are listen addresses, not names
                continue
            name = x509.IPAddress(address)
        if name not in names:
            names.append(name)
    return names


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Temp file (0600 for keys, 0644 otherwise), fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if not private:
                os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _load_certs(pem: bytes, where: object) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise TlsError(f"{where} holds no PEM certificate")
    return certs


def _load_key(pem: bytes, where: object) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{where} holds no unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{where}: the drive's CA key must be an EC key")
    return key


def fingerprint(cert: bytes | str) -> str:
    """The SHA-256 of a certificate's DER as ssh shows host keys: "SHA256:<base64, no padding>".

    cert is PEM (the first certificate counts) or DER.
    """
    raw = cert.encode() if isinstance(cert, str) else cert
    if raw.lstrip().startswith(b"-----BEGIN"):
        raw = _load_certs(raw, "the certificate")[0].public_bytes(serialization.Encoding.DER)
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def is_drive_ca(cert: x509.Certificate) -> bool:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return bool(names) and str(names[0].value).startswith(DRIVE_CA_PREFIX)


def load_chain(path: Path) -> list[bytes]:
    """The certificates (DER) of a PEM file, in order. Raises TlsError."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {path}: {exc.strerror}") from None
    return [c.public_bytes(serialization.Encoding.DER) for c in _load_certs(pem, path)]


def der_to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


# --- what a client trusts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    """The root certificate(s) a client accepts a server's chain from.

    target_name: the TLS name the server certificate must carry, whatever
    address is dialled ("drivefs" for a drivefs CA); None: the address's host.
    """

    root_pem: bytes
    target_name: str | None = None

    @classmethod
    def for_ca(cls, pem: bytes, where: object = "the certificate") -> Trust:
        """Trust in pem (one or more certificates): the drivefs rule for a drivefs CA."""
        first = _load_certs(pem, where)[0]
        return cls(pem, DRIVE_NAME if is_drive_ca(first) else None)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.root_pem)

    def vouches_for(self, chain: list[bytes]) -> bool:
        """Whether the chain (DER, leaf first) leads by signatures to a trusted certificate.

        Signatures only: names and dates are checked by the TLS handshake itself.
        """
        roots = _load_certs(self.root_pem, "the trust")
        certs = [x509.load_der_x509_certificate(der) for der in chain]
        current = certs[0] if certs else None
        for _ in certs:  # a path is never longer than the chain
            if current is None:
                return False
            if any(current == root or _issued_by(current, root) for root in roots):
                return True
            current = next((c for c in certs if c != current and _issued_by(current, c)), None)
        return False


def load_trust(path: Path) -> Trust:
    """Trust in the certificate(s) of a PEM file. Raises TlsError."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {path}: {exc.strerror}") from None
    return Trust.for_ca(pem, path)


def channel_credentials(trust: Trust) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=trust.root_pem)


def channel_options(trust: Trust) -> list[tuple[str, str]]:
    """Channel arguments that go with channel_credentials(trust)."""
    if trust.target_name is None:
        return []
    return [("grpc.ssl_target_name_override", trust.target_name)]


def server_credentials(cert_file: Path, key_file: Path) -> grpc.ServerCredentials:
    """Credentials serving cert_file (the certificate, then any chain) with key_file.

    Raises TlsError for a file that is unreadable, holds no certificate or key,
    or a key that does not belong to the certificate.
    """
    try:
        chain, key_pem = cert_file.read_bytes(), key_file.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename}: {exc.strerror}") from None
    leaf = _load_certs(chain, cert_file)[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsError(f"{key_file} holds no unencrypted PEM private key") from None
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise TlsError(f"{key_file} is not the key of the certificate in {cert_file}")
    return grpc.ssl_server_credentials([(key_pem, chain)])


def _spki(public_key: object) -> bytes:
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(der, spki)  # type: ignore[attr-defined]


# --- what a server presents ---------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    """("::1", 7401) from "[::1]:7401"; the socket module wants no brackets."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def peer_chain(
    address: str, timeout: float = PROBE_TIMEOUT, server_name: str | None = None
) -> list[bytes]:
    """The certificates (DER) the server at address sends, leaf first, verifying none.

    server_name goes out as SNI: the name the client will expect (a gRPC
    server logs an error for every SNI its certificate does not name); None
    sends none. Raises OSError when nothing listens there, ssl.SSLError when
    it does not speak TLS.
    """
    host, port = _host_port(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        public = getattr(tls, "get_unverified_chain", None)  # Python 3.13
        private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
        chain = (public or private or (lambda: None))()
        if chain:
            return [_der(c) for c in chain]
        leaf = tls.getpeercert(binary_form=True)
        return [leaf] if leaf else []


def _der(cert: object) -> bytes:
    """DER of one entry of an unverified chain (bytes on 3.13, _ssl.Certificate before)."""
    if isinstance(cert, bytes):
        return cert
    return cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]


def chain_ca(chain: list[bytes]) -> bytes:
    """The CA (DER) of a chain: its last certificate, once each one is shown to sign the one before.

    A chain of one certificate is its own CA (a client may pin a lone leaf).
    Raises TlsError for an empty chain or one out of order.
    """
    if not chain:
        raise TlsError("the server sent no certificate")
    certs = [x509.load_der_x509_certificate(der) for der in chain]
    for cert, issuer in itertools.pairwise(certs):
        if not _issued_by(cert, issuer):
            raise TlsError("the server's certificate chain is not in order: leaf first, CA last")
    return chain[-1]


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def look(
    address: str, timeout: float = PROBE_TIMEOUT, server_name: str | None = None
) -> tuple[Probe, list[bytes]]:
    """What the server at address speaks, with the chain (DER, leaf first) it sent over TLS."""
    try:
        return "tls", peer_chain(address, timeout, server_name)
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return "plaintext", []
    except (OSError, ValueError):  # refused, no route, timed out, not HOST:PORT
        return "unreachable", []


def probe(address: str, timeout: float = PROBE_TIMEOUT, server_name: str | None = None) -> Probe:
    """Whether the server at address answers a TLS handshake, or speaks plain text."""
    return look(address, timeout, server_name)[0]


def names(cert_der: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (its subject alternative names)."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *map(str, san.get_values_for_type(x509.IPAddress)),
    ]


def is_ip_address(name: str) -> bool:
    """Whether name is an IP address (a certificate's DNS names are the other kind)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def names_host(cert_names: list[str], host: str) -> bool:
    """Whether a certificate with cert_names is valid for host (one-label wildcards too)."""
    bare = host.strip("[]").lower()
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(bare)
        return any(_same_address(n, address) for n in cert_names)
    for name in (n.lower() for n in cert_names):
        if name == bare:
            return True
        if name.startswith("*.") and "." in bare and bare.split(".", 1)[1] == name[2:]:
            return True
    return False


def _same_address(name: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(name) == address
    except ValueError:
        return False
