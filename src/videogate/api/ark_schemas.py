"""The body of ``POST /api/v3/contents/generations/tasks`` (API.md §2) and its translation.

Ark's Python SDK sends every optional field, the unset ones as JSON ``null``: nulls mean
"not given". Known Ark fields that videogate does not use (``priority``, ``tools``,
``safety_identifier``, …) are checked, kept and passed on to Ark routes; values that ask for
something videogate cannot do (``frames``, ``draft``, ``service_tier: flex``, …) are refused,
as Ark refuses them for Seedance 2.0. ``omni_reference_task_type`` ``edit``/``extend`` and
``output_format`` ``mov`` are honoured where the model offers them (the catalog) and the
serving upstream can deliver them (checked by the task service). Errors use Ark's codes and
wording: ``MissingParameter`` / ``InvalidParameter`` naming the parameter.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from videogate.api.relay_schemas import MAX_URL_CHARS
from videogate.errors import InvalidRequest
from videogate.request import GenerationRequest, build_references, default_ratio

ITEM_TYPES = ("text", "image_url", "video_url", "audio_url", "draft_task")
UNSUPPORTED = "InvalidParameter.UnsupportedParameter"


class _Strict(BaseModel):
    # strict: Ark does not coerce ("5" is not a duration, 1 is not a boolean)
    model_config = ConfigDict(extra="forbid", strict=True)


class ArkUrl(_Strict):
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)


class ArkTextItem(_Strict):
    type: Literal["text"]
    text: str


class ArkImageItem(_Strict):
    type: Literal["image_url"]
    image_url: ArkUrl
    role: Literal["first_frame", "last_frame", "reference_image"] | None = None


class ArkVideoItem(_Strict):
    type: Literal["video_url"]
    video_url: ArkUrl
    role: Literal["reference_video"] | None = None


class ArkAudioItem(_Strict):
    type: Literal["audio_url"]
    audio_url: ArkUrl
    role: Literal["reference_audio"] | None = None


class ArkDraftTaskItem(_Strict):
    type: Literal["draft_task"]
    draft_task: dict[str, Any]


ArkContentItem = Annotated[
    ArkTextItem | ArkImageItem | ArkVideoItem | ArkAudioItem | ArkDraftTaskItem,
    Field(discriminator="type"),
]


class ArkTool(_Strict):
    type: Literal["web_search"]


class ArkCreate(_Strict):
    """The create body, field for field as the Ark SDK's ``tasks.create`` sends it."""

    model: str = Field(min_length=1, max_length=200)
    content: list[ArkContentItem] = Field(min_length=1, max_length=64)
    callback_url: str | None = Field(default=None, max_length=2048)
    return_last_frame: bool | None = None
    resolution: str | None = Field(default=None, max_length=20)
    ratio: str | None = Field(default=None, max_length=20)
    duration: int | None = None
    seed: int | None = None
    watermark: bool | None = None
    generate_audio: bool | None = None
    # Accepted, not used: videogate has one tier, one deadline setting, no priorities.
    service_tier: Literal["default", "flex"] | None = None
    execution_expires_after: int | None = Field(default=None, ge=3600, le=259200)
    priority: int | None = Field(default=None, ge=0, le=9)
    camera_fixed: bool | None = None
    safety_identifier: str | None = Field(default=None, max_length=256)
    tools: list[ArkTool] | None = Field(default=None, max_length=8)
    omni_reference_task_type: Literal["auto", "reference", "edit", "extend"] | None = None
    output_format: Literal["mp4", "mov"] | None = None
    # Refused when set: not supported by Seedance 2.0.
    draft: bool | None = None
    frames: int | None = None


def invalid(param: str, why: str, code: str = "InvalidParameter") -> InvalidRequest:
    return InvalidRequest(
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        param=param,
        code=code,
    )


