"""The normalized generation request every surface is turned into, and its validation.

Surfaces (relay JSON, OpenAI form, Ark) parse their own shapes and build a
:class:`GenerationRequest`; the checks against a model's capabilities live here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from videogate.catalog import ModelSpec
from videogate.errors import InvalidRequest
from videogate.fields import has_nul
from videogate.media.sizes import nearest_ratio, output_size

MAX_PROMPT_CHARS = 32_000
MAX_SEED = 2**32 - 1

RefKind = Literal["image", "video", "audio"]
# The API shape a request came in: it decides how the task is shown and what webhooks say.
Surface = Literal["relay", "openai", "ark"]


# What to do: generate from scratch, or rework a finished task's video (the source).
Operation = Literal["generate", "remix", "edit", "extend"]
IMAGE_ROLES = ("first_frame", "last_frame", "reference_image")
#: An upstream asset library's reference (Ark: ``asset://<id>``): never fetched here, only
#: passed to an upstream that resolves it (see ``Capabilities.resolves_assets``).
ASSET_SCHEME = "asset://"
DEFAULT_OUTPUT_FORMAT = "mp4"
ROLE_OF_KIND: dict[str, str] = {"video": "reference_video", "audio": "reference_audio"}


class Reference(BaseModel):
    """One multimodal reference, in request order within its kind ("image 2")."""

    model_config = ConfigDict(frozen=True)

    kind: RefKind
    role: str
    url: str
    index: int
    # Filled once the reference is fetched and probed:
    blob_key: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    bytes: int | None = None

    @property
    def label(self) -> str:
        """How the prompt and error messages name it: "image 2", "video 1"."""
        return f"{self.kind} {self.index}"

    @property
    def is_asset(self) -> bool:
        return self.url.startswith(ASSET_SCHEME)


class GenerationRequest(BaseModel):
    """What to generate, independent of the surface it came in on."""

    model_config = ConfigDict(frozen=True)

    model: str
    prompt: str
    references: tuple[Reference, ...] = ()
    ratio: str = "16:9"
    resolution: str = "720p"
    duration: int = 5
    seed: int | None = None
    generate_audio: bool = True
    watermark: bool = False
    return_last_frame: bool = False
    callback_url: str | None = None
    surface: Surface = "relay"
    # The client-facing name when the client asked for an alias (``sora-2``): shown as
    # ``model``; ``model`` itself is the served catalog model.
    alias: str | None = None
    # The OpenAI size the client asked for (OpenAI-shaped requests), shown back as ``size``.
    size: str | None = None
    operation: Operation = "generate"
    # The finished task whose video is remixed, edited or extended.
    source_task_id: str | None = None
    # Length of the source video (extend: the output is the source plus ``duration``).
    source_seconds: float | None = None
    # Fields of the surface passed through unchanged to routes that speak it (Ark's
    # ``service_tier``, ``priority``, ``tools``…) and echoed back on that surface.
    extras: dict[str, Any] = {}

    @property
    def public_model(self) -> str:
        """The model name the client sees: the alias it used, else the served model."""
        return self.alias or self.model

    @property
    def output_format(self) -> str:
        """The container asked for (Ark's ``output_format``), kept with the surface fields."""
        value = self.extras.get("output_format")
        return value if isinstance(value, str) else DEFAULT_OUTPUT_FORMAT

    def assets(self) -> list[Reference]:
        """The references an upstream's asset library must resolve (``asset://…``)."""
        return [r for r in self.references if r.is_asset]

    def of_kind(self, kind: RefKind) -> list[Reference]:
        return [r for r in self.references if r.kind == kind]

    def with_role(self, role: str) -> Reference | None:
        return next((r for r in self.references if r.role == role), None)


def stored_output_format(request: Mapping[str, Any]) -> str:
    """:attr:`GenerationRequest.output_format` of a stored request, without validating it
    all (the engine reads it on every completion)."""
    extras = request.get("extras")
    value = extras.get("output_format") if isinstance(extras, Mapping) else None
    return value if isinstance(value, str) else DEFAULT_OUTPUT_FORMAT


def stored_surface(request: Mapping[str, Any]) -> str:
    """:attr:`GenerationRequest.surface` of a stored request (``Task.request``), without
    validating it all (counted on every finish)."""
    value = request.get("surface")
    return value if isinstance(value, str) else "relay"


def assign_image_roles(images: Sequence[tuple[str, str | None]]) -> list[str]:
    """Default the roles of image items: one image is a first frame, several are references."""
    if not images:
        return []
    if len(images) == 1 and images[0][1] is None:
        return ["first_frame"]
    return [role or "reference_image" for _, role in images]


def check_request(req: GenerationRequest, spec: ModelSpec) -> None:
    """Check everything that can be checked without fetching the references."""
    if not req.prompt.strip():
        raise InvalidRequest(
            "prompt is empty: send a non-empty 'prompt' (or a text item in 'content')",
            param="prompt",
        )
    if len(req.prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"prompt has {len(req.prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed",
            param="prompt",
        )
    if has_nul(req.prompt):
        raise InvalidRequest("prompt contains a NUL (\\u0000) character; remove it", param="prompt")
    if req.operation != "generate" and not spec.supports(req.operation):
        able = {"remix": "remixes", "edit": "edits", "extend": "extensions"}[req.operation]
        raise InvalidRequest(
            f"model {req.public_model} ({spec.name}) does not support video {able}; "
            f"it supports: {', '.join(spec.task_types)}. Use a model whose task types "
            f"include {req.operation!r} (GET /v1/models lists them)",
            param="model",
        )
    if req.output_format not in spec.output_formats:
        raise InvalidRequest(
            f"output_format '{req.output_format}' is not offered by model {req.public_model}; "
            f"it delivers {', '.join(spec.output_formats)} (GET /v1/models lists each "
            "model's output_formats)",
            param="output_format",
        )
    if req.resolution not in spec.resolutions:
        raise InvalidRequest(
            f"resolution '{req.resolution}' is not supported by {spec.name}; "
            f"use one of {', '.join(spec.resolutions)}",
            param="resolution",
        )
    if req.ratio not in spec.ratios:
        raise InvalidRequest(
            f"ratio '{req.ratio}' is not supported; use one of {', '.join(spec.ratios)}",
            param="ratio",
        )
    if req.duration != -1 and not spec.min_duration <= req.duration <= spec.max_duration:
        raise InvalidRequest(
            f"duration {req.duration} is out of range: {spec.name} accepts "
            f"{spec.min_duration}-{spec.max_duration} seconds, or -1 to let the model choose",
            param="duration",
        )
    if req.seed is not None and not -1 <= req.seed <= MAX_SEED:
        raise InvalidRequest(f"seed must be between -1 and {MAX_SEED}", param="seed")
    if req.generate_audio and not spec.audio:
        raise InvalidRequest(
            f"{spec.name} makes video without sound: send generate_audio: false "
            "(the default is true)",
            param="generate_audio",
        )
    _check_reference_counts(req, spec)
    for ref in req.assets():
        asset_id = ref.url[len(ASSET_SCHEME) :]
        if not asset_id or len(asset_id) > 256 or not asset_id.isprintable() or " " in asset_id:
            raise InvalidRequest(
                f"{ref.label}: '{ref.url[:80]}' is not an asset reference; use asset://<asset id>",
                param="content",
            )
    if spec.requires_image and not req.of_kind("image"):
        raise InvalidRequest(
            f"{spec.name} turns an image into a video: add one image (role first_frame)",
            param="content",
        )


def _check_reference_counts(req: GenerationRequest, spec: ModelSpec) -> None:
    limits = spec.limits
    images, videos, audios = req.of_kind("image"), req.of_kind("video"), req.of_kind("audio")
    if len(images) > limits.max_images:
        raise InvalidRequest(
            f"{len(images)} images given; at most {limits.max_images} are allowed", param="content"
        )
    if len(videos) > limits.max_videos:
        raise InvalidRequest(
            f"{len(videos)} videos given; at most {limits.max_videos} are allowed", param="content"
        )
    if len(audios) > limits.max_audios:
        raise InvalidRequest(
            f"{len(audios)} audio clips given; at most {limits.max_audios} are allowed",
            param="content",
        )
    if audios and not images and not videos:
        raise InvalidRequest(
            "audio cannot be the only reference: add at least one image or video",
            param="content",
        )
    roles = [img.role for img in images]
    frame_mode = any(r in ("first_frame", "last_frame") for r in roles)
    if frame_mode and "reference_image" in roles:
        raise InvalidRequest(
            "first_frame/last_frame images and reference_image images cannot be mixed: "
            "use either frame mode or reference mode",
            param="content",
        )
    for role in ("first_frame", "last_frame"):
        if roles.count(role) > 1:
            raise InvalidRequest(f"only one image may have role '{role}'", param="content")
    if "last_frame" in roles and "first_frame" not in roles:
        raise InvalidRequest("a last_frame image needs a first_frame image too", param="content")
    if frame_mode and (videos or audios):
        raise InvalidRequest(
            "first/last-frame mode cannot be combined with reference videos or audio; "
            "use role 'reference_image' for the images instead",
            param="content",
        )


def check_probed_references(req: GenerationRequest, spec: ModelSpec) -> None:
    """Check the limits that need the probed media (sizes, durations, totals)."""
    limits = spec.limits
    for ref in req.of_kind("image"):
        if ref.blob_key is None:
            continue  # not fetched (unreachable): the task fails for that instead
        w, h = ref.width or 0, ref.height or 0
        if ref.bytes is not None and ref.bytes > limits.max_image_bytes:
            raise InvalidRequest(
                f"{ref.label}: {ref.bytes / 1e6:.1f} MB is over the "
                f"{limits.max_image_bytes / 1e6:.0f} MB limit for images",
                param="content",
            )
        if not (limits.min_image_side <= w <= limits.max_image_side) or not (
            limits.min_image_side <= h <= limits.max_image_side
        ):
            raise InvalidRequest(
                f"{ref.label}: {w}x{h} px is outside the allowed "
                f"{limits.min_image_side}-{limits.max_image_side} px per side",
                param="content",
            )
        aspect = w / h
        if not limits.min_image_aspect <= aspect <= limits.max_image_aspect:
            raise InvalidRequest(
                f"{ref.label}: aspect ratio {aspect:.2f} is outside "
                f"{limits.min_image_aspect}-{limits.max_image_aspect}",
                param="content",
            )
    _check_timed(
        req,
        "video",
        limits.min_video_seconds,
        limits.max_video_seconds,
        limits.max_video_total_seconds,
        limits.max_video_bytes,
        "reference videos",
    )
    _check_timed(
        req,
        "audio",
        limits.min_audio_seconds,
        limits.max_audio_seconds,
        limits.max_audio_total_seconds,
        limits.max_audio_bytes,
        "reference audio",
    )


def _check_timed(
    req: GenerationRequest,
    kind: RefKind,
    min_s: float,
    max_s: float,
    max_total: float,
    max_bytes: int,
    what: str,
) -> None:
    total = 0.0
    for ref in req.of_kind(kind):
        if ref.blob_key is None:
            continue
        seconds = ref.duration or 0.0
        if ref.bytes is not None and ref.bytes > max_bytes:
            raise InvalidRequest(
                f"{ref.label}: {ref.bytes / 1e6:.1f} MB is over the "
                f"{max_bytes / 1e6:.0f} MB limit for {what}",
                param="content",
            )
        if seconds < min_s:
            raise InvalidRequest(
                f"{ref.label}: {seconds:.1f} s is under the {min_s:g} s minimum for {what}",
                param="content",
            )
        if seconds > max_s:
            raise InvalidRequest(
                f"{ref.label}: {seconds:.1f} s is over the {max_s:g} s maximum per clip for {what}",
                param="content",
            )
        total += seconds
        if total > max_total + 1e-6:
            raise InvalidRequest(
                f"{ref.label}: {total:.1f} s is over the {max_total:g} s total for {what}",
                param="content",
            )


def resolve_output(req: GenerationRequest) -> tuple[str, int, int]:
    """The concrete ratio and output size; ``adaptive`` follows the first image or video."""
    ratio = req.ratio
    if ratio == "adaptive":
        first = next(
            (r for r in req.references if r.kind in ("image", "video") and r.width and r.height),
            None,
        )
        ratio = (
            nearest_ratio(first.width, first.height)
            if first and first.width and first.height
            else "16:9"
        )
    width, height = output_size(ratio, req.resolution)
    return ratio, width, height


def build_references(items: Sequence[tuple[RefKind, str, str | None]]) -> tuple[Reference, ...]:
    """References from a surface's content items (kind, url, role) in request order:
    images get their default roles, every kind is numbered ("image 2")."""
    image_roles = iter(
        assign_image_roles([(url, role) for kind, url, role in items if kind == "image"])
    )
    counters = {"image": 0, "video": 0, "audio": 0}
    refs: list[Reference] = []
    for kind, url, role in items:
        counters[kind] += 1
        role = next(image_roles) if kind == "image" else ROLE_OF_KIND[kind]
        refs.append(Reference(kind=kind, role=role, url=url, index=counters[kind]))
    return tuple(refs)


def default_ratio(ratio: str | None, refs: Sequence[Reference]) -> str:
    """``adaptive`` when a first frame is given, else 16:9 (API.md §1.1)."""
    if ratio:
        return ratio
    return "adaptive" if any(r.role == "first_frame" for r in refs) else "16:9"
