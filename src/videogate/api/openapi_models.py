"""Response models for the OpenAPI document (documentation only).

The handlers build their JSON by hand (``views/relay.py``, ``views/ark.py``, ``files``,
``meta``, ``errors``) and return raw responses; these models describe those bodies, field
for field, so that ``/openapi.json`` tells clients (and the schemathesis suite) what each
route really returns. Keys that are sometimes absent use ``X | SkipJsonSchema[None] = None``:
optional in the schema, never ``null`` when present.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import SkipJsonSchema

BEARER = "bearerAuth"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer vg-…`",
    }
}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -----------------------------------------------------------------------------


class ErrorDetail(_Doc):
    code: str
    message: str
    param: str | None
    type: str


class ErrorEnvelope(_Doc):
    """The error body of ``/v1/*`` (OpenAI's shape)."""

    error: ErrorDetail


class ArkErrorDetail(_Doc):
    code: str
    message: str
    param: str  # "" when there is none
    type: str


class ArkErrorEnvelope(_Doc):
    """The error body of ``/api/v3/*`` (Ark's shape)."""

    error: ArkErrorDetail


# --- shared -----------------------------------------------------------------------------


class BillingDetail(_Doc):
    """``amount`` once settled or refunded, ``estimated_amount`` while held."""

    currency: str
    state: Literal["held", "settled", "refunded"]
    amount: str | SkipJsonSchema[None] = None
    estimated_amount: str | SkipJsonSchema[None] = None
    refunded_amount: str | SkipJsonSchema[None] = None


class TaskError(_Doc):
    code: str
    message: str


# --- /v1/videos -------------------------------------------------------------------------


class VideoUsage(_Doc):
    completion_tokens: int


class VideoObject(_Doc):
    """A task on ``/v1/videos`` (API.md §1.2)."""

    id: str
    object: Literal["video"]
    model: str
    status: Literal["submitted", "queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    updated_at: int
    completed_at: int | None
    video_url: str | None
    url: str | None
    expires_at: int | None
    last_frame_url: str | None
    thumbnail_url: str | None
    prompt: str
    ratio: str
    resolution: str
    duration: int
    seconds: str
    size: str
    output_size: str
    remixed_from_video_id: str | None
    seed: int | None
    generate_audio: bool
    usage: VideoUsage | None
    billing_detail: BillingDetail
    error: TaskError | None


class VideoList(_Doc):
    object: Literal["list"]
    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(_Doc):
    id: str
    object: Literal["video.deleted"]
    deleted: bool


# --- /v1/files, /v1/models --------------------------------------------------------------


class FileObject(_Doc):
    id: str
    object: Literal["file"]
    bytes: int
    mime_type: str
    filename: str
    created_at: int
    url: str
    expires_at: int


class ModelObject(_Doc):
    id: str
    object: Literal["model"]
    owned_by: str
    description: str
    aliases: list[str]
    capabilities: dict[str, Any]
    providers: list[str]
    price: dict[str, str]


class ModelList(_Doc):
    object: Literal["list"]
    data: list[ModelObject]


# --- /api/v3/contents/generations/tasks -------------------------------------------------


class ArkCreated(_Doc):
    id: str
    safety_identifier: str | SkipJsonSchema[None] = None


class ArkContent(_Doc):
    video_url: str | None
    last_frame_url: str | None
    file_url: None  # Ark's non-video generations; declared by the SDK


class ArkUsage(_Doc):
    completion_tokens: int
    total_tokens: int


class ArkTask(_Doc):
    """A task on the Ark surface; ``content`` and ``usage`` only once it has succeeded."""

    id: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
    error: TaskError | None
    content: ArkContent | SkipJsonSchema[None] = None
    usage: ArkUsage | SkipJsonSchema[None] = None
    created_at: int
    updated_at: int
    seed: int | None
    resolution: str
    ratio: str
    duration: int
    frames: int | None
    framespersecond: int
    generate_audio: bool
    service_tier: Literal["default"]
    execution_expires_after: int
    draft: bool
    fileformat: Literal["mp4", "mov"]
    output_format: Literal["mp4", "mov"]
    billing_detail: BillingDetail
    # What the create sent (Ark echoes them), else null.
    priority: int | None
    safety_identifier: str | None
    tools: list[dict[str, Any]] | None
    # Declared by the Ark SDK, without meaning for a video task: always null.
    revised_prompt: None
    subdivisionlevel: None
    draft_task_id: None
    # Echoed when the create sent them (Ark does the same).
    camera_fixed: bool | SkipJsonSchema[None] = None
    omni_reference_task_type: str | SkipJsonSchema[None] = None


class ArkTaskList(_Doc):
    total: int
    items: list[ArkTask]


class ArkDeleted(_Doc):
    """An empty object."""


# --- route decorations ------------------------------------------------------------------

_DESCRIPTIONS = {
    200: "Success",
    400: "Invalid request",
    401: "Missing or unknown API key",
    402: "Not enough balance",
    403: "Not allowed for this key",
    404: "Not found",
    409: "Conflict (idempotency key reused with another body)",
    429: "Over the key's request rate",
    502: "Upstream provider error",
    503: "No route available for the model",
}


def documented(
    ok: type[BaseModel],
    errors: tuple[int, ...] = (400, 401, 404, 429),
    *,
    ark: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: the response models, bearer auth."""
    envelope = ArkErrorEnvelope if ark else ErrorEnvelope
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": ok, "description": _DESCRIPTIONS[200]}
    }
    for status in errors:
        responses[status] = {"model": envelope, "description": _DESCRIPTIONS[status]}
    openapi_extra: dict[str, Any] = {"security": [{BEARER: []}]}
    openapi_extra.update(extra or {})
    return {"responses": responses, "openapi_extra": openapi_extra}
