"""Password hashing: scrypt, memory-hard, salted, parameters stored with the hash.

Stored form: "scrypt$N$r$p$SALT_HEX$DIGEST_HEX". Hashing costs ~32 MiB and tens
of milliseconds on purpose (it is what makes guessing slow), so callers run it
in a worker thread.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 << 20


def password_hash(password: str) -> str:
    """The string stored for a user: a fresh salt and the scrypt digest."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(digest) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the name is unknown, so a failed sign-in takes as long either way.

    Made on first use, not at import: it costs a full scrypt.
    """
    return password_hash(secrets.token_hex(16))
