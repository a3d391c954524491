"""``videogate webhooks``: the log of webhook delivery attempts, newest first."""

from __future__ import annotations

import asyncio
import json
import time

import typer
from rich.table import Column, Table

from videogate.cli._console import make_console

# Server modules are imported inside the command: the CLI also runs from a client-only
# install (``pip install videogate``) where they are absent.

console = make_console()


def webhooks_command(
    task: str | None = typer.Option(None, "--task", help="Only this task's attempts"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List webhook delivery attempts: time, task, event, URL, HTTP status or error."""
    from videogate.settings import load_settings
    from videogate.store import Store
    from videogate.store.migrate import upgrade

    settings = load_settings()

    async def run() -> list[dict[str, object]]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(settings.effective_database_url)
        store = Store.open(settings.effective_database_url)
        try:
            logged = await store.webhooks.attempts(task_id=task, limit=limit)
        finally:
            await store.close()
        return [
            {
                "id": row.attempt.id,
                "created_at": row.attempt.created_at,
                "task_id": row.attempt.task_id,
                "event_id": row.attempt.event_id,
                "event_status": row.event_status,
                "event_state": row.event_state,
                "webhook_id": row.attempt.webhook_id,
                "url": row.attempt.url,
                "status_code": row.attempt.status_code,
                "error": row.attempt.error,
                "duration_ms": row.attempt.duration_ms,
            }
            for row in logged
        ]

    rows = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        console.print("no webhook attempts" + (f" for task {task}" if task else ""))
        return
    table = Table(
        "time",
        Column("task", no_wrap=True),
        "event",
        "url",
        "result",
        Column("ms", justify="right"),
    )
    for row in rows:
        code = row["status_code"]
        result = f"HTTP {code}" if code is not None else ""
        if row["error"]:
            result = f"{result}: {row['error']}" if result else str(row["error"])
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(str(row["created_at"])))),
            str(row["task_id"]),
            f"{row['event_status']} ({row['event_state']})",
            str(row["url"]),
            result,
            "" if row["duration_ms"] is None else str(row["duration_ms"]),
        )
    console.print(table)
