"""Tokens for the tests: one auth key per test session, shared by every daemon the
fixtures start (conftest passes it with --auth-key), so a test can sign in as
any user without a password, and forge or expire tokens on purpose.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from fusefs.clients import BlockClient, MetadataClient
from protos import auth
from protos.runtime import create_channel

FIRST_USER_ID = 1
KEY_PATH: Path | None = None  # set by conftest at the start of the session


def key() -> auth.AuthKey:
    assert KEY_PATH is not None, "the session's auth key is made by conftest"
    return auth.load_key(KEY_PATH)


def token(
    user_id: int = FIRST_USER_ID, *, admin: bool | None = None, ttl: int = 3600, local: bool = False
) -> str:
    """A valid token for user_id (user 1, the first user, is an administrator).

    As a sign-in would give it (a password change revokes it), or with local
    as the server's own commands make it from the key file (drive up).
    """
    is_admin = user_id == FIRST_USER_ID if admin is None else admin
    return key().token(user_id, admin=is_admin, ttl_seconds=ttl, local=local)


def channel(address: str, bearer: str | None = None) -> grpc.Channel:
    """A blocking channel that sends bearer (default: the first user's token)."""
    chosen = bearer if bearer is not None else token()
    return grpc.intercept_channel(create_channel(address), auth.BearerAuth(lambda: chosen))


def metadata_client(address: str, bearer: str | None = None) -> MetadataClient:
    chosen = bearer if bearer is not None else token()
    return MetadataClient(address, "test", lambda: chosen)


def block_client(address: str, bearer: str | None = None) -> BlockClient:
    chosen = bearer if bearer is not None else token()
    return BlockClient(address, lambda: chosen)


def file_block_hashes(metad_address: str, name: str) -> list[str]:
    """The hex hashes of the blocks of the current revision of /name (the first user's)."""
    meta = metadata_client(metad_address)
    try:
        node = meta.lookup(meta.root().id, name)
        return [b.hash.hex() for b in meta.get_revision(node.id).blocks]
    finally:
        meta.close()


def grants(hashes: list[bytes], user_id: int = FIRST_USER_ID, ttl: int = 3600) -> list:
    """Grants as metad would give user_id for these blocks."""
    from protos.drive.v1 import blocks_pb2

    issued_ms = time.time_ns() // 1_000_000
    expires = int(time.time()) + ttl
    made = key().grants(user_id, issued_ms, expires, hashes)
    return [blocks_pb2.Grant(grant=g, issued_ms=issued_ms, expires_s=expires) for g in made]


def receipt(digest: bytes, size: int, user_id: int = FIRST_USER_ID) -> bytes:
    """The receipt blockd gives user_id for uploading this block."""
    return key().receipt(user_id, digest, size)


def download_request(hashes: list[bytes], user_id: int = FIRST_USER_ID):
    """A DownloadRequest carrying valid grants for user_id."""
    from protos.drive.v1 import blocks_pb2

    return blocks_pb2.DownloadRequest(hashes=hashes, grants=grants(hashes, user_id))
