"""``/v1/models`` and the health endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from videogate.api.openapi_models import ModelList, documented
from videogate.api.responses import json_response
from videogate.api.state import api_state
from videogate.service.health import readiness

router = APIRouter(tags=["meta"])


@router.get(
    "/v1/models",
    summary="Models reachable with the caller's key",
    **documented(ModelList, (401, 429)),
)
async def list_models(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    data = []
    for spec in state.ctx.models.values():
        routes = state.ctx.router.candidates(spec.name, caller.group)
        if not routes:
            continue
        item = spec.as_public()
        item["providers"] = sorted({r.provider for r in routes})
        billing = state.ctx.billing
        item["price"] = billing.price(spec.name, caller.group).public(
            billing.multiplier(caller.group)
        )
        data.append(item)
    return json_response({"object": "list", "data": data})


@router.get("/healthz", summary="Liveness and database check")
@router.get("/health", include_in_schema=False)
async def health(request: Request) -> Response:
    state = api_state(request)
    try:
        await state.ctx.store.ping()
        db = "ok"
    except Exception as exc:
        return json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return json_response({"status": "ok", "database": db})


@router.get("/readyz", summary="Readiness: database, blob store, data dir and worker")
async def ready(request: Request) -> Response:
    """200 when this process can do its work; 503 with the failing checks otherwise."""
    state = api_state(request)
    result = await readiness(state.ctx)
    headers = None if result.ready else {"Retry-After": "5"}
    return json_response(result.as_json(), status=200 if result.ready else 503, headers=headers)
