"""Bounds that every value we store must respect, whatever the backend.

PostgreSQL refuses text holding a NUL (``\\u0000``) character and integers wider than their
column (``Integer`` is 32 bits, ``BigInteger`` 64); SQLite would store both, or silently
turn an overflowing sum into a float. Request schemas use these types so that such input
is a 400 naming the field; ``api/errors.py`` still translates a driver's refusal into a 400
for anything that slips through.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator

INT32_MAX = 2**31 - 1
# Money is stored in micros (millionths) in 64-bit columns. A balance or an amount is
# capped well below that, so that no sum of them can overflow.
MAX_AMOUNT = Decimal(10**12)
MAX_AMOUNT_MICROS = 10**18


def has_nul(value: str) -> bool:
    return "\x00" in value


def no_nul(value: str) -> str:
    """Refuse text a database cannot store (pydantic turns the ValueError into a 400)."""
    if has_nul(value):
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def printable(value: str, limit: int) -> str:
    """An informational name (an upload's file name) with control characters dropped."""
    return "".join(ch for ch in value if ch.isprintable())[:limit]


StoredText = Annotated[str, AfterValidator(no_nul)]
