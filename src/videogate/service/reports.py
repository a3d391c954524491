"""Reports in the shape the HTTP API gives them: a key's daily usage and ledger, a task's
timeline, the service overview. Shared by ``/v1`` (a key's own) and ``/admin`` (any)."""

from __future__ import annotations

import math
import time
from typing import Any

from videogate.money import format_money
from videogate.statuses import TERMINAL, UNFINISHED
from videogate.store import Store
from videogate.store.records import KeyRecord, TaskRecord
from videogate.store.reports import DAY, HOUR
from videogate.store.tables import LedgerEntry

MAX_DAYS = 366


def ledger_json(row: LedgerEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "ledger.entry",
        "kind": row.kind,
        "task_id": row.task_id,
        "amount": format_money(row.amount_micros),
        "amount_micros": row.amount_micros,
        "currency": row.currency,
        "created_at": int(row.created_at),
        "note": row.note,
    }


async def ledger_page(
    store: Store, key_id: str, *, limit: int, before: int | None
) -> dict[str, Any]:
    """One page of a key's ledger, newest first, as a list object (``before``: an entry id)."""
    rows = await store.reports.ledger(key_id, limit=limit + 1, before=before)
    data = [ledger_json(r) for r in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
    }


def account_json(row: KeyRecord) -> dict[str, Any]:
    """A key as its owner sees it (never the secret)."""
    return {
        "object": "account",
        "key_id": row.id,
        "name": row.name,
        "group": row.group,
        "prefix": row.key_prefix,
        "balance": None if row.balance_micros is None else format_money(row.balance_micros),
        "balance_micros": row.balance_micros,
        "currency": "USD",
        "requests_per_minute": row.requests_per_minute,
        "max_unfinished_tasks": row.max_unfinished_tasks,
    }


async def daily_usage(
    store: Store, *, key_id: str | None, days: int, now: float | None = None
) -> dict[str, Any]:
    """Tasks, seconds and amount per UTC day and model over the last ``days`` days,
    every day present (zeros included) so that a chart needs no gap filling."""
    now = time.time() if now is None else now
    days = max(1, min(days, MAX_DAYS))
    first = (math.floor(now / DAY) - days + 1) * DAY
    rows = await store.reports.daily_usage(key_id=key_id, since=first)
    models = sorted({r.model for r in rows})
    by_day: dict[int, dict[str, Any]] = {}
    for i in range(days):
        day = first + i * DAY
        by_day[day] = {
            "date": time.strftime("%Y-%m-%d", time.gmtime(day)),
            "tasks": 0,
            "succeeded": 0,
            "failed": 0,
            "seconds": 0.0,
            "amount_micros": 0,
            "models": {},
        }
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        day_row = by_day.get(r.day)
        if day_row is None:
            continue
        day_row["tasks"] += r.tasks
        day_row["succeeded"] += r.succeeded
        day_row["failed"] += r.failed
        day_row["seconds"] += r.seconds
        day_row["amount_micros"] += r.amount_micros
        day_row["models"][r.model] = {
            "tasks": r.tasks,
            "seconds": round(r.seconds, 3),
            "amount": format_money(r.amount_micros),
            "amount_micros": r.amount_micros,
        }
        total = totals.setdefault(
            r.model, {"model": r.model, "tasks": 0, "seconds": 0.0, "amount_micros": 0}
        )
        total["tasks"] += r.tasks
        total["seconds"] += r.seconds
        total["amount_micros"] += r.amount_micros
    data = []
    for day_row in by_day.values():
        day_row["seconds"] = round(day_row["seconds"], 3)
        day_row["amount"] = format_money(day_row["amount_micros"])
        data.append(day_row)
    per_model = []
    for total in totals.values():
        total["seconds"] = round(total["seconds"], 3)
        total["amount"] = format_money(total["amount_micros"])
        per_model.append(total)
    return {
        "object": "usage.daily",
        "days": days,
        "currency": "USD",
        "models": models,
        "data": data,
        "per_model": per_model,
    }


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ascending ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(q * len(values)))
    return round(values[rank - 1], 3)


async def overview(store: Store, *, now: float | None = None) -> dict[str, Any]:
    """What an operator looks at first: tasks per status now, the last 24 h of
    completions and failures per hour, the queue, and how long tasks take."""
    now = time.time() if now is None else now
    counts = await store.reports.status_counts()
    since = (math.floor(now / HOUR) - 23) * HOUR
    hours: dict[int, dict[str, Any]] = {
        since + i * HOUR: {"hour": since + i * HOUR, "succeeded": 0, "failed": 0} for i in range(24)
    }
    for hour, status, n in await store.reports.finished_per_hour(since):
        row = hours.get(hour)
        if row is None or status == "cancelled":  # a cancel is the owner's choice, not a failure
            continue
        row["succeeded" if status == "succeeded" else "failed"] += n
    times = await store.reports.completion_times(now - DAY)
    return {
        "object": "overview",
        "generated_at": int(now),
        "tasks_by_status": {s: counts.get(s, 0) for s in (*UNFINISHED, *TERMINAL)},
        "queue_depth": counts.get("queued", 0),
        "in_progress": counts.get("running", 0) + counts.get("fetching", 0),
        "last_24h": {
            "succeeded": sum(h["succeeded"] for h in hours.values()),
            "failed": sum(h["failed"] for h in hours.values()),
            "per_hour": list(hours.values()),
        },
        "time_to_complete_seconds": {
            "count": len(times),
            "p50": _percentile(times, 0.5),
            "p95": _percentile(times, 0.95),
        },
    }


async def timeline(store: Store, task: TaskRecord) -> dict[str, Any]:
    """A task's history: created, each submit attempt, started, finished; its ledger rows
    and, for a task with a callback URL, its webhook events."""
    events: list[dict[str, Any]] = [
        {"at": task.created_at, "type": "created", "detail": f"queued for {task.model}"}
    ]
    for att in await store.attempts.for_task(task.id):
        events.append(
            {
                "at": att.created_at,
                "type": "submit",
                "detail": f"sent to a {att.provider} upstream",
            }
        )
        if att.finished_at is not None:
            ok = att.state == "submitted"
            detail = (
                "accepted upstream" if ok else f"upstream refused: {att.error_code or att.state}"
            )
            events.append(
                {
                    "at": att.finished_at,
                    "type": "submitted" if ok else "submit_failed",
                    "detail": detail,
                }
            )
    if task.started_at:
        events.append({"at": task.started_at, "type": "running", "detail": "generating"})
    if task.completed_at:
        detail = task.status
        if task.error_code:
            detail = f"{task.status}: {task.error_code}"
        events.append({"at": task.completed_at, "type": task.status, "detail": detail})
    ledger = await store.ledger.for_task(task.id)
    for row in ledger:
        events.append(
            {
                "at": row.created_at,
                "type": f"billing.{row.kind}",
                "detail": f"{row.kind} {format_money(row.amount_micros)} {row.currency}",
            }
        )
    webhooks = []
    if task.callback_url:
        for ev in await store.webhooks.events(task.id):
            webhooks.append(
                {
                    "status": ev.status,
                    "state": ev.state,
                    "attempts": ev.attempts,
                    "at": ev.created_at,
                }
            )
    events.sort(key=lambda e: e["at"])
    for e in events:
        e["at"] = round(e["at"], 3)
    return {
        "object": "video.timeline",
        "id": task.id,
        "events": events,
        "ledger": [ledger_json(r) for r in ledger],
        "webhooks": webhooks,
    }
