"""``videogate routes``: the configured routes with their health and in-flight counts."""

from __future__ import annotations

import asyncio
import json
import os

import typer
from rich.table import Column, Table

from videogate.cli._console import make_console

# Server modules are imported inside the command: the CLI also runs from a client-only
# install (``pip install videogate``) where they are absent.

console = make_console()


def routes_command(as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List every route: model, provider, priority, health and unfinished upstream tasks."""
    from videogate.routing import build_catalog_and_routes
    from videogate.service.routes_report import route_report
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade

    settings = load_settings()

    async def run() -> list[dict[str, object]]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.effective_database_url)
        store = Store.open(settings.effective_database_url)
        try:
            _, routes = build_catalog_and_routes(settings, os.environ)
            return await route_report(store, routes)
        finally:
            await store.close()

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
