"""Money, in one place: amounts are integers of millionths of the currency unit ("micros").

Every backend stores micros exactly and sums never drift. There is one way to read an
amount a person typed (:func:`parse_amount`) and one way to show one (:func:`format_money`),
used by the API, the admin API and the CLI alike, so the same amount reads the same
everywhere. Shown amounts are exact: at least two decimals and every significant micro
(``725000`` → ``"0.725"``), because a rounded balance could look larger than it is.
Computed amounts (a price times usage) are rounded half up to the micro, once
(:func:`round_micros`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from videogate.errors import InvalidRequest
from videogate.fields import MAX_AMOUNT

MICROS = 1_000_000


def format_money(micros: int | None) -> str:
    """``1500000`` → ``"1.50"``, ``725000`` → ``"0.725"``, ``None`` → ``"0.00"``."""
    value = Decimal(micros or 0) / MICROS
    text = f"{value:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def parse_amount(
    amount: Decimal | str | float | int, *, what: str = "amount", allow_zero: bool = False
) -> int:
    """An amount a person typed (``"2.5"``, ``2.5``) → micros, or a 400 naming ``what``.

    Fractions of a micro are dropped; at most :data:`~videogate.fields.MAX_AMOUNT` at a time,
    so no sum of amounts can overflow a 64-bit column.
    """
    shown = str(amount)[:40]
    try:
        value = Decimal(str(amount))
    except ArithmeticError:
        raise InvalidRequest(f"{what} {shown!r} is not a number", param=what) from None
    if not value.is_finite():
        raise InvalidRequest(f"{what} {shown!r} is not a finite number", param=what)
    if value > MAX_AMOUNT:
        raise InvalidRequest(
            f"{what} {shown!r} is too large: at most {MAX_AMOUNT:,} at a time", param=what
        )
    micros = int(value * MICROS)
    if value < 0 or (micros == 0 and not allow_zero):
        need = "a non-negative amount" if allow_zero else "a positive amount (at least 0.000001)"
        raise InvalidRequest(f"{what} {shown!r} must be {need}", param=what)
    return micros


def round_micros(amount: Decimal) -> int:
    """An exact or computed amount of the currency unit → micros, rounded half up."""
    return int((amount * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))
