"""The OpenAI videos form: ``POST /v1/videos`` as ``multipart/form-data`` (API.md §1.3).

The ``openai`` SDK's ``client.videos.create(...)`` always sends a multipart form with
``prompt``, ``model``, ``seconds`` (a string), ``size`` (``"WxH"``) and ``input_reference``
(an uploaded file). This module turns that form into a :class:`GenerationRequest`; the
relay JSON body has its own parser (:mod:`videogate.api.relay_schemas`).

How the OpenAI fields map (also in docs/api.md §1.3):

- ``model`` defaults to OpenAI's default, ``sora-2``, an alias (``[[aliases]]``) served by
  Seedance 2.0 fast; the name the client used is what it sees back in ``model``.
- ``seconds`` is the duration, a whole number as a string (default ``"4"``, OpenAI's
  default); the model's range applies (4-15 for Seedance 2.0, or ``"-1"``: model chooses).
- ``size`` names the output frame. Every Seedance output size maps to its own ratio and
  resolution (``1280x720`` is 16:9 720p, ``720x1280`` is 9:16 720p). The two OpenAI-only
  sizes map to the nearest Seedance frame: ``1792x1024`` (aspect 1.75, 1.8 MP) to 16:9
  1080p (1920x1080) and ``1024x1792`` to 9:16 1080p (1080x1920), so they need a model with
  1080p. Omitted: OpenAI's default ``720x1280`` (9:16 720p), or with ``input_reference``
  ``adaptive`` at 720p (the frame follows the image). OpenAI's own sizes are never refused:
  where the model lacks the resolution one asks for, the nearest resolution it offers is
  used (``1792x1024`` on Seedance 2.0 fast renders 16:9 720p); the task still shows the
  size that was asked for.
- ``input_reference`` is the first frame: an uploaded image file (stored as an upload of
  the caller's key, as ``POST /v1/files`` does, and referenced by a URL this server
  issued), or an object ``{"image_url": "https://… | data:…"}`` / ``{"file_id": "file_…"}``
  sent as a JSON string in the field or as bracketed fields
  (``input_reference[image_url]``, which is how the SDK serializes a nested object).
- Seedance extras a client may add (``extra_body``): ``seed``, ``generate_audio``,
  ``watermark``, ``return_last_frame``, ``callback_url``.
- OpenAI fields with no Seedance meaning (``user``, ``quality``, ``metadata``,
  ``safety_identifier``) are accepted and ignored.

The same fields also come as a JSON body (:func:`json_to_form`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from videogate.api.openai_fields import (
    REF_KEYS,
    REFERENCE_HELP,
    RefSpec,
    boolean_field,
    callback_url_field,
    integer_field,
    reference_field,
    text_field,
    upload_field,
)
from videogate.api.openai_reference import reference_url, store_input_reference
from videogate.api.openai_sizes import (
    DEFAULT_SECONDS,
    DEFAULT_SIZE,
    SIZE_FRAMES,
    SUPPORTED_SIZES,
    parse_seconds,
    parse_size,
    size_to_frame,
)
from videogate.catalog import OPENAI_DEFAULT_MODEL, ModelSpec
from videogate.context import AppContext
from videogate.errors import InvalidRequest, VideogateError
from videogate.request import MAX_PROMPT_CHARS, GenerationRequest, Reference
from videogate.service.keys import Caller
from videogate.settings import Settings

__all__ = [
    "DEFAULT_MODEL",
    "FORM_SCHEMA",
    "SIZE_FRAMES",
    "SUPPORTED_SIZES",
    "OpenAIForm",
    "as_form_error",
    "form_body_limit",
    "json_to_form",
    "parse_form",
    "read_openai_form",
    "read_openai_json",
]

DEFAULT_MODEL = OPENAI_DEFAULT_MODEL
# With an input_reference and no size, the frame follows the image at this resolution.
DEFAULT_REFERENCE_RESOLUTION = "720p"

# A data: URL in input_reference[image_url] is a text part; OpenAI caps it at 20 MiB.
MAX_TEXT_PART = 32 * 1024 * 1024
_BODY_SLACK = 1024 * 1024
_BOOL_FIELDS = ("generate_audio", "watermark", "return_last_frame")
_OPENAI_FIELDS = ("prompt", "model", "seconds", "size", "input_reference")
_EXTRA_FIELDS = ("seed", *_BOOL_FIELDS, "callback_url")
# OpenAI fields without a Seedance meaning: accepted, ignored.
IGNORED_FIELDS = ("user", "quality", "metadata", "safety_identifier")
_KNOWN_FIELDS = frozenset(
    (
        *_OPENAI_FIELDS,
        *_EXTRA_FIELDS,
        *IGNORED_FIELDS,
        *(f"input_reference[{k}]" for k in REF_KEYS),
    )
)


@dataclass(frozen=True)
class OpenAIForm:
    """The validated fields of the form; the reference is resolved separately."""

    model: str
    prompt: str
    duration: int
    frame: tuple[str, str] | None  # (ratio, resolution) from ``size``
    upload: UploadFile | None
    reference: RefSpec | None
    alias: str | None = None
    size: str | None = None  # as asked, shown back when it is one of OpenAI's
    seed: int | None = None
    generate_audio: bool = True
    watermark: bool = False
    return_last_frame: bool = False
    callback_url: str | None = None

    def to_request(self, reference_url: str | None) -> GenerationRequest:
        refs: tuple[Reference, ...] = ()
        if reference_url is not None:
            refs = (Reference(kind="image", role="first_frame", url=reference_url, index=1),)
        if self.frame is not None:
            ratio, resolution = self.frame
        elif refs:
            ratio, resolution = "adaptive", DEFAULT_REFERENCE_RESOLUTION
        else:
            ratio, resolution = size_to_frame(DEFAULT_SIZE)
        return GenerationRequest(
            model=self.model,
            prompt=self.prompt,
            references=refs,
            ratio=ratio,
            resolution=resolution,
            duration=self.duration,
            seed=self.seed,
            generate_audio=self.generate_audio,
            watermark=self.watermark,
            return_last_frame=self.return_last_frame,
            callback_url=self.callback_url,
            surface="openai",
            alias=self.alias,
            size=self.size,
        )


def form_body_limit(settings: Settings) -> int:
    """The largest multipart body we read: one file or one long text part, plus headers."""
    return max(settings.max_upload_bytes, MAX_TEXT_PART) + _BODY_SLACK


async def read_openai_form(
    request: Request,
    ctx: AppContext,
    caller: Caller,
    precheck: Callable[[GenerationRequest], None] | None = None,
) -> GenerationRequest:
    """Parse the multipart create, store an uploaded ``input_reference``, build the request.

    ``precheck`` sees the request before the upload is stored (with a stand-in reference),
    so that a request bound to fail (unknown model, bad field) stores nothing.
    """
    limit = form_body_limit(ctx.settings)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise InvalidRequest(
            f"the form is over {limit // (1024 * 1024)} MB; input_reference images are "
            f"limited to {ctx.settings.max_upload_bytes // (1024 * 1024)} MB",
            param="input_reference",
        )
    try:
        form = await request.form(max_files=1, max_fields=32, max_part_size=MAX_TEXT_PART)
    except VideogateError:
        raise  # the body grew over its cap while streaming (api/edge.py): a 413
    except Exception as exc:  # the multipart parser raises several unrelated types
        detail = str(getattr(exc, "detail", None) or exc or type(exc).__name__).rstrip(".")
        raise InvalidRequest(
            f"could not read the multipart form: {detail}; send prompt, model, seconds, size "
            "and at most one input_reference file",
        ) from None
    try:
        return await _build(ctx, caller, parse_form(form, ctx.models, ctx.aliases), precheck)
    finally:
        await form.close()


async def read_openai_json(
    data: Mapping[str, Any],
    ctx: AppContext,
    caller: Caller,
    precheck: Callable[[GenerationRequest], None] | None = None,
) -> GenerationRequest:
    """The same create as a JSON body (``input_reference`` as ``{image_url}``/``{file_id}``)."""
    fields = parse_form(json_to_form(data), ctx.models, ctx.aliases)
    return await _build(ctx, caller, fields, precheck)


async def _build(
    ctx: AppContext,
    caller: Caller,
    fields: OpenAIForm,
    precheck: Callable[[GenerationRequest], None] | None,
) -> GenerationRequest:
    if precheck is not None:
        has_reference = fields.upload is not None or fields.reference is not None
        precheck(fields.to_request("data:," if has_reference else None))
    url: str | None = None
    if fields.upload is not None:
        url = await store_input_reference(ctx, caller, fields.upload)
    elif fields.reference is not None:
        url = await reference_url(ctx, caller, fields.reference)
    return fields.to_request(url)


def json_to_form(data: Mapping[str, Any]) -> FormData:
    """An OpenAI JSON create body as the form fields it stands for (so one parser checks
    both); ``metadata`` and the other ignored fields may hold anything."""
    items: list[tuple[str, str | UploadFile]] = []
    for key, value in data.items():
        if value is None or (key in IGNORED_FIELDS and not isinstance(value, str)):
            continue
        if key == "input_reference" and isinstance(value, dict):
            items.append((key, orjson.dumps(value).decode()))
        elif isinstance(value, bool):
            items.append((key, "true" if value else "false"))
        elif isinstance(value, int | str):
            items.append((key, str(value)))
        else:
            raise InvalidRequest(
                f"'{str(key)[:60]}' must be a string, a number or a boolean"
                + (f", or {REFERENCE_HELP}" if key == "input_reference" else ""),
                param=str(key)[:60],
            )
    return FormData(items)


def parse_form(
    form: FormData, models: Mapping[str, ModelSpec], aliases: Mapping[str, str] | None = None
) -> OpenAIForm:
    """Validate the text fields (no I/O); the model's capabilities bound seconds and size."""
    unknown = [k for k in form if k not in _KNOWN_FIELDS and not k.startswith("metadata[")]
    if unknown:
        raise InvalidRequest(
            f"unknown form field '{unknown[0][:60]}'; the form accepts "
            f"{', '.join(_OPENAI_FIELDS)} (and {', '.join(_EXTRA_FIELDS)})",
            param=unknown[0][:60],
        )
    prompt = text_field(form, "prompt")
    if prompt is None:
        raise InvalidRequest(
            "the form needs a 'prompt' field: the text that describes the video", param="prompt"
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed",
            param="prompt",
        )
    model = text_field(form, "model")
    if model is None:
        model = DEFAULT_MODEL
    elif not model.strip() or len(model) > 200:
        raise InvalidRequest(
            f"'model' must name a model (omit it for {DEFAULT_MODEL})", param="model"
        )
    alias: str | None = None
    if aliases and model in aliases:
        model, alias = aliases[model], model
    # An unknown model is reported by the task service (404 model_not_found).
    spec = models.get(model)
    size = text_field(form, "size")
    return OpenAIForm(
        model=model,
        alias=alias,
        size=size.strip().lower() if size is not None else None,
        prompt=prompt,
        duration=parse_seconds(text_field(form, "seconds"), spec),
        frame=parse_size(size, spec),
        upload=upload_field(form),
        reference=reference_field(form),
        seed=integer_field(form, "seed"),
        generate_audio=boolean_field(form, "generate_audio", default=True),
        watermark=boolean_field(form, "watermark", default=False),
        return_last_frame=boolean_field(form, "return_last_frame", default=False),
        callback_url=callback_url_field(form),
    )


