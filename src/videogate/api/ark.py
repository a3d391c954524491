"""``/api/v3/contents/generations/tasks``: the Ark-native task API (API.md §2).

Code written for Volcengine Ark / BytePlus ModelArk (their SDKs included) works by pointing
``base_url`` at ``http://host/api/v3``. The tasks are the same as on ``/v1/videos``; errors
on this surface use Ark's envelope and codes (the table in ``api/errors.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from videogate.api.ark_schemas import openapi_body_schema, parse_ark_body, to_generation_request
from videogate.api.openapi_models import (
    ArkCreated,
    ArkDeleted,
    ArkTask,
    ArkTaskList,
    documented,
)
from videogate.api.relay import read_json_body
from videogate.api.responses import json_response, query_int
from videogate.api.state import api_state
from videogate.errors import InvalidRequest
from videogate.statuses import ARK_STATUS, ARK_STATUSES, ARK_STATUSES_OF
from videogate.views.ark import ark_task

router = APIRouter(tags=["tasks (Ark)"])

TASKS = "/api/v3/contents/generations/tasks"
MAX_FILTER_IDS = 500
DELETABLE = ("succeeded", "failed", "expired")

_create_schema = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": openapi_body_schema()}},
    }
}


def _query(name: str, schema: dict[str, object], explode: bool = False) -> dict[str, object]:
    param: dict[str, object] = {"name": name, "in": "query", "required": False, "schema": schema}
    if explode:
        param.update(style="form", explode=True)
    return param


_LIST_PARAMS = [
    _query("page_num", {"type": "integer", "minimum": 1, "maximum": 500, "default": 1}),
    _query("page_size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 10}),
    _query("filter.status", {"type": "string", "enum": list(ARK_STATUSES)}),
    _query(
        "filter.task_ids",
        {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FILTER_IDS},
        explode=True,
    ),
    _query("filter.model", {"type": "string"}),
    _query("filter.service_tier", {"type": "string", "enum": ["default", "flex"]}),
]


@router.post(
    TASKS,
    summary="Create a generation task (Ark)",
    **documented(ArkCreated, (400, 401, 403, 404, 409, 429, 503), ark=True, extra=_create_schema),
)
async def create_task(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    body = parse_ark_body(await read_json_body(request))
    req = to_generation_request(body)
    task, _ = await state.tasks.create(
        caller, req, idempotency_key=request.headers.get("idempotency-key")
    )
    created: dict[str, str] = {"id": task.id}
    if body.safety_identifier is not None:
        created["safety_identifier"] = body.safety_identifier
    return json_response(created)


@router.get(
    TASKS + "/{task_id}",
    summary="Get a generation task (Ark)",
    **documented(ArkTask, (401, 404, 429), ark=True),
)
async def get_task(task_id: str, request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.get(caller, task_id)
    return json_response(ark_task(task, state.ctx.signer, state.ctx.settings.url_ttl_seconds))


def _filter_statuses(values: list[str]) -> list[str]:
    statuses: list[str] = []
    for value in values:
        if value not in ARK_STATUSES_OF:
            raise InvalidRequest(
                f"The parameter `filter.status` specified in the request is not valid: "
                f"{value[:40]!r} is not one of {', '.join(ARK_STATUSES_OF)}.",
                param="filter.status",
            )
        statuses.extend(ARK_STATUSES_OF[value])
    return statuses


def _filter_ids(values: list[str]) -> list[str]:
    # Repeated (`filter.task_ids=a&filter.task_ids=b`, as Ark documents) or comma-separated.
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(ids) > MAX_FILTER_IDS:
        raise InvalidRequest(
            f"The parameter `filter.task_ids` specified in the request is not valid: "
            f"{len(ids)} ids given, at most {MAX_FILTER_IDS} are allowed.",
            param="filter.task_ids",
        )
    return ids


@router.get(
    TASKS,
    summary="List generation tasks (Ark)",
    **documented(ArkTaskList, (400, 401, 429), ark=True, extra={"parameters": _LIST_PARAMS}),
)
async def list_tasks(request: Request) -> Response:
    """``page_num``/``page_size`` in [1, 500]; ``filter.status``, repeated ``filter.task_ids``,
    ``filter.model``, ``filter.service_tier``. Newest first."""
    state = api_state(request)
    caller = await state.caller(request)
    q = request.query_params
    page_num = query_int(q.get("page_num"), "page_num", 1, 1, 500)
    page_size = query_int(q.get("page_size"), "page_size", 10, 1, 500)
    statuses = _filter_statuses(q.getlist("filter.status"))
    ids = _filter_ids(q.getlist("filter.task_ids"))
    model = q.get("filter.model") or None
    tier = q.get("filter.service_tier") or None
    if tier not in (None, "default", "flex"):
        raise InvalidRequest(
            "The parameter `filter.service_tier` specified in the request is not valid: "
            f"{tier[:40]!r} is not one of default, flex.",
            param="filter.service_tier",
        )
    if tier == "flex":  # every task here runs in the default tier
        return json_response({"total": 0, "items": []})
    store = state.ctx.store.tasks
    total = await store.count(caller.key_id, statuses=statuses, model=model, ids=ids)
    rows = await store.page(
        caller.key_id,
        limit=page_size,
        order="desc",
        statuses=statuses,
        model=model,
        ids=ids,
        offset=(page_num - 1) * page_size,
    )
    signer, ttl = state.ctx.signer, state.ctx.settings.url_ttl_seconds
    return json_response({"total": total, "items": [ark_task(t, signer, ttl) for t in rows]})


@router.delete(
    TASKS + "/{task_id}",
    summary="Cancel a queued task or delete a finished one (Ark)",
    **documented(ArkDeleted, (400, 401, 404, 429), ark=True),
)
async def delete_task(task_id: str, request: Request) -> Response:
    """Ark's rules: queued → cancelled; succeeded, failed or expired → deleted for good
    (gone from every surface, with its stored media); running or cancelled → refused."""
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.get(caller, task_id)
    status = ARK_STATUS[task.status]
    if status == "queued":
        # Cancels whatever is still unfinished, so a task that started a moment ago is
        # cancelled too rather than refused.
        task = await state.tasks.cancel_or_delete(caller, task_id)
        if ARK_STATUS[task.status] in DELETABLE:  # it finished meanwhile: delete it
            await state.tasks.delete(caller, task_id)
    elif status in DELETABLE:
        await state.tasks.delete(caller, task_id)
    else:
        raise InvalidRequest(
            f"The task {task.id} is {status} and cannot be cancelled or deleted: only queued "
            "tasks can be cancelled, and only succeeded, failed or expired tasks deleted.",
            param="task_id",
        )
    return json_response({})
