"""Sign-in and user management at metad (drive.v1.Accounts) as blocking calls."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fusefs.clients.rpc import Token, request_id, rpc, signed_channel, timeout
from fusefs.errors import DataLoss
from protos.drive.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
)
from protos.runtime import split_host_port
from protos.tls import Trust


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    admin: bool
    quota_bytes: int
    root_id: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    expires_s: int
    account: Account


@dataclass(frozen=True, slots=True)
class DriveInfo:
    drive_id: str
    blockd_address: str  # as this client reaches it; "" when metad does not know
    version: str


_DRIVE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def _drive_info(msg: accounts_pb2.DriveInfo, metad_address: str) -> DriveInfo:
    """What GetDrive said, checked: an id and an address are stored and dialled here, so
    a metad that answers nonsense is refused rather than believed."""
    if msg.drive_id and not _DRIVE_ID.fullmatch(msg.drive_id):
        raise DataLoss(f"metad at {metad_address} gave a malformed drive id")
    blockd = _reachable(msg.blockd_address, metad_address)
    if blockd and not _usable(blockd):
        raise DataLoss(f"metad at {metad_address} gave an unusable blockd address")
    return DriveInfo(msg.drive_id, blockd, msg.version[:64])


def _usable(address: str) -> bool:
    host, sep, port = address.rpartition(":")
    return bool(sep) and bool(_HOST.fullmatch(host)) and port.isdigit() and 0 < int(port) < 65536


def _reachable(advertised: str, metad_address: str) -> str:
    """blockd's address as advertised, with metad's host where it names none (":PORT",
    or a wildcard such as 0.0.0.0: blockd listens on every interface)."""
    if not advertised:
        return ""
    host, _, port = advertised.rpartition(":")
    if host.strip("[]") in ("", "0.0.0.0", "::"):
        host = split_host_port(metad_address)[0].strip("[]")
        host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}"


def _account(msg: accounts_pb2.User) -> Account:
    return Account(msg.id, msg.name, msg.admin, msg.quota_bytes, msg.root_id, msg.disabled)


def _signed_in(msg: accounts_pb2.SignInResponse) -> SignedIn:
    return SignedIn(msg.token, msg.expires_s, _account(msg.user))


class AccountsClient:
    """Sign-in and user management at metad, as blocking calls."""

    def __init__(
        self, address: str, token: Token | None = None, *, trust: Trust | None = None
    ) -> None:
        self.address = address
        self._channel = signed_channel(address, token, trust)
        self._stub = accounts_pb2_grpc.AccountsStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    @rpc
    def sign_in(self, name: str, password: str, ttl_seconds: int = 0) -> SignedIn:
        req = accounts_pb2.SignInRequest(name=name, password=password, ttl_seconds=ttl_seconds)
        return _signed_in(self._stub.SignIn(req, timeout=timeout()))

    @rpc
    def drive_info(self) -> DriveInfo:
        """Which drive metad serves and where its blockd is (asked without a token)."""
        msg = self._stub.GetDrive(accounts_pb2.GetDriveRequest(), timeout=timeout())
        return _drive_info(msg, self.address)

    @rpc
    def renew(self, ttl_seconds: int = 0) -> SignedIn:
        req = accounts_pb2.RenewTokenRequest(ttl_seconds=ttl_seconds)
        return _signed_in(self._stub.RenewToken(req, timeout=timeout()))

    @rpc
    def whoami(self) -> Account:
        return _account(self._stub.WhoAmI(accounts_pb2.WhoAmIRequest(), timeout=timeout()))

    @rpc
    def create_user(
        self, name: str, password: str, quota_bytes: int = 0, admin: bool = False
    ) -> Account:
        req = accounts_pb2.CreateUserRequest(
            name=name,
            password=password,
            quota_bytes=quota_bytes,
            admin=admin,
            request_id=request_id(),
        )
        return _account(self._stub.CreateUser(req, timeout=timeout()))

    @rpc
    def list_users(self) -> list[Account]:
        resp = self._stub.ListUsers(accounts_pb2.ListUsersRequest(), timeout=timeout())
        return [_account(u) for u in resp.users]

    @rpc
    def set_password(
        self, new_password: str, current_password: str = "", name: str = ""
    ) -> Account:
        req = accounts_pb2.SetPasswordRequest(
            name=name,
            current_password=current_password,
            new_password=new_password,
            request_id=request_id(),
        )
        return _account(self._stub.SetPassword(req, timeout=timeout()))

    @rpc
    def set_quota(self, name: str, quota_bytes: int) -> Account:
        req = accounts_pb2.SetQuotaRequest(
            name=name, quota_bytes=quota_bytes, request_id=request_id()
        )
        return _account(self._stub.SetQuota(req, timeout=timeout()))

    @rpc
    def set_disabled(self, name: str, disabled: bool) -> Account:
        req = accounts_pb2.DisableUserRequest(name=name, disabled=disabled, request_id=request_id())
        return _account(self._stub.DisableUser(req, timeout=timeout()))
