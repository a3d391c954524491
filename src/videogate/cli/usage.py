"""``videogate usage``: tasks, seconds, tokens and amount charged, per key and model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.table import Table

from videogate.cli._console import make_console

# Piped output is not cut at 80 columns (see cli/keys.py).
console = make_console()
errors = make_console(stderr=True)


def usage_command(
    key: str | None = typer.Option(None, "--key", help="Only this key (key_…)"),
    since: str | None = typer.Option(
        None, "--since", help="Only tasks created since YYYY-MM-DD (UTC)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts"),
) -> None:
    """Usage per key and model: tasks, succeeded, seconds, tokens and amount charged."""
    # Server modules are imported here: the CLI also runs from a client-only install.
    from videogate.errors import VideogateError
    from videogate.money import format_money
    from videogate.service.money import usage
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade

    settings = load_settings()

    async def run() -> list[dict[str, Any]]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.effective_database_url)
        store = Store.open(settings.effective_database_url)
        try:
            return await usage(store, key_id=key, since=since)
        finally:
            await store.close()

    try:
        rows = asyncio.run(run())
    except VideogateError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print("no tasks" + (f" since {since}" if since else ""))
        return
    table = Table("key", "model", "tasks", "succeeded", "seconds", "tokens", "amount")
    totals: dict[str, int] = {}
    for row in rows:
        table.add_row(
            str(row["key_id"]),
            str(row["model"]),
            str(row["tasks"]),
            str(row["succeeded"]),
            f"{row['seconds']:g}",
            str(row["tokens"]),
            f"{row['amount']} {row['currency']}",
        )
        currency = str(row["currency"])
        totals[currency] = totals.get(currency, 0) + int(row["amount_micros"])
    console.print(table)
    for currency, micros in sorted(totals.items()):
        console.print(f"total charged: {format_money(micros)} {currency}")
