"""Pricing decisions: what a task holds at create and what it is charged at the end."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from videogate.pricing import (
    FREE,
    MAX_AUTO_SECONDS,
    Price,
    builtin_prices,
    cost_micros,
    seedance_tokens,
)
from videogate.request import GenerationRequest
from videogate.routing import Router
from videogate.settings import Settings


class Billing:
    """Prices per model (built-in, overridden by ``[[models]]``) and group multipliers."""

    def __init__(self, settings: Settings, router: Router) -> None:
        self._router = router
        self._prices = builtin_prices()
        for model in settings.models:
            p = model.price
            self._prices[model.name] = Price(
                unit=p.unit,
                per_million=p.per_million,
                per_million_with_video=p.per_million_with_video,
                per_second=p.per_second,
                currency=p.currency,
            )
        self._multipliers = {g.name: g.price_multiplier for g in settings.groups}

    def multiplier(self, group: str) -> Decimal:
        return self._multipliers.get(group, Decimal(1))

    def price(self, model: str, group: str) -> Price:
        """The model's price for this group; free when only free routes (the sandbox) serve it."""
        routes = self._router.candidates(model, group)
        if routes and all(r.capabilities.free for r in routes):
            return FREE
        return self._prices.get(model, FREE)

    def estimate(
        self, req: GenerationRequest, group: str, width: int, height: int
    ) -> tuple[int, dict[str, Any]]:
        """The hold (micros) for a request, and the price snapshot to settle it with."""
        price = self.price(req.model, group)
        video_seconds = sum(r.duration or 0.0 for r in req.of_kind("video"))
        snapshot = {
            "unit": price.unit,
            "per_million": str(price.per_million),
            "per_million_with_video": (
                None if price.per_million_with_video is None else str(price.per_million_with_video)
            ),
            "per_second": str(price.per_second),
            "currency": price.currency,
            "multiplier": str(self.multiplier(group)),
            "video_seconds": video_seconds,
        }
        seconds = req.duration if req.duration > 0 else MAX_AUTO_SECONDS
        return charge(snapshot, None, width, height, float(seconds)), snapshot


def _price_of(snapshot: dict[str, Any]) -> Price:
    with_video = snapshot.get("per_million_with_video")
    return Price(
        unit=snapshot["unit"],
        per_million=Decimal(snapshot["per_million"]),
        per_million_with_video=None if with_video is None else Decimal(with_video),
        per_second=Decimal(snapshot["per_second"]),
        currency=snapshot["currency"],
    )


def charge(
    snapshot: dict[str, Any] | None,
    completion_tokens: int | None,
    width: int | None,
    height: int | None,
    seconds: float | None,
) -> int:
    """What a task costs: the upstream's reported tokens when known, else the Seedance
    formula on the delivered size and duration, priced with the create-time snapshot."""
    if not snapshot:
        return 0
    video_seconds = float(snapshot.get("video_seconds") or 0.0)
    tokens = completion_tokens
    if tokens is None:
        tokens = seedance_tokens(width or 0, height or 0, seconds or 0.0, video_seconds)
    return cost_micros(
        _price_of(snapshot),
        tokens=tokens,
        seconds=seconds or 0.0,
        with_video=video_seconds > 0,
        multiplier=Decimal(snapshot["multiplier"]),
    )
