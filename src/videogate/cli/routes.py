"""``videogate routes``: the configured routes with their health and in-flight counts."""

from __future__ import annotations

import asyncio
import json
import os
import time

import typer
from rich.console import Console
from rich.table import Column, Table

console = Console(width=None if Console().is_terminal else 200)


def routes_command(as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List every route: model, provider, priority, health and unfinished upstream tasks."""
    from videogate.routing import build_catalog_and_routes
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade
    from videogate.worker.submit import is_benched

    settings = load_settings()

    async def run() -> list[dict[str, object]]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.effective_database_url)
        store = Store.open(settings.effective_database_url)
        try:
            _, routes = build_catalog_and_routes(settings, os.environ)
            states = await store.route_state.all()
            counts = await store.attempts.in_flight([r.name for r in routes])
        finally:
            await store.close()
        now = time.time()
        rows: list[dict[str, object]] = []
        for r in routes:
            state = states.get(r.name)
            if not r.enabled:
                health = "disabled"
            elif is_benched(state, now):
                assert state is not None and state.benched_until is not None
                health = f"benched {int(state.benched_until - now)} s"
            elif r.provider != "sandbox" and r.api_key_env and not r.api_key:
                health = f"no key (${r.api_key_env} unset)"
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

    rows = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(
        Column("route", no_wrap=True),
        "model",
        "provider",
        "prio",
        "weight",
        "groups",
        "in flight",
        "health",
        "last error",
    )
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["model"]),
            str(row["provider"]),
            str(row["priority"]),
            str(row["weight"]),
            ",".join(row["groups"]),  # type: ignore[arg-type]
            f"{row['in_flight']}/{row['max_in_flight']}",
            str(row["health"]),
            str(row["last_error"] or ""),
        )
    console.print(table)
