"""One typed settings object, read from ``VIDEOGATE_*`` environment variables and an
optional TOML file named by ``VIDEOGATE_CONFIG``.

Environment variables win over the TOML file; both win over the defaults. The object is
built once by the entry point (CLI, app factory) and passed down; nothing reads the
environment anywhere else.

The pieces: :mod:`.core` (the object), :mod:`.tables` (its TOML tables), :mod:`.checks`
(unknown keys).
"""

from __future__ import annotations

from videogate.settings.checks import (
    CLIENT_VARIABLES,
    ENV_PREFIX,
    check_environment,
    unknown_setting_message,
)
from videogate.settings.core import Settings, load_settings, to_async_url
from videogate.settings.tables import (
    LOCAL_KEY_FILE,
    AliasConfig,
    GroupConfig,
    LocalModelConfig,
    ModelConfig,
    PriceConfig,
    PriceTierConfig,
    ReferenceLimitsConfig,
    RouteConfig,
    TaskType,
)

__all__ = [
    "CLIENT_VARIABLES",
    "ENV_PREFIX",
    "LOCAL_KEY_FILE",
    "AliasConfig",
    "GroupConfig",
    "LocalModelConfig",
    "ModelConfig",
    "PriceConfig",
    "PriceTierConfig",
    "ReferenceLimitsConfig",
    "RouteConfig",
    "Settings",
    "TaskType",
    "check_environment",
    "load_settings",
    "to_async_url",
    "unknown_setting_message",
]
