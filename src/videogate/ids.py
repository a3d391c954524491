"""Public identifiers: a prefix and a time-ordered, random suffix (ULID layout)."""

from __future__ import annotations

import base64
import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return "".join(reversed(chars))


# RFC 4648 base32 digits -> Crockford's: the 16 random chars are the base32 encoding of
# 10 random bytes, in C (the loop above costs ~15 µs per id on this machine).
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of millisecond time + 16 random chars; sorts by creation time."""
    millis = int(time.time() * 1000)
    noise = base64.b32encode(secrets.token_bytes(10)).translate(_TO_CROCKFORD).decode()
    return f"{prefix}_{_b32(millis, 10)}{noise}"


def new_secret(prefix: str, nbytes: int = 24) -> str:
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def new_webhook_secret(nbytes: int = 24) -> str:
    """A Standard Webhooks secret: ``whsec_`` + *standard* base64 of random bytes (the
    libraries base64-decode it; URL-safe ``-``/``_`` would be dropped or rejected)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")
