"""Who is calling: sign-in tokens, block grants, and the interceptors that carry them.

Every metad and blockd of one drive shares one secret, the auth key file
(32 random bytes, mode 0600; metad creates it on first start). Three MAC keys
are derived from it, so a token, a grant and a receipt never pass for one
another:

    token    "drive1." + b64url(JSON claims) + "." + b64url(HMAC-SHA256(token key, the part before))
             claims {"sub": user id, "adm": admin?, "iat": issued (s), "exp": expires (s),
                     "gen": the user's token generation, "svc": a daemon of the drive?,
                     "loc": made on the server with the key file, not by a sign-in?}
    grant    HMAC-SHA256(grant key, "user:issued_ms:expires_s:" + block hash)[:16]
    receipt  HMAC-SHA256(receipt key, "user:size:" + block hash)[:16]

A token says who the caller is and travels as `authorization: Bearer TOKEN`
metadata on every call; the server interceptor refuses a call without a valid,
unexpired, unrevoked one (UNAUTHENTICATED), except the methods named open
(sign-in, health, reflection). A grant says that metad let that user read a
revision holding that block until `expires`; blockd serves a block only
against one. A receipt says that the user uploaded a block of that hash and
size (blockd verified the bytes); metad accepts a block in a commit only with
one, or when the user may already read a revision holding it. None of them
needs any memory to check, so they survive restarts.

Revocations (per user: the token generation below which tokens are refused,
the time before which grants are refused, disabled) are kept by metad and
streamed to blockd; `Revocations` is what each daemon checks them against.

Must not: know users, passwords or nodes (metad's), or blocks beyond their hash.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from protos import interceptors

AUTH_METADATA_KEY = "authorization"
_BEARER = "Bearer "
_TOKEN_PREFIX = "drive1."
_SECRET_BYTES = 32
GRANT_BYTES = 16
RECEIPT_BYTES = 16
SERVICE_USER_ID = 0  # the subject of a daemon's own token (see AuthKey.service_token)
# What a call without a valid token hears, whatever client made it: a program adds
# its own way of signing in (the drive command: drive login).
NO_TOKEN = "no token: sign in (Accounts.SignIn) and send authorization: Bearer TOKEN"
SIGN_IN_AGAIN = "sign in again"
# Methods every interceptor lets through without a token.
ALWAYS_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class AuthKeyError(Exception):
    """The auth key file is missing, unreadable, malformed or too open; the message says which."""


class InvalidToken(Exception):
    """A token that is malformed, forged or expired; the message says which, for the caller."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token says about its bearer."""

    user_id: int
    admin: bool
    issued_s: int
    expires_s: int
    generation: int = 0  # the user's token generation when it was made
    service: bool = False  # made by a daemon of the drive for itself, not a user
    local: bool = False  # made with the key file on the server (drive up), not by a sign-in


