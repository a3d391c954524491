"""Prices and the Seedance token formula: what a task is estimated and charged.

Amounts are micros (see :mod:`videogate.money`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from videogate.money import MICROS, round_micros


@dataclass(frozen=True)
class Price:
    """A model's price: per million output tokens, or per second of video."""

    unit: Literal["token", "second"] = "token"
    per_million: Decimal = Decimal(0)
    per_million_with_video: Decimal | None = None
    per_second: Decimal = Decimal(0)
    currency: str = "USD"
    # Resolution -> (per_million, per_million_with_video) where a tier's rates differ.
    tiers: tuple[tuple[str, Decimal, Decimal | None], ...] = ()

    def for_resolution(self, resolution: str) -> Price:
        """The price of one resolution tier (the base rates unless a tier says otherwise)."""
        for name, per_million, with_video in self.tiers:
            if name == resolution:
                return replace(
                    self, per_million=per_million, per_million_with_video=with_video, tiers=()
                )
        return replace(self, tiers=())

    def public(self, multiplier: Decimal) -> dict[str, object]:
        """As ``GET /v1/models`` shows it: strings, the group's multiplier applied."""
        if self.unit == "second":
            return {
                "unit": "second",
                "per_second": str(self.per_second * multiplier),
                "currency": self.currency,
            }
        out: dict[str, object] = {
            "unit": "token",
            "per_million": str(self.per_million * multiplier),
            "currency": self.currency,
        }
        if self.per_million_with_video is not None:
            out["per_million_with_video"] = str(self.per_million_with_video * multiplier)
        for name, per_million, with_video in self.tiers:
            out[f"per_million_{name}"] = str(per_million * multiplier)
            if with_video is not None:
                out[f"per_million_with_video_{name}"] = str(with_video * multiplier)
        return out


FREE = Price()


def seedance_tokens(width: int, height: int, seconds: float, video_seconds: float = 0.0) -> int:
    """Seedance's billed tokens: W×H×(24×s+1)/1024 for the output, plus the reference
    videos' seconds at the same rate (API.md §4)."""
    output = width * height * (24 * seconds + 1) / 1024
    inputs = width * height * 24 * video_seconds / 1024
    return int(output + inputs)


def cost_micros(
    price: Price, *, tokens: int, seconds: float, with_video: bool, multiplier: Decimal
) -> int:
    """The amount, in micros, rounded half up."""
    if price.unit == "second":
        amount = price.per_second * Decimal(str(seconds))
    else:
        rate = price.per_million
        if with_video and price.per_million_with_video is not None:
            rate = price.per_million_with_video
        amount = rate * Decimal(tokens) / Decimal(MICROS)
    return max(round_micros(amount * multiplier), 0)
