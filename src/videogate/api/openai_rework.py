"""OpenAI's remix, edit and extend of a finished video (API.md §1.3, docs/api.md):

- ``POST /v1/videos/{id}/remix`` (JSON ``{"prompt"}``): a new video from the source's
  frames and the new prompt, same model, frame and length; ``remixed_from_video_id`` set.
- ``POST /v1/videos/edits`` (``prompt``, ``video`` = ``{"id"}``): the source re-made
  per the prompt, where the model supports edits.
- ``POST /v1/videos/extensions`` (``prompt``, ``seconds``, ``video`` = ``{"id"}``): the
  source continued by ``seconds``; the result (and ``seconds``) is the stitched total.

The ``openai`` SDK sends edits and extensions as a multipart form (``video[id]``); a JSON
body works too. A model without the task type answers 400 naming the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from videogate.api.openapi_models import VideoObject, documented
from videogate.api.relay import poll_headers, read_json_body
from videogate.api.responses import json_response
from videogate.api.state import api_state
from videogate.errors import InvalidRequest
from videogate.request import MAX_PROMPT_CHARS, Operation
from videogate.views.relay import relay_task

router = APIRouter(tags=["videos (relay)"])

_ERRORS = (400, 401, 402, 404, 429, 503)


async def _fields(request: Request) -> dict[str, Any]:
    """The body as a flat dict, from JSON or a multipart form (``video[id]`` folded in)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        data = await read_json_body(request)
        if not isinstance(data, dict):
            raise InvalidRequest("the body must be a JSON object with 'prompt'")
        return data
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise InvalidRequest(
            "send the body as application/json or multipart/form-data", param="content-type"
        )
    async with request.form(max_files=1, max_fields=16) as form:
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise InvalidRequest(
                    f"'{key}' is a file upload; reference a completed video of this key "
                    'instead: video = {"id": "video_…"}',
                    param=key,
                )
            if key == "video[id]":
                out["video"] = {"id": value}
            else:
                out[key] = value
        return out


def _prompt(data: Mapping[str, Any]) -> str:
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest(
            "'prompt' is required: the text that directs the change", param="prompt"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(f"prompt is over {MAX_PROMPT_CHARS} characters", param="prompt")
    return prompt


def _video_id(data: Mapping[str, Any]) -> str:
    video: Any = data.get("video")
    if isinstance(video, str) and video.strip().startswith("{"):
        try:
            video = orjson.loads(video)
        except orjson.JSONDecodeError:
            video = None
    if isinstance(video, dict) and isinstance(video.get("id"), str) and video["id"].strip():
        return str(video["id"]).strip()
    if isinstance(video, str) and video.strip():
        return video.strip()
    raise InvalidRequest(
        'video is required: the completed video to work on, as {"id": "video_…"}',
        param="video",
    )


def _seconds(data: Mapping[str, Any]) -> int:
    value = data.get("seconds")
    text = str(value).strip() if isinstance(value, str | int) else ""
    if not text.isdigit() or not 1 <= int(text) <= 60:
        raise InvalidRequest(
            "seconds is required: the length of the new segment in whole seconds "
            '(for example "4" or "8")',
            param="seconds",
        )
    return int(text)


async def _create(
    request: Request,
    source_id: str,
    operation: Operation,
    prompt: str,
    seconds: int | None = None,
) -> Response:
    state = api_state(request)
    caller = await state.caller(request)
    task, _ = await state.tasks.create_from_source(
        caller,
        source_id,
        operation,
        prompt,
        seconds=seconds,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    ttl = state.ctx.settings.url_ttl_seconds
    return json_response(relay_task(task, state.ctx.signer, ttl), headers=poll_headers(request))


@router.post(
    "/v1/videos/{video_id}/remix",
    summary="Remix a completed video with a new prompt",
    **documented(VideoObject, _ERRORS),
)
async def remix_video(video_id: str, request: Request) -> Response:
    data = await _fields(request)
    return await _create(request, video_id, "remix", _prompt(data))


@router.post(
    "/v1/videos/edits",
    summary="Edit a completed video (models with the 'edit' task type)",
    **documented(VideoObject, _ERRORS),
)
async def edit_video(request: Request) -> Response:
    data = await _fields(request)
    return await _create(request, _video_id(data), "edit", _prompt(data))


@router.post(
    "/v1/videos/extensions",
    summary="Extend a completed video (models with the 'extend' task type)",
    **documented(VideoObject, _ERRORS),
)
async def extend_video(request: Request) -> Response:
    data = await _fields(request)
    return await _create(request, _video_id(data), "extend", _prompt(data), _seconds(data))
