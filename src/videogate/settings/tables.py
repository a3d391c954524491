"""The TOML tables of the settings: [[groups]], [[models]], [[aliases]] and [[routes]]."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: In the data dir: the local key (see ``Settings.local_key_path``).
LOCAL_KEY_FILE = "local_api_key"

TaskType = Literal[
    "text", "first_frame", "first_last_frame", "reference", "remix", "edit", "extend"
]


class GroupConfig(BaseModel):
    """A key group (``[[groups]]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    price_multiplier: Decimal = Field(default=Decimal(1), ge=0)
    requests_per_minute: int | None = Field(default=None, ge=1, description="per key")
    max_unfinished_tasks: int | None = Field(default=None, ge=1, description="per key")


class PriceTierConfig(BaseModel):
    """The rates of one resolution tier (``tiers = { "1080p" = { per_million = 7.7 } }``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_million: Decimal = Field(ge=0)
    per_million_with_video: Decimal | None = Field(default=None, ge=0)


class PriceConfig(BaseModel):
    """``price = { unit = "token", per_million = 7.0, … }`` of a ``[[models]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["token", "second"]
    per_million: Decimal = Field(default=Decimal(0), ge=0)
    per_million_with_video: Decimal | None = Field(default=None, ge=0)
    per_second: Decimal = Field(default=Decimal(0), ge=0)
    currency: str = Field(default="USD", min_length=3, max_length=10)
    tiers: dict[str, PriceTierConfig] = Field(
        default_factory=dict, description="rates by resolution where they differ"
    )


class ReferenceLimitsConfig(BaseModel):
    """``references = { max_images = 30, … }``: any field of ``catalog.ReferenceLimits``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_images: int | None = Field(default=None, ge=0)
    max_videos: int | None = Field(default=None, ge=0)
    min_video_seconds: float | None = Field(default=None, ge=0)
    max_video_seconds: float | None = Field(default=None, ge=0)
    max_video_total_seconds: float | None = Field(default=None, ge=0)
    max_audios: int | None = Field(default=None, ge=0)
    min_audio_seconds: float | None = Field(default=None, ge=0)
    max_audio_seconds: float | None = Field(default=None, ge=0)
    max_audio_total_seconds: float | None = Field(default=None, ge=0)
    max_image_bytes: int | None = Field(default=None, ge=1)
    max_video_bytes: int | None = Field(default=None, ge=1)
    max_audio_bytes: int | None = Field(default=None, ge=1)


class ModelConfig(BaseModel):
    """A ``[[models]]`` entry of the catalog (``catalog.toml``, or a deployment's TOML).

    For a model the catalog already has, only the fields given are replaced; a new name
    is a new model whose unset fields take the Seedance 2.0 defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    resolutions: tuple[Literal["480p", "720p", "1080p", "4k"], ...] | None = None
    ratios: tuple[Literal["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"], ...] | None = (
        None
    )
    min_duration: int | None = Field(default=None, ge=1)
    max_duration: int | None = Field(default=None, ge=1)
    default_duration: int | None = Field(default=None, ge=1)
    default_resolution: str | None = None
    audio: bool | None = None
    task_types: tuple[TaskType, ...] | None = None
    output_formats: tuple[Literal["mp4", "mov"], ...] | None = Field(
        default=None, min_length=1, description="containers it delivers (`output_format`)"
    )
    references: ReferenceLimitsConfig | None = None
    price: PriceConfig | None = None
    source: str | None = Field(default=None, description="where the facts come from")


class AliasConfig(BaseModel):
    """An ``[[aliases]]`` entry: a client-facing model name served by a catalog model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200, description="the catalog model it serves")


class LocalModelConfig(BaseModel):
    """``local = { dir = "…", family = "wan-t2v" }`` of a ``provider = "diffusers"`` route:
    a model on this machine's GPU (see docs/local-models.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(description="a diffusers save_pretrained directory (model_index.json)")
    family: Literal["wan-t2v", "wan-i2v", "ltx2"]
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    device: str = Field(default="cuda", min_length=1, description="cuda, cuda:1, cpu, mps")
    cpu_offload: bool = Field(default=False, description="model CPU offload (less VRAM, slower)")
    steps: int | None = Field(default=None, ge=1, le=200, description="default: the family's")
    guidance_scale: float | None = Field(default=None, ge=0, description="default: the family's")
    fps: int | None = Field(default=None, ge=1, le=60, description="default: the family's")
    sizes: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description='"WxH" sizes the model was trained for (e.g. 480p only for Wan 1.3B); '
        "default: the family's",
    )

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for size in value or ():
            w, _, h = size.partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) % 16 == 0 and int(h) % 16 == 0):
                raise ValueError(f"size {size!r} is not WIDTHxHEIGHT in multiples of 16")
        return value

    @property
    def size_pairs(self) -> tuple[tuple[int, int], ...] | None:
        if self.sizes is None:
            return None
        return tuple((int(w), int(h)) for w, _, h in (s.partition("x") for s in self.sizes))


class RouteConfig(BaseModel):
    """One way to serve a public model (``[[routes]]`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200, description="public model name")
    provider: str = Field(
        min_length=1, max_length=50, description="provider kind: a module of videogate.providers"
    )
    base_url: str = ""
    api_key_env: str = Field(default="", description="environment variable holding the key")
    upstream_model: str = Field(default="", description="model name upstream; default: model")
    priority: int = Field(default=0, description="lower is tried first")
    weight: int = Field(default=1, ge=0, description="weighted random within a priority")
    max_in_flight: int = Field(default=100, ge=1, description="unfinished upstream tasks")
    groups: tuple[str, ...] = ("default",)
    enabled: bool = True
    request_format: Literal["json", "multipart"] = Field(
        default="json", description="openai provider: relay JSON body or OpenAI multipart form"
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="per upstream request")
    max_concurrent_polls: int = Field(default=32, ge=1, description="per worker")
    local: LocalModelConfig | None = Field(
        default=None, description="a model on this machine (the diffusers provider)"
    )
