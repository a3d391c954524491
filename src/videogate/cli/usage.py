"""``videogate usage``: tasks, seconds, tokens and amount charged, per key and model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.table import Table

from videogate.cli._console import make_console

# Server modules are imported inside the command: the CLI also runs from a client-only
# install (``pip install videogate``) where they are absent.

# Piped output is not cut at 80 columns (see cli/keys.py).
console = make_console()
errors = make_console(stderr=True)


def usage_command(
    key: str | None = typer.Option(None, "--key", help="Only this key (key_…)"),
    since: str | None = typer.Option(
        None, "--since", help="Only tasks created since YYYY-MM-DD (UTC)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts"),
    unbilled_only: bool = typer.Option(
        False,
        "--unbilled",
        help="Only upstream work nobody was charged for (tasks cancelled while the upstream "
        "could not stop, failed or expired on our side), per route",
    ),
) -> None:
    """Usage per key and model: tasks, succeeded, seconds, tokens and amount charged; then
    the upstream work nobody was charged for, per route."""
    # Server modules are imported here: the CLI also runs from a client-only install.
    from videogate.errors import VideogateError
    from videogate.money import format_money
    from videogate.service.money import unbilled_upstream, usage
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade

    settings = load_settings()

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.effective_database_url)
        store = Store.open(settings.effective_database_url)
        try:
            rows = [] if unbilled_only else await usage(store, key_id=key, since=since)
            return rows, await unbilled_upstream(store, since=since)
        finally:
            await store.close()

    try:
        rows, unbilled = asyncio.run(run())
    except VideogateError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    if unbilled_only:
        if as_json:
            typer.echo(json.dumps(unbilled))
        else:
            _print_unbilled(unbilled)
        return
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
    if unbilled and not key:
        _print_unbilled(unbilled)


def _print_unbilled(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no upstream work went unbilled")
        return
    table = Table(
        "route",
        "jobs",
        "seconds",
        "tokens",
        "at the tasks' prices",
        title="upstream work nobody was charged for (cancelled, failed or expired on our side)",
    )
    for row in rows:
        table.add_row(
            str(row["route"]),
            str(row["jobs"]),
            f"{row['seconds']:g}",
            str(row["tokens"]),
            f"{row['amount']} {row['currency']}",
        )
    console.print(table)
