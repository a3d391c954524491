"""More of ``/admin`` (docs/admin.md): the overview, groups, key settings and ledgers,
webhook attempts with resend, and the route test. Same admin token as ``admin.py``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from videogate.api.admin import require_admin
from videogate.api.responses import json_response
from videogate.api.state import ApiState
from videogate.errors import NotFound
from videogate.fields import INT32_MAX, StoredText
from videogate.service import reports
from videogate.service.keys import key_or_404
from videogate.service.route_test import probe_route
from videogate.views.admin import attempt_json, key_json

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class KeyUpdateBody(BaseModel):
    """Fields to change; a limit set to ``null`` falls back to the group's."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText | None = Field(default=None, max_length=200)
    requests_per_minute: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_unfinished_tasks: int | None = Field(default=None, ge=1, le=INT32_MAX)


@router.get("/overview", summary="Tasks per status, the last 24 h, queue depth, p50/p95")
async def overview(state: ApiState = Depends(require_admin)) -> Response:
    return json_response(await reports.overview(state.ctx.store))


@router.get("/groups", summary="The declared key groups with their limits and multiplier")
async def groups(state: ApiState = Depends(require_admin)) -> Response:
    data = [
        {
            "name": g.name,
            "object": "group",
            "price_multiplier": str(g.price_multiplier),
            "requests_per_minute": g.requests_per_minute,
            "max_unfinished_tasks": g.max_unfinished_tasks,
        }
        for g in state.ctx.settings.groups
    ]
    return json_response({"object": "list", "data": data})


@router.patch("/keys/{key_id}", summary="Rename a key or set its limits")
async def update_key(
    key_id: str, body: KeyUpdateBody, state: ApiState = Depends(require_admin)
) -> Response:
    row = await key_or_404(state.ctx.store, key_id)
    await state.ctx.store.keys.update(row.id, body.model_dump(exclude_unset=True))
    # Limits are read from the cached key: let this process see the change at once.
    state.auth.forget(row.id)
    return json_response(key_json(await key_or_404(state.ctx.store, key_id)))


@router.get("/keys/{key_id}/ledger", summary="A key's money movements, newest first")
async def key_ledger(
    key_id: str,
    limit: int = Query(default=50, ge=1, le=500),
    before: int | None = Query(
        default=None, ge=1, le=INT32_MAX, description="an entry id: older ones"
    ),
    state: ApiState = Depends(require_admin),
) -> Response:
    row = await key_or_404(state.ctx.store, key_id)
    return json_response(
        await reports.ledger_page(state.ctx.store, row.id, limit=limit, before=before)
    )


@router.get("/usage/daily", summary="Tasks, seconds and spend per day and model")
async def usage_daily(
    key: str | None = Query(default=None, max_length=100, description="a key id"),
    days: int = Query(default=30, ge=1, le=reports.MAX_DAYS),
    state: ApiState = Depends(require_admin),
) -> Response:
    body = await reports.daily_usage(state.ctx.store, key_id=key or None, days=days)
    return json_response(body)


@router.get("/webhooks", summary="Webhook delivery attempts, newest first")
async def webhook_attempts(
    task: str | None = Query(default=None, max_length=100, description="only this task's"),
    limit: int = Query(default=50, ge=1, le=500),
    state: ApiState = Depends(require_admin),
) -> Response:
    rows = await state.ctx.store.webhooks.attempts(task_id=task or None, limit=limit)
    return json_response({"object": "list", "data": [attempt_json(r) for r in rows]})


@router.post("/webhooks/events/{event_id}/resend", summary="Deliver a webhook event again, now")
async def resend(event_id: int, state: ApiState = Depends(require_admin)) -> Response:
    event = await state.ctx.store.webhooks.resend(event_id, time.time())
    if event is None:
        raise NotFound(f"no webhook event {event_id}", param="event_id")
    return json_response(
        {
            "object": "webhook.event",
            "id": event.id,
            "task_id": event.task_id,
            "status": event.status,
            "state": event.state,
            "next_attempt_at": event.next_attempt_at,
        }
    )


@router.post("/routes/{name}/test", summary="Check that a route's upstream answers")
async def route_test(name: str, state: ApiState = Depends(require_admin)) -> Response:
    route = next((r for r in state.ctx.router.routes if r.name == name), None)
    if route is None:
        raise NotFound(f"no route '{name[:200]}'", param="name")
    return json_response(await probe_route(state.ctx, route))
