"""``/admin``: keys, balances, usage, routes and every key's tasks, for operators
(docs/admin.md). Authorised by ``Authorization: Bearer <VIDEOGATE_ADMIN_TOKEN>``; an empty
``admin_token`` turns the whole API off."""

from __future__ import annotations

import hmac
import time
from decimal import Decimal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from videogate.api.responses import json_response
from videogate.api.state import ApiState, api_state
from videogate.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from videogate.fields import INT32_MAX, MAX_AMOUNT, StoredText
from videogate.service import money
from videogate.service.keys import create_key, key_or_404
from videogate.service.routes_report import route_report
from videogate.statuses import TERMINAL, UNFINISHED
from videogate.views.admin import key_json
from videogate.views.relay import relay_task

ADMIN_HEADER = "'Authorization: Bearer <VIDEOGATE_ADMIN_TOKEN>'"


async def require_admin(request: Request) -> ApiState:
    """The admin token, compared in constant time. A valid API key is a known caller
    without the right to be here (403); anything else is not authenticated (401)."""
    state = api_state(request)
    token = state.ctx.settings.admin_token
    if not token:
        raise PermissionDenied("the admin API is disabled: set VIDEOGATE_ADMIN_TOKEN")
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationFailed(f"missing admin token: send {ADMIN_HEADER}")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return state
    try:
        await state.auth.authenticate(header)
    except AuthenticationFailed:
        raise AuthenticationFailed(f"invalid admin token: send {ADMIN_HEADER}") from None
    raise PermissionDenied(
        f"this is an API key, not the admin token: the admin API needs {ADMIN_HEADER}"
    )


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

# Filters of GET /admin/tasks: our statuses, and the relay's names for groups of them.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    **{s: (s,) for s in (*UNFINISHED, *TERMINAL)},
    "in_progress": ("running", "fetching"),
    "completed": ("succeeded",),
    "unfinished": UNFINISHED,
}


class KeyCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(default="", max_length=200)
    group: StoredText = Field(default="default", min_length=1, max_length=100)
    balance: Decimal | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="prepaid balance; null: unlimited"
    )
    requests_per_minute: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="null: the group's limit, if any"
    )
    max_unfinished_tasks: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="null: the group's limit, if any"
    )


class TopupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, le=MAX_AMOUNT, description="added to the balance")
    note: StoredText | None = Field(default=None, max_length=1000)


@router.get("/keys", summary="Every API key (never its secret)")
async def list_keys(state: ApiState = Depends(require_admin)) -> Response:
    rows = await state.ctx.store.keys.all()
    return json_response({"object": "list", "data": [key_json(r) for r in rows]})


@router.post("/keys", summary="Create an API key; the answer holds its secret, once")
async def create(body: KeyCreateBody, state: ApiState = Depends(require_admin)) -> Response:
    groups = [g.name for g in state.ctx.settings.groups]
    if body.group not in groups:
        raise InvalidRequest(
            f"group '{body.group}' is not declared; declared groups: {', '.join(groups)}",
            param="group",
        )
    new = await create_key(
        state.ctx.store,
        name=body.name,
        group=body.group,
        balance=body.balance,
        requests_per_minute=body.requests_per_minute,
        max_unfinished_tasks=body.max_unfinished_tasks,
    )
    out = key_json(await key_or_404(state.ctx.store, new.id))
    out["key"] = new.key
    out["webhook_secret"] = new.webhook_secret
    return json_response(out)


@router.post("/keys/{key_id}/revoke", summary="Revoke a key")
async def revoke(key_id: str, state: ApiState = Depends(require_admin)) -> Response:
    row = await key_or_404(state.ctx.store, key_id)
    if row.revoked_at is None:
        await state.ctx.store.keys.revoke(row.id, time.time())
        # This process stops accepting it at once; others within key_cache_seconds.
        state.auth.forget(row.id)
        row = await key_or_404(state.ctx.store, key_id)
    return json_response(key_json(row))


@router.post("/keys/{key_id}/topup", summary="Add to a key's balance")
async def topup(key_id: str, body: TopupBody, state: ApiState = Depends(require_admin)) -> Response:
    await key_or_404(state.ctx.store, key_id)
    done = await money.topup(state.ctx.store, key_id, body.amount, body.note)
    return json_response(done.as_json())


@router.get("/usage", summary="Tasks, seconds, tokens and amount per key and model")
async def usage(
    key: str | None = Query(default=None, max_length=100, description="a key id"),
    since: str | None = Query(default=None, max_length=50, description="YYYY-MM-DD (UTC)"),
    state: ApiState = Depends(require_admin),
) -> Response:
    rows = await money.usage(state.ctx.store, key_id=key, since=since)
    # Upstream work nobody was charged for, per route (docs/reliability.md).
    unbilled = await money.unbilled_upstream(state.ctx.store, since=since)
    return json_response({"object": "list", "data": rows, "unbilled_upstream": unbilled})


@router.get("/routes", summary="Every route with its health and in-flight count")
async def routes(state: ApiState = Depends(require_admin)) -> Response:
    rows = await route_report(state.ctx.store, state.ctx.router.routes)
    return json_response({"object": "list", "data": rows})


@router.get("/tasks", summary="Recent tasks of every key, newest first")
async def tasks(
    limit: int = Query(default=20, ge=1, le=100),
    key: str | None = Query(default=None, max_length=100, description="only this key's"),
    status: str | None = Query(
        default=None,
        max_length=200,
        description="comma-separated: queued, running, fetching, succeeded, failed, "
        "cancelled, expired, or in_progress, completed, unfinished",
    ),
    after: str | None = Query(default=None, max_length=100, description="a task id: older ones"),
    state: ApiState = Depends(require_admin),
) -> Response:
    statuses: list[str] = []
    for name in (status or "").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in STATUS_FILTERS:
            raise InvalidRequest(
                f"status '{name[:50]}' is not known; use {', '.join(STATUS_FILTERS)}",
                param="status",
            )
        statuses.extend(s for s in STATUS_FILTERS[name] if s not in statuses)
    rows = await state.ctx.store.tasks.page(
        key or None, limit=limit + 1, after=after or None, statuses=statuses or None
    )
    ttl = state.ctx.settings.url_ttl_seconds
    data = []
    for task in rows[:limit]:
        item = relay_task(task, state.ctx.signer, ttl)
        item["key_id"] = task.key_id
        item["route"] = task.route
        data.append(item)
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(rows) > limit,
        }
    )
