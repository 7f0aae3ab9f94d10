"""Where the drive command and the mount find the token they send with every call,
and the certificate they expect the drive to present.

The token, in order: DRIVEFS_TOKEN in the environment; with --as NAME, the
login saved for NAME (nothing else); for a command given no metad address,
acting on the drive running on this machine under --data, a token made with
the drive's own auth key for its first user (how `drive up` signs in by
itself); the login `drive login` saved for that metad; the drive's own key
again. A TokenSource renews its token in the background once half its life
has passed, so a mount stays signed in for as long as it runs.

Saved logins (~/.config/drivefs/credentials.json, mode 0600) are kept per
drive and user: each carries the drive's id (Accounts.GetDrive, made at the
drive's first start) beside the address it was reached at. Signing in again
at a new address replaces the old one for every login of that drive, so a
drive that moved costs one `drive login`, not a lost setup. The most recent
login is the default drive of commands and mounts given no address.

The pins, as ssh keeps known hosts: ~/.config/drivefs/known_drives.json (mode
0600) maps a metad address to the CA certificate (PEM, with its fingerprint
for the reader) that `drive login` accepted there, or to `"plaintext": true`
when the sign-in chose plain text with --insecure. Every later command and
mount for that metad (and its blockd: same drive, same CA) trusts only that.
A file of its own, not credentials.json: `drive logout` forgets the token but
keeps the pin, and a mount renewing its token never rewrites the pins.
What a pin means for a connection is fusefs.cli.trust's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fusefs.errors import NotSignedIn
from protos import auth, tls

log = logging.getLogger(__name__)

TOKEN_ENV = "DRIVEFS_TOKEN"
CONFIG_DIR = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "drivefs"
CREDENTIALS_FILE = CONFIG_DIR / "credentials.json"
KNOWN_DRIVES_FILE = CONFIG_DIR / "known_drives.json"
AUTH_KEY_NAME = "auth.key"  # under DATA/metad
DRIVE_ID_FILE = "drive.id"  # under DATA/metad
FIRST_USER_ID = 1
LOCAL_TOKEN_TTL = 24 * 3600


def auth_key_path(data_dir: Path) -> Path:
    return data_dir / "metad" / AUTH_KEY_NAME


def _load_saved(path: Path = CREDENTIALS_FILE) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


@dataclass(frozen=True)
class Login:
    """A sign-in `drive login` saved: whom, at which drive, reached where."""

    metad: str
    user: str
    token: str
    expires_s: int
    drive: str = ""  # the drive's id; "" when its metad did not say (older drives)
    saved_s: float = 0.0

    def fresh(self) -> bool:
        return self.expires_s > time.time()


def saved_logins() -> list[Login]:
    """Every saved login, the most recent last (the first format, keyed by address, too)."""
    saved = _load_saved()
    if saved.get("version") == 2:
        rows = saved.get("logins", [])
    else:  # {metad: {token, expires_s, user}}, as written before logins knew their drive
        rows = [{"metad": a, **e} for a, e in saved.items() if isinstance(e, dict)]
    logins = []
    for row in rows:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            metad, token, expires_s = str(row["metad"]), str(row["token"]), int(row["expires_s"])
            user, drive = str(row.get("user", "")), str(row.get("drive", ""))
            logins.append(Login(metad, user, token, expires_s, drive, float(row.get("saved_s", 0))))
    return sorted(logins, key=lambda login: login.saved_s)


def _write_logins(logins: list[Login]) -> None:
    rows = [dataclasses.asdict(login) for login in logins]
    _write_saved({"version": 2, "logins": rows})


def find_login(
    metad: str | None = None, user: str | None = None, drive: str | None = None
) -> Login | None:
    """The most recent saved login matching all that is given (metad or drive: either)."""
    for login in reversed(saved_logins()):
        if user is not None and login.user != user:
            continue
        if metad is not None or drive:
            same_drive = bool(drive) and login.drive == drive
            if login.metad != metad and not same_drive:
                continue
        return login
    return None


def save_login(metad: str, token: str, expires_s: int, user: str, drive: str = "") -> None:
    """Remembers a sign-in (file mode 0600, written whole). It replaces the login of the
    same user at the same drive (or address), and moves the drive's other logins to metad."""
    kept = []
    for login in saved_logins():
        same_place = login.metad == metad or (drive and login.drive == drive)
        if same_place and login.user == user:
            continue
        if drive and login.drive == drive:
            login = dataclasses.replace(login, metad=metad)
        kept.append(login)
    kept.append(Login(metad, user, token, expires_s, drive, time.time()))
    _write_logins(kept)


def renew_saved(old_token: str, token: str, expires_s: int) -> None:
    """A mount renewed the token of a saved login: the login keeps its place and name."""
    logins = saved_logins()
    renewed = [
        dataclasses.replace(x, token=token, expires_s=expires_s) if x.token == old_token else x
        for x in logins
    ]
    if renewed != logins:
        _write_logins(renewed)


