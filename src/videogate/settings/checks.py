"""Unknown keys are refused with the nearest known one: a typo must not keep a default."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

ENV_PREFIX = "VIDEOGATE_"


CLIENT_VARIABLES = frozenset(
    {
        "VIDEOGATE_API_KEY",
        "VIDEOGATE_BASE_URL",
        "VIDEOGATE_API",
        "VIDEOGATE_MODEL",
        "VIDEOGATE_POLL_INTERVAL",
    }
)


def unknown_setting_message(key: str, known: set[str], *, spelled: str | None = None) -> str:
    """Name the unknown key and the nearest known one, so a typo is a one-line fix."""
    shown = spelled or key
    nearest = difflib.get_close_matches(key.lower(), sorted(known), n=1, cutoff=0.6)
    if nearest:
        hint = nearest[0] if spelled is None else ENV_PREFIX + nearest[0].upper()
        return f"unknown setting {shown!r}; did you mean {hint!r}?"
    return f"unknown setting {shown!r}; the settings are listed in the README's Settings table"


def check_environment(environ: Mapping[str, str], known: set[str]) -> None:
    """Refuse ``VIDEOGATE_*`` variables that name no setting (and no client variable)."""
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name in CLIENT_VARIABLES:
            continue
        key = name.removeprefix(ENV_PREFIX).lower()
        if key not in known:
            raise ValueError(unknown_setting_message(key, known, spelled=name))
