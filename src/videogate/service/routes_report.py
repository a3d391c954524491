"""Every route with its health and in-flight count: ``videogate routes`` and
``GET /admin/routes`` show the same rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from videogate.providers import route_problem
from videogate.providers.base import Route
from videogate.store import Store
from videogate.store.routes import is_benched


async def route_report(
    store: Store, routes: Sequence[Route], *, now: float | None = None
) -> list[dict[str, Any]]:
    """One row per route: where it goes, who may use it, how busy and how healthy it is."""
    states = await store.route_state.all()
    counts = await store.attempts.in_flight([r.name for r in routes])
    now = time.time() if now is None else now
    rows: list[dict[str, Any]] = []
    for r in routes:
        state = states.get(r.name)
        if not r.enabled:
            health = "disabled"
        elif is_benched(state, now):
            assert state is not None and state.benched_until is not None
            health = f"benched {int(state.benched_until - now)} s"
        elif r.capabilities.needs_api_key and r.api_key_env and not r.api_key:
            health = f"no key (${r.api_key_env} unset)"
        elif (problem := route_problem(r)) is not None:
            health = f"unusable: {problem}"
        else:
            health = "ok"
        rows.append(
            {
                "name": r.name,
                "model": r.model,
                "provider": r.provider,
                "upstream_model": r.upstream_model,
                "base_url": r.base_url,
                "priority": r.priority,
                "weight": r.weight,
                "groups": list(r.groups),
                "in_flight": counts.get(r.name, 0),
                "max_in_flight": r.max_in_flight,
                "health": health,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "last_error": state.last_error if state else None,
            }
        )
    return rows
