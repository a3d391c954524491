"""``videogate keys …``: create, list and revoke API keys."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table

from videogate.cli._console import make_console

if TYPE_CHECKING:
    from videogate.store import Store

# Server modules are imported inside the commands: the CLI also runs from a client-only
# install (``pip install videogate``) where they are absent.

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
# Piped output is not cut at 80 columns: ids must survive `keys list | grep`.
console = make_console()
errors = make_console(stderr=True)


async def _open() -> Store:
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings.effective_database_url)
    return Store.open(settings.effective_database_url, secret_key=settings.secret_key)


def _money(micros: int | None) -> str:
    from videogate.money import format_money

    return "unlimited" if micros is None else format_money(micros)


@app.command("create")
def create(
    name: str = typer.Option("", "--name", help="A label for the key"),
    group: str = typer.Option("default", "--group", help="Key group (decides routes, prices)"),
    balance: str | None = typer.Option(None, "--balance", help="Prepaid balance; none = unlimited"),
    rpm: int | None = typer.Option(
        None, "--rpm", min=1, help="Requests per minute; default: the group's limit"
    ),
    max_unfinished: int | None = typer.Option(
        None, "--max-unfinished", min=1, help="Unfinished tasks at once; default: the group's"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts"),
) -> None:
    """Create a key and print its secret (shown only this once)."""

    async def run() -> None:
        from videogate.service.keys import create_key

        store = await _open()
        try:
            new = await create_key(
                store,
                name=name,
                group=group,
                balance=balance,
                requests_per_minute=rpm,
                max_unfinished_tasks=max_unfinished,
            )
        finally:
            await store.close()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": new.id,
                        "name": new.name,
                        "key": new.key,
                        "group": new.group,
                        "webhook_secret": new.webhook_secret,
                        "balance": _money(new.balance_micros),
                        "requests_per_minute": new.requests_per_minute,
                        "max_unfinished_tasks": new.max_unfinished_tasks,
                    }
                )
            )
            return
        console.print(f"[bold]created key[/bold] {new.id} (group {new.group})")
        console.print(f"secret (shown once): [bold green]{new.key}[/bold green]")
        console.print(f"webhook secret: {new.webhook_secret}")

    _run(run())


@app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json")) -> None:
    """List keys (never their secrets)."""

    async def run() -> None:
        store = await _open()
        try:
            rows = await store.keys.all()
        finally:
            await store.close()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "name": r.name,
                            "group": r.group,
                            "prefix": r.key_prefix,
                            "balance": _money(r.balance_micros),
                            "created_at": int(r.created_at),
                            "revoked": r.revoked_at is not None,
                        }
                        for r in rows
                    ]
                )
            )
            return
        table = Table(
            Column("id", no_wrap=True), "name", "group", "prefix", "balance", "created", "state"
        )
        for r in rows:
            table.add_row(
                r.id,
                r.name,
                r.group,
                r.key_prefix + "…",
                _money(r.balance_micros),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
                "revoked" if r.revoked_at else "active",
            )
        console.print(table)

    _run(run())


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (key_…)")) -> None:
    """Revoke a key: it stops working within a few seconds."""

    async def run() -> None:
        store = await _open()
        try:
            done = await store.keys.revoke(key_id, time.time())
        finally:
            await store.close()
        if not done:
            errors.print(f"[red]no active key {key_id}[/red]")
            raise typer.Exit(1)
        console.print(f"revoked {key_id}")

    _run(run())


@app.command("topup")
def topup(
    key_id: str = typer.Argument(..., help="The key's id (key_…)"),
    amount: str = typer.Argument(..., help="Amount to add, e.g. 10 or 2.50"),
    note: str | None = typer.Option(None, "--note", help="Recorded in the ledger"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts"),
) -> None:
    """Add to a key's prepaid balance and print the new balance."""

    async def run() -> None:
        from videogate.errors import VideogateError
        from videogate.service.money import topup as add

        store = await _open()
        try:
            done = await add(store, key_id, amount, note)
        except VideogateError as exc:
            errors.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from None
        finally:
            await store.close()
        if as_json:
            typer.echo(json.dumps(done.as_json()))
            return
        balance = done.as_json()["balance"]
        console.print(f"{key_id}: balance {balance}")
        if done.was_unlimited:
            console.print("(the key had an unlimited balance; it is now prepaid)")

    _run(run())


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]
