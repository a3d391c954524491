"""Routes: which upstream serves which public model for which group."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from videogate.catalog import ModelSpec, attach_aliases, load_catalog
from videogate.errors import ConfigurationError
from videogate.providers import BUILTIN_KIND, Capabilities, capabilities_of, model_spec_of
from videogate.providers.base import Route
from videogate.settings import RouteConfig, Settings


def builtin_routes(models: Iterable[ModelSpec]) -> list[Route]:
    """The built-in routes: every known model served by the built-in provider (the sandbox)."""
    return [
        Route(
            name=f"{BUILTIN_KIND}:{m.name}",
            model=m.name,
            provider=BUILTIN_KIND,
            upstream_model=m.name,
            groups=("*",),
            max_in_flight=1_000_000,
            capabilities=capabilities_of(BUILTIN_KIND),
        )
        for m in models
    ]


def configured_routes(settings: Settings, environ: Mapping[str, str]) -> list[Route]:
    """The ``[[routes]]`` of the settings, with their secrets read from the environment.

    Raises :class:`ConfigurationError` naming the route when its provider kind is unknown or
    when it lacks what that kind needs (a ``base_url``).
    """
    routes: list[Route] = []
    for rc in settings.routes:
        try:
            caps = capabilities_of(rc.provider)
        except ValueError as exc:
            raise ConfigurationError(f"route {rc.name!r}: {exc}") from None
        if caps.needs_base_url and not rc.base_url:
            raise ConfigurationError(
                f"route {rc.name!r} needs a base_url (provider {rc.provider!r} calls an HTTP API)"
            )
        _check_local(rc, caps)
        routes.append(_route(rc, caps, environ))
    return routes


def _route(rc: RouteConfig, caps: Capabilities, environ: Mapping[str, str]) -> Route:
    return Route(
        name=rc.name,
        model=rc.model,
        provider=rc.provider,
        upstream_model=rc.upstream_model or rc.model,
        base_url=rc.base_url.rstrip("/"),
        api_key_env=rc.api_key_env,
        api_key=environ.get(rc.api_key_env, "") if rc.api_key_env else "",
        priority=rc.priority,
        weight=rc.weight,
        # A local model runs one generation at a time on its device.
        max_in_flight=1 if caps.local_model else rc.max_in_flight,
        groups=rc.groups,
        enabled=rc.enabled,
        request_format=rc.request_format,
        timeout_seconds=rc.timeout_seconds,
        max_concurrent_polls=rc.max_concurrent_polls,
        capabilities=caps,
        local=rc.local,
    )


def _check_local(rc: RouteConfig, caps: Capabilities) -> None:
    if caps.local_model and rc.local is None:
        raise ConfigurationError(
            f"route {rc.name!r} needs local = {{ dir = …, family = … }} (provider "
            f"{rc.provider!r} runs a model on this machine; see docs/local-models.md)"
        )
    if rc.local is not None and not caps.local_model:
        raise ConfigurationError(
            f"route {rc.name!r}: provider {rc.provider!r} runs no local model; remove `local`"
        )
    if caps.local_model and "max_in_flight" in rc.model_fields_set and rc.max_in_flight != 1:
        raise ConfigurationError(
            f"route {rc.name!r} runs one generation at a time on its device; leave "
            "max_in_flight out (or set it to 1)"
        )


def build_catalog_and_routes(
    settings: Settings, environ: Mapping[str, str]
) -> tuple[dict[str, ModelSpec], list[Route]]:
    """Every public model and its routes: the catalog (shipped, with the deployment's
    ``[[models]]`` and ``[[aliases]]``); configured routes replace the built-in sandbox route
    of their model; models only known from routes get Seedance 2.0 capabilities."""
    models, aliases = load_catalog(settings.models, settings.aliases)
    configured = configured_routes(settings, environ)
    for route in configured:
        own = model_spec_of(route)
        if own is not None and route.model not in models:
            models[route.model] = own
        elif route.model not in models:
            fast = "fast" in route.model or "fast" in route.upstream_model
            models[route.model] = ModelSpec(
                route.model,
                f"served by route {route.name}",
                resolutions=("480p", "720p") if fast else ("480p", "720p", "1080p"),
            )
    attach_aliases(models, aliases)
    routed = {r.model for r in configured}
    sandbox = builtin_routes(m for m in models.values() if m.name not in routed)
    return models, configured + sandbox


class Router:
    """Picks candidate routes for a model and a key's group."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = list(routes)
        self._by_name = {r.name: r for r in self._routes}
        # One generator for the process: seeding a new one per choice costs ~10 µs.
        self._rng = random.Random()
        # (model, group) -> the routes serving it: the routes never change after start-up.
        self._serving: dict[tuple[str, str], tuple[Route, ...]] = {}
        self._of_model: dict[str, tuple[str, ...]] = {}

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

    def names_of(self, model: str) -> tuple[str, ...]:
        """The names of every enabled route of ``model``, whatever its groups (what a
        submit reads the state of before it knows the key's group)."""
        found = self._of_model.get(model)
        if found is None:
            if len(self._of_model) >= 10_000:  # stay bounded, as ``serving``
                self._of_model.clear()
            found = tuple(r.name for r in self._routes if r.enabled and r.model == model)
            self._of_model[model] = found
        return found

    def serving(self, model: str, group: str) -> tuple[Route, ...]:
        """The usable routes of ``model`` for ``group``, in configuration order (for
        checks that need no choice between them: a create's, a price's)."""
        found = self._serving.get((model, group))
        if found is None:
            if len(self._serving) >= 10_000:  # model names come from requests: stay bounded
                self._serving.clear()
            found = tuple(r for r in self._routes if self.serves(r, model, group))
            self._serving[(model, group)] = found
        return found

    def candidates(self, model: str, group: str, rng: random.Random | None = None) -> list[Route]:
        """Usable routes, lowest priority first, weighted-random order within a priority."""
        rng = rng or self._rng
        usable = self.serving(model, group)
        if len(usable) == 1:
            return [usable[0]]
        ordered: list[Route] = []
        for priority in sorted({r.priority for r in usable}):
            tier = [r for r in usable if r.priority == priority]
            while tier:
                pick = rng.choices(tier, weights=[max(r.weight, 0) or 1e-9 for r in tier])[0]
                tier.remove(pick)
                ordered.append(pick)
        return ordered