def _write_saved(saved: dict, path: Path = CREDENTIALS_FILE) -> None:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(saved, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def forget_login(metad: str, user: str | None = None) -> list[Login]:
    """drive logout: drops the saved logins at metad (of user, if given); what was dropped."""
    logins = saved_logins()
    gone = [x for x in logins if x.metad == metad and user in (None, x.user)]
    if gone:
        _write_logins([x for x in logins if x not in gone])
    return gone


@dataclass(frozen=True)
class Pin:
    """What `drive login` accepted for a metad address."""

    ca_pem: bytes | None  # the CA certificate; None: plain text, chosen with --insecure


def saved_pin(metad: str) -> Pin | None:
    entry = _load_saved(KNOWN_DRIVES_FILE).get(metad)
    if not isinstance(entry, dict):
        return None
    if entry.get("plaintext"):
        return Pin(None)
    ca = entry.get("ca")
    return Pin(ca.encode()) if isinstance(ca, str) and ca else None


def pinned_elsewhere(fingerprint: str) -> str | None:
    """The address of a pin of the CA with this fingerprint: the same drive reached at
    another address before (it moved), which a sign-in may trust without asking."""
    for metad, entry in _load_saved(KNOWN_DRIVES_FILE).items():
        if isinstance(entry, dict) and entry.get("fingerprint") == fingerprint:
            return metad
    return None


def save_pin(metad: str, pin: Pin) -> None:
    """Pins metad to pin, replacing what was pinned there (file mode 0600, written whole)."""
    pins = _load_saved(KNOWN_DRIVES_FILE)
    if pin.ca_pem is None:
        pins[metad] = {"plaintext": True}
    else:
        pins[metad] = {"fingerprint": tls.fingerprint(pin.ca_pem), "ca": pin.ca_pem.decode()}
    _write_saved(pins, KNOWN_DRIVES_FILE)


def local_token(data_dir: Path) -> tuple[str, int] | None:
    """A token for the first user, made with the auth key of a drive under data_dir."""
    path = auth_key_path(data_dir)
    if not path.exists():
        return None
    try:
        key = auth.load_key(path)
    except auth.AuthKeyError as exc:
        raise NotSignedIn(str(exc)) from None
    token = key.token(FIRST_USER_ID, admin=True, ttl_seconds=LOCAL_TOKEN_TTL, local=True)
    return token, key.verify(token).expires_s


class TokenSource:
    """The current token; renew() (if given) is called in a thread when it is half spent."""

    def __init__(
        self,
        token: str,
        expires_s: int,
        renew: Callable[[str], tuple[str, int]] | None = None,
        on_renewed: Callable[[str, int], None] | None = None,
    ) -> None:
        self._token = token
        self._renew = renew
        self._on_renewed = on_renewed
        self._renew_at = time.time() + max(0.0, (expires_s - time.time()) / 2)
        self._renewing = threading.Lock()

    def __call__(self) -> str:
        due = self._renew is not None and time.time() >= self._renew_at
        if due and self._renewing.acquire(blocking=False):
            threading.Thread(target=self._renew_now, daemon=True).start()
        return self._token

    def _renew_now(self) -> None:
        try:
            assert self._renew is not None
            token, expires_s = self._renew(self._token)
        except Exception as exc:  # keep the old token; try again a minute later
            log.warning("could not renew the sign-in token: %s", exc)
            self._renew_at = time.time() + 60
        else:
            self._token = token
            self._renew_at = time.time() + max(60.0, (expires_s - time.time()) / 2)
            if self._on_renewed is not None:
                with contextlib.suppress(OSError):
                    self._on_renewed(token, expires_s)
        finally:
            self._renewing.release()


def token_from_env() -> str | None:
    """DRIVEFS_TOKEN, which needs no metad address to be found (e.g. for `drive gc`)."""
    return os.environ.get(TOKEN_ENV) or None


def find_token(
    metad: str,
    data_dir: Path | None,
    *,
    prefer_local: bool = False,
    user: str | None = None,
) -> tuple[str, int, str]:
    """(token, expires_s, where it came from) for calls to metad. Raises NotSignedIn.

    prefer_local: metad was found through data_dir (no address given), so the
    command acts on the drive of this machine, as its first user, even when a
    login for another user is saved for that address. user (--as NAME): only
    the login saved for that user will do.
    """
    env = token_from_env()
    if env:
        return env, _expiry(env), "env"
    if user is not None:
        login = find_login(metad, user, drive=_local_drive_id(data_dir) if prefer_local else None)
        if login is None:
            raise NotSignedIn(f"not signed in to {metad} as {user}: run drive login {metad} {user}")
        if not login.fresh():
            raise NotSignedIn(f"the sign-in of {user} at {metad} has expired: drive login again")
        return login.token, login.expires_s, "saved"
    if prefer_local and data_dir is not None and (local := local_token(data_dir)) is not None:
        return *local, "local"
    login = find_login(metad)
    if login is not None and login.fresh():
        return login.token, login.expires_s, "saved"
    if data_dir is not None:
        local = local_token(data_dir)
        if local is not None:
            return *local, "local"
    if login is not None:
        raise NotSignedIn(f"the sign-in for {metad} has expired: run drive login again")
    raise NotSignedIn(f"not signed in to {metad}: run drive login {metad} NAME")


def _local_drive_id(data_dir: Path | None) -> str | None:
    """The id of the drive under data_dir (metad writes it at its first start)."""
    if data_dir is None:
        return None
    try:
        return (data_dir / "metad" / DRIVE_ID_FILE).read_text().strip() or None
    except OSError:
        return None


def _expiry(token: str) -> int:
    """A token's expiry as it claims it (unverified: only the server can check)."""
    claimed = auth.unverified_expiry(token)
    return claimed if claimed is not None else int(time.time()) + 3600
