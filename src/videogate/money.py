"""Money, in one place: amounts are integers of millionths of the currency unit ("micros").

Every backend stores micros exactly and sums never drift. There is one way to read an
amount a person typed (:func:`parse_amount`) and one way to show one (:func:`format_money`),
used by the API, the admin API and the CLI alike, so the same amount reads the same
everywhere. Shown amounts are exact: at least two decimals and every significant micro
(``725000`` → ``"0.725"``), because a rounded balance could look larger than it is.
Computed amounts (a price times usage) are rounded half up to the micro, once
(:func:`to_micros`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICROS = 1_000_000


def format_money(micros: int | None) -> str:
    """``1500000`` → ``"1.50"``, ``725000`` → ``"0.725"``, ``None`` → ``"0.00"``."""
    value = Decimal(micros or 0) / MICROS
    text = f"{value:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def to_micros(amount: Decimal) -> int:
    """An exact or computed amount of the currency unit → micros, rounded half up."""
    return int((amount * MICROS).quantize(Decimal(1), rounding=ROUND_HALF_UP))