class AuthKey:
    """The shared secret and the MAC keys derived from it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != _SECRET_BYTES:
            raise AuthKeyError(f"an auth key is {_SECRET_BYTES} bytes, not {len(secret)}")
        self._token_key = hmac.digest(secret, b"drivefs token v1", "sha256")
        self._grant_key = hmac.digest(secret, b"drivefs grant v2", "sha256")
        self._receipt_key = hmac.digest(secret, b"drivefs receipt v1", "sha256")

    # --- tokens -------------------------------------------------------------------------------

    def token(
        self,
        user_id: int,
        *,
        admin: bool,
        ttl_seconds: int,
        generation: int = 0,
        local: bool = False,
        now: float | None = None,
    ) -> str:
        """A token for user_id; local: made by a holder of the key file, not by a sign-in.

        A password change revokes the tokens sign-ins gave out (their
        generation); a local token was never given for a password, and whoever
        makes one could make any token, so only disabling the account stops it.
        """
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "sub": user_id,
            "adm": admin,
            "iat": issued,
            "exp": issued + ttl_seconds,
        }
        if generation:
            claims["gen"] = generation
        if local:
            claims["loc"] = True
        return self._sign(claims)

    def service_token(self, ttl_seconds: int = 24 * 3600) -> str:
        """A token a daemon of the drive makes for itself (it holds the key): blockd → metad."""
        issued = int(time.time())
        claims = {"sub": SERVICE_USER_ID, "adm": False, "svc": True, "iat": issued}
        return self._sign({**claims, "exp": issued + ttl_seconds})

    def _sign(self, claims: dict[str, Any]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signed = _TOKEN_PREFIX + payload
        return signed + "." + _b64(hmac.digest(self._token_key, signed.encode(), "sha256"))

    def verify(self, token: str, now: float | None = None) -> Claims:
        """The token's claims. Raises InvalidToken."""
        signed, dot, mac = token.rpartition(".")
        if not dot or not signed.startswith(_TOKEN_PREFIX):
            raise InvalidToken("malformed token")
        expected = hmac.digest(self._token_key, signed.encode(), "sha256")
        try:
            given = _unb64(mac)
        except ValueError:
            raise InvalidToken("malformed token") from None
        if not hmac.compare_digest(expected, given):
            raise InvalidToken("token signature does not match (forged, or from another drive)")
        try:
            raw = json.loads(_unb64(signed[len(_TOKEN_PREFIX) :]))
            claims = Claims(
                int(raw["sub"]),
                bool(raw["adm"]),
                int(raw["iat"]),
                int(raw["exp"]),
                int(raw.get("gen", 0)),
                bool(raw.get("svc", False)),
                bool(raw.get("loc", False)),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidToken("malformed token claims") from None
        if claims.expires_s <= (time.time() if now is None else now):
            raise InvalidToken(f"token expired: {SIGN_IN_AGAIN}")
        return claims

    # --- grants -------------------------------------------------------------------------------

    def grant(self, user_id: int, issued_ms: int, expires_s: int, block_hash: bytes) -> bytes:
        return self.grants(user_id, issued_ms, expires_s, [block_hash])[0]

    def grants(
        self, user_id: int, issued_ms: int, expires_s: int, hashes: Iterable[bytes]
    ) -> list[bytes]:
        prefix = b"%d:%d:%d:" % (user_id, issued_ms, expires_s)
        key = self._grant_key
        return [hmac.digest(key, prefix + h, "sha256")[:GRANT_BYTES] for h in hashes]

    def check_grant(
        self, user_id: int, issued_ms: int, expires_s: int, block_hash: bytes, grant: bytes
    ) -> bool:
        """True when grant is genuine and unexpired (revocations are checked apart)."""
        if expires_s <= time.time() or len(grant) != GRANT_BYTES:
            return False
        expected = self.grant(user_id, issued_ms, expires_s, block_hash)
        return hmac.compare_digest(expected, grant)

    # --- receipts -----------------------------------------------------------------------------

    def receipt(self, user_id: int, block_hash: bytes, size: int) -> bytes:
        """Proof that user_id uploaded the block of this hash and plaintext size."""
        message = b"%d:%d:" % (user_id, size) + block_hash
        return hmac.digest(self._receipt_key, message, "sha256")[:RECEIPT_BYTES]

    def check_receipt(self, user_id: int, block_hash: bytes, size: int, receipt: bytes) -> bool:
        if len(receipt) != RECEIPT_BYTES or size <= 0:
            return False
        return hmac.compare_digest(self.receipt(user_id, block_hash, size), receipt)


@dataclass(frozen=True, slots=True)
class UserRevocation:
    """What was taken back from one user (metad keeps these; blockd follows them)."""

    user_id: int
    token_generation: int = 0  # tokens of an older generation are refused
    grants_not_before_ms: int = 0  # grants issued before this (Unix ms) are refused
    disabled: bool = False  # every token and grant of the user is refused


class Revocations:
    """The revocations a daemon enforces, replaced whole when they change.

    Reads and the replacement are single dictionary operations, so they are
    safe from any thread or task without a lock.
    """

    def __init__(self, users: Iterable[UserRevocation] = ()) -> None:
        self._users: dict[int, UserRevocation] = {u.user_id: u for u in users}

    def replace(self, users: Iterable[UserRevocation]) -> None:
        self._users = {u.user_id: u for u in users}

    def update(self, user: UserRevocation) -> None:
        self._users = {**self._users, user.user_id: user}

    def all(self) -> list[UserRevocation]:
        return sorted(self._users.values(), key=lambda u: u.user_id)

    def of(self, user_id: int) -> UserRevocation:
        return self._users.get(user_id) or UserRevocation(user_id)

    def check_token(self, claims: Claims) -> None:
        """Raises InvalidToken if the token's user was disabled or its generation revoked."""
        if claims.service:
            return
        revoked = self._users.get(claims.user_id)
        if revoked is None:
            return
        if revoked.disabled:
            raise InvalidToken("this account is disabled")
        if claims.generation < revoked.token_generation and not claims.local:
            raise InvalidToken(f"token revoked (the password was changed): {SIGN_IN_AGAIN}")

    def grant_allowed(self, user_id: int, issued_ms: int) -> bool:
        revoked = self._users.get(user_id)
        if revoked is None:
            return True
        return not revoked.disabled and issued_ms >= revoked.grants_not_before_ms


def unverified_expiry(token: str) -> int | None:
    """The expiry a token claims, read without its key (for a client's renewal timing)."""
    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
        payload = token[len(_TOKEN_PREFIX) :].split(".")[0]
        return int(json.loads(_unb64(payload))["exp"])
    return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc


# --- the key file -------------------------------------------------------------------------------


def load_key(path: Path) -> AuthKey:
    """Reads the auth key file. Raises AuthKeyError with a message for the operator."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read()
    except FileNotFoundError:
        raise AuthKeyError(f"auth key file {path} not found") from None
    except OSError as exc:
        raise AuthKeyError(f"cannot read auth key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise AuthKeyError(
            f"auth key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    try:
        return AuthKey(bytes.fromhex(raw.decode().strip()))
    except (ValueError, UnicodeDecodeError):
        raise AuthKeyError(f"auth key file {path} does not hold a key") from None


def load_or_create_key(path: Path) -> AuthKey:
    """The key in path, made first (0600, never overwriting) if there is none."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(_SECRET_BYTES).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
    return load_key(path)


# --- servers ------------------------------------------------------------------------------------

_caller: contextvars.ContextVar[Claims] = contextvars.ContextVar("drivefs_caller")


def caller() -> Claims:
    """The verified claims of the call being handled (set by AuthInterceptor)."""
    return _caller.get()


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == AUTH_METADATA_KEY and isinstance(value, str) and value.startswith(_BEARER):
            return value[len(_BEARER) :]
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without a valid token, except the open methods.

    Handlers of the calls it lets through find the caller with `caller()`.
    """

    def __init__(
        self,
        key: AuthKey,
        open_methods: Iterable[str] = (),
        revocations: Revocations | None = None,
    ) -> None:
        self._key = key
        self._open = tuple(open_methods)
        self._revocations = revocations or Revocations()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method = details.method
        if method in self._open or method.startswith(ALWAYS_OPEN):
            return handler
        return interceptors.rewrap(handler, lambda _kind, b: interceptors.around(b, self._signed))

    async def _verify(self, context: grpc.aio.ServicerContext) -> Claims:
        token = bearer_token(context.invocation_metadata())
        if token is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
        try:
            claims = self._key.verify(token)
            self._revocations.check_token(claims)
            return claims
        except InvalidToken as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("abort raises") from None

    @contextlib.asynccontextmanager
    async def _signed(self, _request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The call runs only with a valid token, its claims where caller() finds them."""
        _caller.set(await self._verify(context))
        yield


async def require_admin(context: grpc.aio.ServicerContext) -> Claims:
    """The caller, if an administrator; otherwise the call ends PERMISSION_DENIED."""
    claims = caller()
    if not claims.admin:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "only an administrator may do this")
    return claims


async def require_service(context: grpc.aio.ServicerContext) -> Claims:
    """The caller, if a daemon of the drive; otherwise the call ends PERMISSION_DENIED."""
    claims = caller()
    if not claims.service:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, "only the drive's own daemons may do this"
        )
    return claims


# --- clients ------------------------------------------------------------------------------------


class BearerAuth(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer TOKEN` to every call of a blocking channel.

    token() is asked on every call, so a renewed token is used at once.
    """

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != AUTH_METADATA_KEY] + [
            (AUTH_METADATA_KEY, _BEARER + self._token())
        ]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), requests)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: list[tuple[str, str]]
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying token, for a single call (grpc.aio clients)."""
    return ((AUTH_METADATA_KEY, _BEARER + token),)
