"""The drive.v1.Accounts servicer: sign-in, tokens, users, passwords, quotas.

Owns who may manage accounts (administrators, or a user for their own
password) and the token lifetimes. Passwords are checked and hashed in a
worker thread (scrypt is slow on purpose); repeated failures for one name are
slowed down (throttle.py). Tokens are made by protos.auth with the user's
token generation; a password change or a disabled account revokes them at
once (security.py: the board every call is checked against). Users are kept
by the store.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from dataclasses import dataclass

import grpc

from metad import passwords, rules
from metad.errors import InvalidArgument, NotFound, PermissionDenied, TooLarge
from metad.handlers import admin_caller, maps_errors
from metad.models import User
from metad.security import RevocationBoard
from metad.store import Store
from metad.throttle import SignInThrottle
from protos import auth
from protos.drive.v1 import accounts_pb2 as pb
from protos.drive.v1 import accounts_pb2_grpc

log = logging.getLogger(__name__)

TOKEN_TTL_SECONDS = 30 * 24 * 3600
try:
    _VERSION = importlib.metadata.version("drivefs")
except importlib.metadata.PackageNotFoundError:
    _VERSION = ""
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD = 1024  # characters; scrypt of anything longer is only a way to burn CPU
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Accounts"].full_name
OPEN_METHODS = (f"/{SERVICE_NAME}/SignIn", f"/{SERVICE_NAME}/GetDrive")


@dataclass(frozen=True, slots=True)
class DriveInfo:
    """What GetDrive tells anyone who asks: the drive's id and where blockd is."""

    drive_id: str
    blockd_address: str = ""


def user_to_proto(user: User, *, full: bool) -> pb.User:
    """full: with quota and admin (administrators, and a user looking at themselves)."""
    msg = pb.User(id=user.id, name=user.name, created_ns=user.created_ns, root_id=user.root_id)
    if full:
        msg.admin = user.admin
        msg.quota_bytes = user.quota_bytes
        msg.disabled = user.disabled
    return msg


