"""Routes: which upstream serves which public model for which group."""

from __future__ import annotations

import random
from collections.abc import Iterable

from videogate.catalog import ModelSpec
from videogate.providers.base import Route


def sandbox_routes(models: Iterable[ModelSpec]) -> list[Route]:
    """The built-in routes: every known model rendered locally by the sandbox."""
    return [
        Route(
            name=f"sandbox:{m.name}",
            model=m.name,
            provider="sandbox",
            upstream_model=m.name,
            groups=("*",),
            max_in_flight=1_000_000,
        )
        for m in models
    ]


class Router:
    """Picks candidate routes for a model and a key's group."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = list(routes)
        self._by_name = {r.name: r for r in self._routes}

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def get(self, name: str) -> Route | None:
        return self._by_name.get(name)

    def serves(self, route: Route, model: str, group: str) -> bool:
        return (
            route.enabled
            and route.model == model
            and ("*" in route.groups or group in route.groups)
        )

    def candidates(self, model: str, group: str, rng: random.Random | None = None) -> list[Route]:
        """Usable routes, lowest priority first, weighted-random order within a priority."""
        rng = rng or random.Random()
        usable = [r for r in self._routes if self.serves(r, model, group)]
        ordered: list[Route] = []
        for priority in sorted({r.priority for r in usable}):
            tier = [r for r in usable if r.priority == priority]
            while tier:
                pick = rng.choices(tier, weights=[max(r.weight, 0) or 1e-9 for r in tier])[0]
                tier.remove(pick)
                ordered.append(pick)
        return ordered
