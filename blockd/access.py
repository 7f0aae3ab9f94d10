"""Who may know of and read which block: grants from metad, receipts from uploads.

blockd stores a block once for everyone, but a user may read a block only
with a grant metad gave them for a revision that refers to it, and learns
that a block is already stored only if they show such a grant or a receipt
(proof that they uploaded that content themselves). So FindMissing cannot be
used to probe whether someone else holds some content ("does anyone have
this file?"): without proof, a block is reported missing and the user uploads
it. Grants and receipts are MACs (protos.auth), checked without memory, so a
restart changes nothing. Grants issued before a revocation (unshare,
password change, disabled account) are refused; `revocations` is kept current
from metad by follow.py, and while it may not be (`revocations_current` false:
metad unheard for a while) no grant is honoured: downloads are refused, to be
retried, and grants prove nothing to FindMissing (the block is uploaded again).

Must not: store blocks or talk to metad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protos import auth


class NoGrant(Exception):
    """A download asked for a block without a valid grant; the message names it."""


class RevocationsUnknown(Exception):
    """blockd cannot tell which grants were revoked (metad unheard): try again later."""


@dataclass(frozen=True, slots=True)
class Grant:
    grant: bytes
    issued_ms: int
    expires_s: int


@dataclass(frozen=True, slots=True)
class Receipt:
    hash: bytes
    size: int
    mac: bytes


class BlockAccess:
    def __init__(
        self,
        key: auth.AuthKey,
        revocations: auth.Revocations | None = None,
        revocations_current: Callable[[], bool] = lambda: True,
    ) -> None:
        self._key = key
        self.revocations = revocations or auth.Revocations()
        self._revocations_current = revocations_current

    def _granted(self, user_id: int, digest: bytes, grant: Grant | None) -> bool:
        if grant is None or not grant.grant or not self._revocations_current():
            return False
        return self._key.check_grant(
            user_id, grant.issued_ms, grant.expires_s, digest, grant.grant
        ) and self.revocations.grant_allowed(user_id, grant.issued_ms)

    def _receipted(self, user_id: int, digest: bytes, receipt: Receipt | None) -> bool:
        if receipt is None or not receipt.mac or receipt.hash not in (b"", digest):
            return False
        return self._key.check_receipt(user_id, digest, receipt.size, receipt.mac)

    def proven(
        self,
        user_id: int,
        hashes: Sequence[bytes],
        grants: Sequence[Grant],
        receipts: Sequence[Receipt],
    ) -> list[bool]:
        """Per hash: has the user shown they may know of this block (grant or receipt)?

        grants and receipts are each empty or one per hash.
        """
        return [
            self._granted(user_id, digest, grants[i] if grants else None)
            or self._receipted(user_id, digest, receipts[i] if receipts else None)
            for i, digest in enumerate(hashes)
        ]

    def check_download(
        self, user_id: int, hashes: Sequence[bytes], grants: Sequence[Grant]
    ) -> None:
        """Raises NoGrant unless every hash comes with a valid grant for the user,
        RevocationsUnknown while no grant can be checked."""
        if not self._revocations_current():
            raise RevocationsUnknown(
                "blockd has not heard from metad which grants were revoked: try again later"
            )
        if len(grants) != len(hashes):
            raise NoGrant(f"{len(hashes)} blocks asked for with {len(grants)} grants")
        for digest, grant in zip(hashes, grants, strict=True):
            if not self._granted(user_id, digest, grant):
                raise NoGrant(
                    f"no valid grant for block {digest.hex()[:16]}… "
                    "(expired or revoked, or not a block of a file you may read)"
                )

    def receipts(self, user_id: int, blocks: Sequence[tuple[bytes, int]]) -> list[Receipt]:
        """A receipt for each (hash, size) the user uploaded and blockd verified."""
        return [Receipt(h, size, self._key.receipt(user_id, h, size)) for h, size in blocks]
