"""A key's own account: ``/v1/account``, ``/v1/usage``, ``/v1/ledger`` and a task's
``/v1/videos/{id}/timeline`` (docs/api.md, "Account"). What the console's Usage page and
task detail show, available to every client with the same key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from videogate.api.responses import json_response, query_int
from videogate.api.state import api_state
from videogate.errors import AuthenticationFailed
from videogate.service import reports

router = APIRouter(tags=["account"])


@router.get("/v1/account", summary="The caller's key: name, group, balance and limits")
async def account(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    row = await state.ctx.store.keys.get(caller.key_id)
    if row is None:  # deleted between the authentication and now
        raise AuthenticationFailed("this API key no longer exists")
    out = reports.account_json(row)
    out["unfinished_tasks"] = await state.ctx.store.tasks.count_unfinished(caller.key_id)
    return json_response(out)


@router.get("/v1/usage", summary="The caller's tasks, seconds and spend per day and model")
async def usage(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    days = query_int(request.query_params.get("days"), "days", 30, 1, reports.MAX_DAYS)
    body = await reports.daily_usage(state.ctx.store, key_id=caller.key_id, days=days)
    return json_response(body)


@router.get("/v1/ledger", summary="The caller's money movements: holds, charges, refunds")
async def ledger(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    q = request.query_params
    limit = query_int(q.get("limit"), "limit", 50, 1, 500)
    before = query_int(q.get("before"), "before", 0, 0, 2**62) or None
    rows = await state.ctx.store.reports.ledger(caller.key_id, limit=limit + 1, before=before)
    data = [reports.ledger_json(r) for r in rows[:limit]]
    return json_response(
        {
            "object": "list",
            "data": data,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(rows) > limit,
        }
    )


@router.get("/v1/videos/{task_id}/timeline", summary="A task's history and billing rows")
async def task_timeline(task_id: str, request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.get(caller, task_id)
    return json_response(await reports.timeline(state.ctx.store, task))
