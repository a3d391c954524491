"""Upstream adapters, one module per API shape; ``load_provider`` finds them by kind.

Adding a provider means adding one module here that defines ``create_provider``.
"""

from __future__ import annotations

import importlib
import re

from videogate.providers.base import Provider, ProviderDeps, Route

_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


def load_provider(kind: str, route: Route, deps: ProviderDeps) -> Provider:
    """Instantiate the provider ``kind`` (the module ``videogate.providers.<kind>``)."""
    if not _KIND.match(kind) or kind == "base":
        raise ValueError(f"unknown provider kind {kind!r}")
    try:
        module = importlib.import_module(f"videogate.providers.{kind}")
    except ModuleNotFoundError:
        raise ValueError(f"unknown provider kind {kind!r}") from None
    provider: Provider = module.create_provider(route, deps)
    return provider


__all__ = ["Provider", "ProviderDeps", "Route", "load_provider"]
