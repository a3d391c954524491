"""Upstream adapters, one module per API shape, found by kind.

Adding a provider means adding one module here whose ``PROVIDER_CLASS`` implements
:class:`~videogate.providers.base.Provider` and declares its
:class:`~videogate.providers.base.Capabilities`. Nothing else lists the kinds.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

from videogate.catalog import ModelSpec
from videogate.providers.base import Capabilities, Provider, ProviderDeps, Route

#: The provider that serves every model no configured route names (offline, free).
BUILTIN_KIND = "sandbox"

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_NOT_PROVIDERS = frozenset({"base", "http"})  # the interface and the shared HTTP client


def known_kinds() -> list[str]:
    """The provider kinds installed: every module of this package but ``base`` and ``http``."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if m.name not in _NOT_PROVIDERS and not m.name.startswith("_")
    )


def _module(kind: str) -> ModuleType:
    unknown = ValueError(
        f"unknown provider kind {kind!r}; the kinds are: {', '.join(known_kinds())}"
    )
    if not _KIND.match(kind) or kind in _NOT_PROVIDERS:
        raise unknown
    try:
        module = importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{kind}":  # the module exists but needs something missing
            raise ValueError(
                f"provider kind {kind!r} needs {exc.name}, which is not installed"
            ) from None
        raise unknown from None
    if not hasattr(module, "PROVIDER_CLASS"):
        raise unknown
    return module


def capabilities_of(kind: str) -> Capabilities:
    """What the provider ``kind`` declares it can do; ValueError for an unknown kind."""
    caps: Capabilities = _module(kind).PROVIDER_CLASS.capabilities
    return caps


def model_spec_of(route: Route) -> ModelSpec | None:
    """The public model a route's provider defines itself (a local model's limits), if any."""
    hook = getattr(_module(route.provider).PROVIDER_CLASS, "model_spec", None)
    spec: ModelSpec | None = hook(route) if hook is not None else None
    return spec


def route_problem(route: Route) -> str | None:
    """Why a route cannot run on this machine (e.g. a missing model directory), or None."""
    if not route.capabilities.local_model:
        return None
    hook = getattr(_module(route.provider).PROVIDER_CLASS, "route_problem", None)
    problem: str | None = hook(route) if hook is not None else None
    return problem


def load_provider(kind: str, route: Route, deps: ProviderDeps) -> Provider:
    """Instantiate the provider ``kind`` (the module ``videogate.providers.<kind>``)."""
    provider: Provider = _module(kind).PROVIDER_CLASS(route, deps)
    return provider


__all__ = [
    "BUILTIN_KIND",
    "Capabilities",
    "Provider",
    "ProviderDeps",
    "Route",
    "capabilities_of",
    "known_kinds",
    "load_provider",
    "model_spec_of",
    "route_problem",
]
