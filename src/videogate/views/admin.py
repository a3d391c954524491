"""Views of keys and webhook attempts as the admin API (docs/admin.md) shows them."""

from __future__ import annotations

from typing import Any

from videogate.money import format_money
from videogate.store.records import KeyRecord
from videogate.store.webhooks import LoggedAttempt


def key_json(row: KeyRecord) -> dict[str, Any]:
    """A key without its secret: the admin API's ``api_key`` object."""
    return {
        "id": row.id,
        "object": "api_key",
        "name": row.name,
        "group": row.group,
        "prefix": row.key_prefix,
        "balance": None if row.balance_micros is None else format_money(row.balance_micros),
        "balance_micros": row.balance_micros,
        "requests_per_minute": row.requests_per_minute,
        "max_unfinished_tasks": row.max_unfinished_tasks,
        "created_at": int(row.created_at),
        "revoked": row.revoked_at is not None,
        "revoked_at": int(row.revoked_at) if row.revoked_at is not None else None,
    }


def attempt_json(row: LoggedAttempt) -> dict[str, Any]:
    """One webhook delivery attempt with its event's status and state."""
    a = row.attempt
    return {
        "id": a.id,
        "object": "webhook.attempt",
        "created_at": round(a.created_at, 3),
        "task_id": a.task_id,
        "event_id": a.event_id,
        "event_status": row.event_status,
        "event_state": row.event_state,
        "webhook_id": a.webhook_id,
        "url": a.url,
        "status_code": a.status_code,
        "error": a.error,
        "duration_ms": a.duration_ms,
    }
