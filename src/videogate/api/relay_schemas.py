"""The request body of ``POST /v1/videos`` (API.md §1.1) and its translation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from videogate.errors import InvalidRequest
from videogate.request import GenerationRequest, build_references, default_ratio

MAX_URL_CHARS = 90 * 1024 * 1024  # data: URLs carry whole files


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UrlObject(_Strict):
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS)


class TextItem(_Strict):
    type: Literal["text"]
    text: str


class ImageItem(_Strict):
    type: Literal["image_url"]
    image_url: UrlObject
    role: Literal["first_frame", "last_frame", "reference_image"] | None = None


class VideoItem(_Strict):
    type: Literal["video_url"]
    video_url: UrlObject
    role: Literal["reference_video"] | None = None


class AudioItem(_Strict):
    type: Literal["audio_url"]
    audio_url: UrlObject
    role: Literal["reference_audio"] | None = None


ContentItem = Annotated[TextItem | ImageItem | VideoItem | AudioItem, Field(discriminator="type")]


class RelayCreate(_Strict):
    """``POST /v1/videos`` JSON body, as Seedance relays document it."""

    model: str = Field(min_length=1, max_length=200)
    prompt: str | None = None
    content: list[ContentItem] | None = Field(default=None, max_length=64)
    ratio: str | None = Field(default=None, max_length=20)
    duration: int | None = None
    resolution: str | None = Field(default=None, max_length=20)
    watermark: bool | None = None
    generate_audio: bool | None = None
    seed: int | None = None
    return_last_frame: bool | None = None
    callback_url: str | None = Field(default=None, max_length=2048)
    # Ark fields that relays pass through; accepted so existing bodies keep working.
    service_tier: str | None = Field(default=None, max_length=50)
    execution_expires_after: int | None = None
    camera_fixed: bool | None = None
    safety_identifier: str | None = Field(default=None, max_length=200)
    priority: int | None = None
    metadata: dict[str, Any] | None = None


def to_generation_request(body: RelayCreate) -> GenerationRequest:
    """Normalize the relay body; the top-level prompt wins over a text item."""
    items = body.content or []
    text = next((i.text for i in items if isinstance(i, TextItem)), None)
    prompt = body.prompt if body.prompt is not None else text
    if prompt is None:
        raise InvalidRequest(
            "'prompt' is required (or a {\"type\": \"text\"} item in 'content')", param="prompt"
        )
    refs = build_references(
        [
            ("image", i.image_url.url, i.role)
            if isinstance(i, ImageItem)
            else ("video", i.video_url.url, i.role)
            if isinstance(i, VideoItem)
            else ("audio", i.audio_url.url, i.role)
            for i in items
            if isinstance(i, ImageItem | VideoItem | AudioItem)
        ]
    )
    return GenerationRequest(
        model=body.model,
        prompt=prompt,
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
