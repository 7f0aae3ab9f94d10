"""Who may know of and read which block: grants from metad, and upload receipts.

blockd stores a block once for everyone, but a user may read a block only
with a grant metad gave them for a revision that refers to it, and learns
that a block is already stored only if they have such a grant or uploaded it
themselves. So FindMissing cannot be used to probe whether someone else holds
some content ("does anyone have this file?"): without proof, a block is
reported missing and the user uploads it; the store then discards the
duplicate. Receipts are kept in memory (bounded, oldest forgotten first): a
restart only costs re-uploads.

Must not: store blocks or talk to metad.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from protos import auth

DEFAULT_RECEIPTS = 200_000  # ~20 MiB


class NoGrant(Exception):
    """A download asked for a block without a valid grant; the message names it."""


class BlockAccess:
    def __init__(self, key: auth.AuthKey, max_receipts: int = DEFAULT_RECEIPTS) -> None:
        self._key = key
        self._max = max_receipts
        self._receipts: OrderedDict[bytes, None] = OrderedDict()

    @staticmethod
    def _receipt(user_id: int, digest: bytes) -> bytes:
        return user_id.to_bytes(8, "big") + digest

    def record_uploads(self, user_id: int, hashes: Sequence[bytes]) -> None:
        for digest in hashes:
            receipt = self._receipt(user_id, digest)
            self._receipts[receipt] = None
            self._receipts.move_to_end(receipt)
        while len(self._receipts) > self._max:
            self._receipts.popitem(last=False)

    def _granted(self, user_id: int, digest: bytes, grant: tuple[bytes, int] | None) -> bool:
        if grant is None or not grant[0]:
            return False
        return self._key.check_grant(user_id, grant[1], digest, grant[0])

    def proven(
        self, user_id: int, hashes: Sequence[bytes], grants: Sequence[tuple[bytes, int]] | None
    ) -> list[bool]:
        """Per hash: has the user shown they may know of this block?"""
        return [
            self._granted(user_id, digest, grants[i] if grants else None)
            or self._receipt(user_id, digest) in self._receipts
            for i, digest in enumerate(hashes)
        ]

    def check_download(
        self, user_id: int, hashes: Sequence[bytes], grants: Sequence[tuple[bytes, int]]
    ) -> None:
        """Raises NoGrant unless every hash comes with a valid grant for the user."""
        if len(grants) != len(hashes):
            raise NoGrant(f"{len(hashes)} blocks asked for with {len(grants)} grants")
        for digest, grant in zip(hashes, grants, strict=True):
            if not self._granted(user_id, digest, grant):
                raise NoGrant(
                    f"no valid grant for block {digest.hex()[:16]}… "
                    "(expired, or not a block of a file you may read)"
                )
