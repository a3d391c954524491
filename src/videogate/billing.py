"""Pricing decisions: what a task holds at create and what it is charged at the end."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from videogate.catalog import ModelSpec
from videogate.pricing import FREE, Price, cost_micros, seedance_tokens
from videogate.request import GenerationRequest
from videogate.routing import Router
from videogate.settings import Settings


class Billing:
    """Prices per model (the catalog's, with the deployment's ``[[models]]``) and group
    multipliers."""

    def __init__(self, settings: Settings, router: Router, models: dict[str, ModelSpec]) -> None:
        self._router = router
        self._models = models
        self._prices = {name: spec.price for name, spec in models.items()}
        self._multipliers = {g.name: g.price_multiplier for g in settings.groups}
        self._estimates: dict[tuple[object, ...], tuple[int, dict[str, Any]]] = {}

    def multiplier(self, group: str) -> Decimal:
        return self._multipliers.get(group, Decimal(1))

    def price(self, model: str, group: str) -> Price:
        """The model's price for this group; free when only free routes (the sandbox) serve it."""
        routes = self._router.serving(model, group)
        if routes and all(r.capabilities.free for r in routes):
            return FREE
        return self._prices.get(model, FREE)

    def estimate(
        self, req: GenerationRequest, group: str, width: int, height: int
    ) -> tuple[int, dict[str, Any]]:
        """The hold (micros) for a request, and the price snapshot to settle it with.

        The hold covers the worst case: ``duration -1`` (the model chooses) is held at the
        catalog entry's longest clip; the charge at the end follows what was produced.
        """
        video_seconds = sum(r.duration or 0.0 for r in req.of_kind("video"))
        # Prices are fixed for the process: the same inputs give the same hold (~40 µs
        # of Decimal arithmetic saved per create). Bounded: the inputs come from requests.
        memo_key = (
            req.model,
            group,
            req.resolution,
            req.duration,
            req.operation,
            req.source_seconds,
            video_seconds,
            width,
            height,
        )
        known = self._estimates.get(memo_key)
        if known is not None:
            return known[0], dict(known[1])
        if len(self._estimates) >= 4096:
            self._estimates.clear()
        hold, snapshot = self._estimate(req, group, width, height, video_seconds)
        self._estimates[memo_key] = (hold, dict(snapshot))
        return hold, snapshot

    def _estimate(
        self, req: GenerationRequest, group: str, width: int, height: int, video_seconds: float
    ) -> tuple[int, dict[str, Any]]:
        price = self.price(req.model, group).for_resolution(req.resolution)
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
        spec = self._models.get(req.model)
        longest = spec.max_duration if spec is not None else 15
        seconds = float(req.duration if req.duration > 0 else longest)
        if req.operation == "extend":  # the output is the source plus the new segment
            seconds += req.source_seconds or 0.0
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
