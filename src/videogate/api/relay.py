"""``/v1/videos``: the Seedance-relay task API (API.md §1)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from videogate.api.errors import describe_validation_errors
from videogate.api.openai_form import as_form_error, read_openai_form, read_openai_json
from videogate.api.openapi_models import VideoDeleted, VideoList, VideoObject, documented
from videogate.api.relay_schemas import RelayCreate, to_generation_request
from videogate.api.responses import JSONBytes, blob_response, json_response, query_int
from videogate.api.state import ApiState, api_state
from videogate.errors import Gone, InvalidRequest, NotFound
from videogate.fields import has_nul
from videogate.request import GenerationRequest, check_request
from videogate.service.variants import derived_key
from videogate.statuses import RELAY_STATUS, TERMINAL
from videogate.views.relay import relay_task

router = APIRouter(tags=["videos (relay)"])

RELAY_SURFACE = "relay"  # this surface's bodies in the finished-task cache

_create_schema = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/RelayCreate"}},
            "multipart/form-data": {"schema": {"$ref": "#/components/schemas/OpenAIVideoForm"}},
        },
    }
}


_LIST_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 100, "default": 20},
    },
    {
        "name": "order",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
    },
    {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 100},
        "description": "a task id: list the tasks after it",
    },
    {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "only these statuses, comma-separated: queued, in_progress, "
        "completed, failed (a videogate extension)",
    },
    {
        "name": "model",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "only this model's tasks (a videogate extension)",
    },
    {
        "name": "q",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "a task id, or words of the prompt (any case; a videogate extension)",
    },
]


# ``GET /v1/videos?status=``: the statuses this surface shows, and what each one covers.
LIST_STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "queued": ("queued",),
    "in_progress": ("running", "fetching"),
    "completed": ("succeeded",),
    "failed": ("failed", "cancelled", "expired"),
}


def list_status_filter(value: str | None) -> list[str] | None:
    """``status=completed,failed`` → the internal statuses; None: no filter."""
    statuses: list[str] = []
    for name in (value or "").split(","):
        name = name.strip()
        if not name:
            continue
        if name not in LIST_STATUS_FILTERS:
            raise InvalidRequest(
                f"status '{name[:50]}' is not known; use {', '.join(LIST_STATUS_FILTERS)}",
                param="status",
            )
        statuses.extend(LIST_STATUS_FILTERS[name])
    return statuses or None


async def read_json_body(request: Request) -> object:
    """The parsed JSON body. Its size is capped while it streams in, before it is whole
    (``max_json_body_bytes``, by the edge middleware in ``api/edge.py``)."""
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


def parse_relay_body(data: object) -> RelayCreate:
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object with at least 'model' and 'prompt'")
    try:
        return RelayCreate.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation_errors(exc.errors())
        raise InvalidRequest(message, param=param) from None


# Keys only OpenAI's create body has, and keys only the relay body has (API.md §1.1).
OPENAI_KEYS = frozenset({"seconds", "size", "input_reference", "user", "quality"})
RELAY_KEYS = frozenset({"content", "ratio", "duration", "resolution"})


def is_openai_shape(data: object, aliases: Mapping[str, str]) -> bool:
    """Is a JSON create body OpenAI's (``seconds``, ``size``…) rather than the relay's?

    A body with neither side's own keys is OpenAI's when it names no model or an alias
    (``sora-2``): such clients wait only while a video is ``queued``/``in_progress``.
    """
    if not isinstance(data, dict):
        return False
    keys = set(data)
    openai_keys, relay_keys = keys & OPENAI_KEYS, keys & RELAY_KEYS
    if openai_keys and relay_keys:
        raise InvalidRequest(
            f"the body mixes OpenAI's fields ({', '.join(sorted(openai_keys))}) with the "
            f"Seedance relay's ({', '.join(sorted(relay_keys))}); send either seconds/size "
            "(OpenAI) or duration/ratio/resolution/content (API.md §1.1)",
            param=sorted(relay_keys)[0],
        )
    if openai_keys:
        return True
    if relay_keys:
        return False
    model = data.get("model")
    return model is None or (isinstance(model, str) and model in aliases)


def poll_headers(request: Request) -> dict[str, str]:
    return {"openai-poll-after-ms": str(api_state(request).ctx.settings.poll_after_ms)}


def _poll_headers(state: ApiState) -> dict[str, str]:
    return {"openai-poll-after-ms": str(state.ctx.settings.poll_after_ms)}


@router.post(
    "/v1/videos",
    summary="Create a video task",
    **documented(VideoObject, (400, 401, 402, 403, 404, 409, 429, 503), extra=_create_schema),
)
async def create_video(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    content_type = request.headers.get("content-type", "").lower()
    idempotency_key = request.headers.get("idempotency-key")
    ttl = state.ctx.settings.url_ttl_seconds

    def precheck(req: GenerationRequest) -> None:
        state.tasks.check_model(caller, req.model)
        check_request(req, state.ctx.models[req.model])

    is_form = content_type.startswith("multipart/form-data")
    data: object = None
    if not is_form and content_type.startswith("application/json"):
        data = await read_json_body(request)
    if is_form or is_openai_shape(data, state.ctx.aliases):  # OpenAI's create (API.md §1.3)
        if is_form:
            req = await read_openai_form(request, state.ctx, caller, precheck)
        else:
            assert isinstance(data, dict)
            req = await read_openai_json(data, state.ctx, caller, precheck)
        try:
            task, _ = await state.tasks.create(caller, req, idempotency_key=idempotency_key)
        except InvalidRequest as exc:
            raise as_form_error(exc) from None
        # "queued", not the relay's "submitted": OpenAI clients loop
        # `while video.status in ("queued", "in_progress")` from the create response.
        return json_response(
            relay_task(task, state.ctx.signer, ttl, views=state.tasks.views),
            headers=poll_headers(request),
        )
    if not content_type.startswith("application/json"):
        raise InvalidRequest(
            "send the body as application/json (API.md §1.1), or as multipart/form-data "
            "in the OpenAI videos form (§1.3)",
            param="content-type",
        )
    body = parse_relay_body(data)
    req = to_generation_request(body)
    task, _ = await state.tasks.create(caller, req, idempotency_key=idempotency_key)
    return json_response(
        relay_task(task, state.ctx.signer, ttl, on_create=True, views=state.tasks.views),
        headers=poll_headers(request),
    )


@router.get(
    "/v1/videos/{task_id}", summary="Get a video task", **documented(VideoObject, (401, 404, 429))
)
async def get_video(task_id: str, request: Request) -> Response:
    return await poll_video(request)


async def poll_video(request: Request) -> Response:
    """The poll, also mounted as a plain Starlette route ahead of FastAPI's (see app.py).

    A finished task's response comes from the in-memory cache (``finished_cache.py``);
    any other is read from our own table and presented afresh."""
    task_id: str = request.path_params["task_id"]
    state = api_state(request)
    caller = await state.caller(request)
    finished = state.tasks.finished
    body = finished.get(RELAY_SURFACE, task_id, caller.key_id)
    if body is None:
        ticket = finished.ticket()
        task = await state.tasks.get(caller, task_id)
        ttl = state.ctx.settings.url_ttl_seconds
        body = orjson.dumps(relay_task(task, state.ctx.signer, ttl, views=state.tasks.views))
        if task.status in TERMINAL:
            finished.put(ticket, RELAY_SURFACE, task.id, task.key_id, body)
    return JSONBytes(body, headers=_poll_headers(state))


@router.get(
    "/v1/videos",
    summary="List the caller's video tasks",
    **documented(VideoList, (400, 401, 429), extra={"parameters": _LIST_PARAMS}),
)
async def list_videos(request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    q = request.query_params
    limit = query_int(q.get("limit"), "limit", 20, 0, 100)
    order = q.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'", param="order")
    after = q.get("after") or None
    statuses = list_status_filter(q.get("status"))
    model = q.get("model") or None
    search = (q.get("q") or "").strip()[:200] or None
    for name, value in (("model", model), ("q", search)):
        if value is not None and has_nul(value):
            raise InvalidRequest(f"'{name}' must not contain NUL characters", param=name)
    rows, has_more = await state.tasks.list(
        caller,
        limit=limit,
        after=after,
        order=order,
        statuses=statuses,
        model=model[:200] if model else None,
        search=search,
    )
    ttl = state.ctx.settings.url_ttl_seconds
    data = [relay_task(t, state.ctx.signer, ttl, views=state.tasks.views) for t in rows]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        },
        headers=poll_headers(request),
    )


@router.delete(
    "/v1/videos/{task_id}",
    summary="Delete a video task (cancelling it if unfinished)",
    **documented(VideoDeleted, (400, 401, 404, 429)),
)
async def delete_video(task_id: str, request: Request) -> Response:
    """OpenAI's delete: afterwards the video is gone (GET, /content and a second DELETE
    answer 404, the list leaves it out). An unfinished one is cancelled and refunded."""
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.delete_for_owner(caller, task_id)
    return json_response({"id": task.id, "object": "video.deleted", "deleted": True})


@router.post(
    "/v1/videos/{task_id}/cancel",
    summary="Cancel an unfinished video task (it stays listed, as failed/cancelled)",
    **documented(VideoObject, (401, 404, 429)),
)
async def cancel_video(task_id: str, request: Request) -> Response:
    """Stop an unfinished task and refund its hold; the task stays readable (``failed``
    with ``error.code`` ``cancelled``). A finished task is returned unchanged."""
    state = api_state(request)
    caller = await state.caller(request)
    task = await state.tasks.cancel(caller, task_id)
    ttl = state.ctx.settings.url_ttl_seconds
    return json_response(
        relay_task(task, state.ctx.signer, ttl, views=state.tasks.views),
        headers=poll_headers(request),
    )


VARIANTS = {
    "video": ("video_key", "video/mp4", "video.mp4"),
    "thumbnail": ("thumbnail_key", "image/jpeg", "thumbnail.jpg"),
    "spritesheet": ("video_key", "image/jpeg", "spritesheet.jpg"),
    "last_frame": ("last_frame_key", "image/png", "last_frame.png"),
}


def wants_jpeg(accept: str) -> bool:
    """A thumbnail is WebP (what OpenAI serves) unless the client asks for JPEG."""
    accept = accept.lower()
    return "image/jpeg" in accept and "image/webp" not in accept


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_content_docs = documented(
    VideoObject,
    (400, 401, 404, 429),
    extra={
        "parameters": [
            {
                "name": "variant",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": list(VARIANTS), "default": "video"},
            }
        ]
    },
)
_content_docs["responses"][200] = {
    "description": "The file: video/mp4; the thumbnail as image/webp (image/jpeg when the "
    "Accept header asks for JPEG); the spritesheet (evenly spaced frames) as image/jpeg; the "
    "last frame as image/png. A Range header gets 206",
    "content": {
        "video/mp4": _BINARY,
        "image/webp": _BINARY,
        "image/jpeg": _BINARY,
        "image/png": _BINARY,
    },
}
_content_docs["responses"][206] = {
    "description": "Part of the file (Range)",
    "content": {
        "video/mp4": _BINARY,
        "image/webp": _BINARY,
        "image/jpeg": _BINARY,
        "image/png": _BINARY,
    },
}
_content_docs["responses"][416] = {"description": "The range cannot be satisfied"}


@router.get(
    "/v1/videos/{task_id}/content",
    summary="Download a result",
    response_class=Response,
    **_content_docs,
)
@router.head("/v1/videos/{task_id}/content", include_in_schema=False)
async def video_content(task_id: str, request: Request) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    variant = request.query_params.get("variant") or "video"
    if variant not in VARIANTS:
        raise InvalidRequest(
            f"variant '{variant[:50]}' is not known; use video, thumbnail, spritesheet "
            "or last_frame",
            param="variant",
        )
    task = await state.tasks.get(caller, task_id)
    if task.status != "succeeded":
        raise NotFound(
            f"video {task.id} has no content yet: it is {RELAY_STATUS[task.status]}",
            param="task_id",
        )
    column, media_type, filename = VARIANTS[variant]
    key = getattr(task, column)
    if task.media_deleted:
        raise Gone(
            f"the results of task {task.id} were deleted (results are kept "
            f"{state.ctx.settings.result_retention_seconds // 3600} h after a task ends, or "
            "until deleted); create the task again"
        )
    if not key:
        raise NotFound(f"task {task.id} has no {variant} (it was not requested)")
    if variant == "video" and key.endswith(".mov"):  # asked for as output_format mov
        media_type, filename = "video/quicktime", "video.mov"
    if variant == "spritesheet" or (
        variant == "thumbnail" and not wants_jpeg(request.headers.get("accept", ""))
    ):
        derived = "spritesheet" if variant == "spritesheet" else "thumbnail_webp"
        key = await derived_key(state.ctx, task, derived)
        if key is None:
            raise NotFound(f"video {task.id} has no {variant}")
        if variant == "thumbnail":
            media_type, filename = "image/webp", "thumbnail.webp"
    return await blob_response(
        state.ctx.blobs,
        key,
        media_type,
        request.headers.get("range"),
        head=request.method == "HEAD",
        filename=filename,
    )