def missing(param: str, hint: str = "") -> InvalidRequest:
    return InvalidRequest(
        "The request failed because it is missing one or multiple required parameters: "
        f"`{param}`.{hint}",
        param=param,
        code="MissingParameter",
    )


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _param(loc: tuple[Any, ...]) -> str:
    """``content[2].image_url.url`` from pydantic's location (minus its union tags)."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "content" and parts[2] in ITEM_TYPES:
        del parts[2]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _ark_error(err: Any) -> InvalidRequest:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type")
    param = _param(loc)
    empty = kind in ("too_short", "string_too_short") and loc in {("model",), ("content",)}
    if kind == "missing" or empty:
        return missing(param)
    if kind == "union_tag_not_found":
        return missing(f"{param}.type")
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        return invalid(
            f"{param}.type",
            f"unknown content type {str(tag)[:40]!r}; use text, image_url, video_url or audio_url",
        )
    if kind == "extra_forbidden":
        if loc == ("prompt",):
            return invalid(
                "prompt",
                'Ark bodies carry the prompt as a {"type": "text", "text": …} item in '
                "`content`, not as a top-level field",
            )
        where = "a field of this content item" if len(loc) > 1 else "a parameter of this API"
        return invalid(param, f"it is not {where}")
    message = str(err.get("msg", "invalid value"))
    return invalid(param, message[:1].lower() + message[1:])


def parse_ark_body(data: object) -> ArkCreate:
    if not isinstance(data, dict):
        raise InvalidRequest(
            "we could not parse the JSON body of your request: it must be a JSON object "
            "with `model` and `content`",
            code="InvalidParameter",
        )
    data = _drop_nulls(data)
    try:
        return ArkCreate.model_validate(data)
    except ValidationError as exc:
        raise _ark_error(exc.errors()[0]) from None


def _check_unsupported(body: ArkCreate) -> None:
    if body.frames is not None:
        raise invalid(
            "frames",
            "the models here take the length in seconds: use `duration` instead",
            UNSUPPORTED,
        )
    if body.draft:
        raise invalid("draft", "draft videos are not supported by these models (Seedance 2.0)")
    if any(isinstance(i, ArkDraftTaskItem) for i in body.content):
        i = next(n for n, item in enumerate(body.content) if isinstance(item, ArkDraftTaskItem))
        raise invalid(f"content[{i}].type", "draft_task items are not supported", UNSUPPORTED)
    if body.service_tier == "flex":
        raise invalid("service_tier", "Seedance 2.0 models do not support flex; use default")
    task_type = body.omni_reference_task_type
    if task_type in ("edit", "extend") and not any(
        isinstance(i, ArkVideoItem) for i in body.content
    ):
        raise invalid(
            "omni_reference_task_type",
            f"an {task_type} task works on a video: add the video to {task_type} as a "
            '{"type": "video_url", "video_url": {"url": …}, "role": "reference_video"} item '
            "(the first video item is the one worked on)",
        )
    if body.callback_url is not None and not body.callback_url.startswith(("http://", "https://")):
        raise invalid("callback_url", "it must be an http(s) URL")


# Ark fields kept with the task: passed to Ark routes unchanged, echoed by GET on this
# surface; ``execution_expires_after`` is also the task's deadline.
PASSTHROUGH = (
    "service_tier",
    "execution_expires_after",
    "priority",
    "camera_fixed",
    "safety_identifier",
    "tools",
    "omni_reference_task_type",
    "output_format",
)


def ark_extras(body: ArkCreate) -> dict[str, Any]:
    dumped = body.model_dump(include=set(PASSTHROUGH), exclude_none=True, mode="json")
    return {name: dumped[name] for name in PASSTHROUGH if name in dumped}


def to_generation_request(body: ArkCreate) -> GenerationRequest:
    """The prompt is the text item (several are joined by newlines); roles as API.md §1.1."""
    _check_unsupported(body)
    items = body.content
    texts = [i.text for i in items if isinstance(i, ArkTextItem)]
    if not texts:
        raise missing(
            "content", ' Add a {"type": "text", "text": "<prompt>"} item with the prompt.'
        )
    refs = build_references(
        [
            ("image", i.image_url.url, i.role)
            if isinstance(i, ArkImageItem)
            else ("video", i.video_url.url, i.role)
            if isinstance(i, ArkVideoItem)
            else ("audio", i.audio_url.url, i.role)
            for i in items
            if isinstance(i, ArkImageItem | ArkVideoItem | ArkAudioItem)
        ]
    )
    task_type = body.omni_reference_task_type
    return GenerationRequest(
        surface="ark",
        # Seedance's edit / extend of video 1 (Ark passes them on; the sandbox does them).
        operation=task_type if task_type in ("edit", "extend") else "generate",
        extras=ark_extras(body),
        model=body.model,
        prompt="\n".join(texts),
        references=refs,
        ratio=default_ratio(body.ratio, refs),
        resolution=body.resolution or "720p",
        duration=body.duration if body.duration is not None else 5,
        seed=body.seed,
        generate_audio=True if body.generate_audio is None else body.generate_audio,
        watermark=bool(body.watermark),
        return_last_frame=bool(body.return_last_frame),
        callback_url=body.callback_url,
    )


def openapi_body_schema() -> dict[str, Any]:
    """The JSON schema of :class:`ArkCreate` with its definitions inlined (for /docs)."""
    schema = ArkCreate.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items() if k != "discriminator"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result
