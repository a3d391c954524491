"""How ``videogate gc`` reports: the counts, and with ``--dry-run`` the oldest items of
each kind that would go (a table on a terminal, or JSON for scripts)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Column, Table

from videogate.cli._client_common import human_bytes

if TYPE_CHECKING:
    from videogate.worker.retention import Doomed, SweepReport


def summary(report: SweepReport, *, dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removed"
    return (
        f"{verb}: {report.results} result sets (with their stored references), "
        f"{report.uploads} uploads, {report.tasks} task records, "
        f"{report.scratch} scratch folders of this machine"
    )


def show(
    console: Console,
    report: SweepReport,
    items: list[Doomed] | None,
    *,
    limit: int,
    as_json: bool,
) -> None:
    """Print what a sweep removed, or (``items``: a dry run) what it would remove."""
    dry_run = items is not None
    if as_json:
        body: dict[str, object] = {"dry_run": dry_run, "counts": asdict(report)}
        if items is not None:
            body["items"] = [asdict(item) for item in items]
        typer.echo(json.dumps(body))
        return
    if items:
        table = Table(
            "kind",
            Column("id", no_wrap=True),
            Column("blob key", overflow="fold"),
            Column("age", justify="right"),
            Column("size", justify="right"),
        )
        for item in items:
            size = "" if item.bytes is None else human_bytes(item.bytes)
            table.add_row(item.kind, item.id, item.key, age(item.age_seconds), size)
        console.print(table)
    console.print(summary(report, dry_run=dry_run))
    if items is None:
        return
    if items:
        sized = sum(i.bytes or 0 for i in items)
        console.print(f"the listed results and uploads hold {human_bytes(sized)}")
    counts = {"result": report.results, "upload": report.uploads, "task": report.tasks}
    if any(n > sum(1 for i in items if i.kind == kind) for kind, n in counts.items()):
        console.print(f"only the oldest {limit} of each kind are listed; see more with --limit")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {rest // 60:02d}m"
    return f"{rest // 60}m {rest % 60:02d}s"