def as_form_error(exc: InvalidRequest) -> InvalidRequest:
    """Name ``input_reference`` in errors the reference pipeline reports for "image 1"."""
    if exc.param == "content" and exc.message.startswith("image 1:"):
        return InvalidRequest(
            f"input_reference:{exc.message.removeprefix('image 1:')}", param="input_reference"
        )
    return exc


# --- OpenAPI ----------------------------------------------------------------------------------

FORM_SCHEMA: dict[str, Any] = {
    "title": "OpenAIVideoForm",
    "description": (
        "The OpenAI videos form (what the openai SDK sends). size maps to ratio + "
        "resolution: Seedance output sizes map to themselves; 1792x1024 -> 16:9 1080p and "
        "1024x1792 -> 9:16 1080p."
    ),
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
        "model": {"type": "string", "default": DEFAULT_MODEL},
        "seconds": {
            "type": "string",
            "default": str(DEFAULT_SECONDS),
            "pattern": r"^-?\d{1,4}$",
            "description": "Duration in whole seconds, as a string; the model's range applies.",
            "examples": ["4", "8", "12"],
        },
        "size": {
            "type": "string",
            "enum": list(SUPPORTED_SIZES),
            "default": DEFAULT_SIZE,
            "description": "Output WxH; with input_reference and no size the frame follows "
            "the image (720p).",
        },
        "input_reference": {
            "description": "The first frame: an image file, or a JSON string "
            '{"image_url": "https://… | data:…"} or {"file_id": "file_…"}.',
            "oneOf": [
                {"type": "string", "format": "binary"},
                {"type": "string", "contentMediaType": "application/json"},
            ],
        },
        "input_reference[image_url]": {"type": "string"},
        "input_reference[file_id]": {"type": "string"},
        "seed": {"type": "integer", "minimum": -1, "maximum": 2**32 - 1},
        "generate_audio": {"type": "boolean", "default": True},
        "watermark": {"type": "boolean", "default": False},
        "return_last_frame": {"type": "boolean", "default": False},
        "callback_url": {"type": "string", "maxLength": 2048},
    },
}