def _ttl(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("ttl_seconds must not be negative")
    return min(requested or TOKEN_TTL_SECONDS, TOKEN_TTL_SECONDS)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidArgument(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(f"a password has at most {MAX_PASSWORD} characters")


class AccountsService(accounts_pb2_grpc.AccountsServicer):
    def __init__(
        self,
        store: Store,
        key: auth.AuthKey,
        default_quota: int,
        board: RevocationBoard | None = None,
        throttle: SignInThrottle | None = None,
        drive: DriveInfo | None = None,
    ) -> None:
        self._drive = drive or DriveInfo("")
        self._store = store
        self._key = key
        self._default_quota = default_quota
        self._board = board or RevocationBoard()
        self._throttle = throttle or SignInThrottle()

    async def _user_named(self, name: str) -> User:
        found = await self._store.find_user(name)
        if found is None:
            raise NotFound(f"no user named {name!r}")
        return found[0]

    def _signed_in(self, user: User, ttl: int) -> pb.SignInResponse:
        token = self._key.token(
            user.id, admin=user.admin, ttl_seconds=ttl, generation=user.token_generation
        )
        expires = self._key.verify(token).expires_s
        return pb.SignInResponse(
            token=token, expires_s=expires, user=user_to_proto(user, full=True)
        )

    @maps_errors
    async def SignIn(
        self, request: pb.SignInRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignInResponse:
        ttl = _ttl(request.ttl_seconds)
        if len(request.name) > rules.MAX_USER_NAME_CHARS or len(request.password) > MAX_PASSWORD:
            raise TooLarge("user name or password too long")
        wait = self._throttle.wait_seconds(request.name)
        if wait > 0:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many failed sign-ins as {request.name!r}: try again in {wait:.0f} s",
            )
        found = await self._store.find_user(request.name)
        stored = found[1] if found else None
        # Hash even for an unknown name, so timing does not tell names apart.
        ok = await asyncio.to_thread(
            passwords.password_matches, request.password, stored or passwords.dummy_hash()
        )
        if found is None or not ok or stored is None or found[0].disabled:
            self._throttle.failed(request.name)
            log.info("failed sign-in as %r", request.name[:64])
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong user name or password")
        self._throttle.succeeded(request.name)
        return self._signed_in(found[0], ttl)

    async def GetDrive(
        self, request: pb.GetDriveRequest, context: grpc.aio.ServicerContext
    ) -> pb.DriveInfo:
        return pb.DriveInfo(
            drive_id=self._drive.drive_id,
            blockd_address=self._drive.blockd_address,
            version=_VERSION,
        )

    @maps_errors
    async def RenewToken(
        self, request: pb.RenewTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignInResponse:
        user = await self._store.get_user(auth.caller().user_id)
        return self._signed_in(user, _ttl(request.ttl_seconds))

    @maps_errors
    async def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.aio.ServicerContext) -> pb.User:
        return user_to_proto(await self._store.get_user(auth.caller().user_id), full=True)

    @maps_errors
    async def CreateUser(
        self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.User:
        await admin_caller(self._store)
        rules.check_user_name(request.name)
        check_password(request.password)
        if request.quota_bytes < 0:
            raise InvalidArgument("quota_bytes must not be negative")
        hashed = await asyncio.to_thread(passwords.password_hash, request.password)
        user = await self._store.create_user(
            request.name,
            hashed,
            quota_bytes=request.quota_bytes or self._default_quota,
            admin=request.admin,
        )
        log.info("user %s (%d) created", user.name, user.id)
        return user_to_proto(user, full=True)

    @maps_errors
    async def ListUsers(
        self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsersResponse:
        me = await self._store.get_user(auth.caller().user_id)
        users = await self._store.list_users()
        return pb.ListUsersResponse(
            users=[user_to_proto(u, full=me.admin or u.id == me.id) for u in users]
        )

    @maps_errors
    async def SetPassword(
        self, request: pb.SetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> pb.User:
        me = await self._store.get_user(auth.caller().user_id)
        check_password(request.new_password)
        if not request.name or request.name == me.name:
            target = me
            found = await self._store.find_user(me.name)
            stored = found[1] if found else None
            # A user without a password yet (the embedded first user) sets one freely.
            if stored is not None and not await asyncio.to_thread(
                passwords.password_matches, request.current_password, stored
            ):
                raise PermissionDenied("the current password is wrong")
        else:
            await admin_caller(self._store)
            found = await self._store.find_user(request.name)
            if found is None:
                raise NotFound(f"no user named {request.name!r}")
            target = found[0]
        hashed = await asyncio.to_thread(passwords.password_hash, request.new_password)
        user = await self._store.set_password(target.id, hashed)
        self._board.revoke(user)  # older tokens stop here, now
        self._board.publish(await self._store.revocations())
        log.info("password of %s (%d) changed: its earlier tokens are revoked", user.name, user.id)
        return user_to_proto(user, full=True)

    @maps_errors
    async def SetQuota(
        self, request: pb.SetQuotaRequest, context: grpc.aio.ServicerContext
    ) -> pb.User:
        await admin_caller(self._store)
        if request.quota_bytes < 0:
            raise InvalidArgument("quota_bytes must not be negative")
        target = await self._user_named(request.name)
        user = await self._store.set_quota(target.id, request.quota_bytes)
        return user_to_proto(user, full=True)

    @maps_errors
    async def DisableUser(
        self, request: pb.DisableUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.User:
        me = await admin_caller(self._store)
        target = await self._user_named(request.name)
        if target.id == me.id and request.disabled:
            raise InvalidArgument("you cannot disable your own account")
        user = await self._store.set_disabled(target.id, request.disabled)
        if user.disabled:
            self._board.revoke(user)
        self._board.publish(await self._store.revocations())
        log.info("user %s (%d) %s", user.name, user.id, "disabled" if user.disabled else "enabled")
        return user_to_proto(user, full=True)
