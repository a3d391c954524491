"""A key's own account: ``/v1/account``, ``/v1/usage``, ``/v1/ledger`` and a task's
``/v1/videos/{id}/timeline`` (docs/api.md, "Account"). What the console's Usage page and
task detail show, available to every client with the same key."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from videogate.api.openapi_models import documented
from videogate.api.responses import json_response, query_int
from videogate.api.state import api_state
from videogate.errors import AuthenticationFailed
from videogate.service import reports

router = APIRouter(tags=["account"])


class Account(BaseModel):
    object: Literal["account"]
    key_id: str
    name: str
    group: str
    prefix: str
    balance: str | None
    balance_micros: int | None
    currency: str
    requests_per_minute: int | None
    max_unfinished_tasks: int | None
    unfinished_tasks: int


class LedgerRow(BaseModel):
    id: int
    object: Literal["ledger.entry"]
    kind: str
    task_id: str | None
    amount: str
    amount_micros: int
    currency: str
    created_at: int
    note: str | None


class LedgerList(BaseModel):
    object: Literal["list"]
    data: list[LedgerRow]
    last_id: int | None
    has_more: bool


class UsageDaily(BaseModel):
    object: Literal["usage.daily"]
    days: int
    currency: str
    models: list[str]
    data: list[dict[str, Any]]
    per_model: list[dict[str, Any]]


class TimelineEvent(BaseModel):
    at: float
    type: str
    detail: str


class WebhookEventState(BaseModel):
    status: str
    state: str
    attempts: int
    at: float


class Timeline(BaseModel):
    object: Literal["video.timeline"]
    id: str
    events: list[TimelineEvent]
    ledger: list[LedgerRow]
    webhooks: list[WebhookEventState]


@router.get(
    "/v1/account",
    summary="The caller's key: name, group, balance and limits",
    **documented(Account, (401, 429)),
)
async def account(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    row = await state.ctx.store.keys.get(caller.key_id)
    if row is None:  # deleted between the authentication and now
        raise AuthenticationFailed("this API key no longer exists")
    out = reports.account_json(row)
    out["unfinished_tasks"] = await state.ctx.store.tasks.count_unfinished(caller.key_id)
    return json_response(out)


@router.get(
    "/v1/usage",
    summary="The caller's tasks, seconds and spend per day and model",
    **documented(UsageDaily, (400, 401, 429)),
)
async def usage(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    days = query_int(request.query_params.get("days"), "days", 30, 1, reports.MAX_DAYS)
    body = await reports.daily_usage(state.ctx.store, key_id=caller.key_id, days=days)
    return json_response(body)


@router.get(
    "/v1/ledger",
    summary="The caller's money movements: holds, charges, refunds",
    **documented(LedgerList, (400, 401, 429)),
)
async def ledger(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    q = request.query_params
    limit = query_int(q.get("limit"), "limit", 50, 1, 500)
    before = query_int(q.get("before"), "before", 0, 0, 2**62) or None
    return json_response(
        await reports.ledger_page(state.ctx.store, caller.key_id, limit=limit, before=before)
    )


@router.get(
    "/v1/videos/{task_id}/timeline",
    summary="A task's history and billing rows",
    **documented(Timeline, (401, 404, 429)),
)
async def task_timeline(task_id: str, request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.get(caller, task_id)
    return json_response(await reports.timeline(state.ctx.store, task))
