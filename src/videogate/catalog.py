"""The models videogate serves, as data: ``catalog.toml`` (shipped) extended or overridden by
the deployment's ``[[models]]`` and ``[[aliases]]`` (API.md §1.1, §4; docs/models.md).

Every consumer reads the same :class:`ModelSpec`: the request checks, ``GET /v1/models``,
the estimate, the charge and ``videogate models``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from videogate.media.sizes import RATIOS, RESOLUTIONS
from videogate.pricing import FREE, Price
from videogate.settings import AliasConfig, ModelConfig, PriceConfig


@dataclass(frozen=True)
class ReferenceLimits:
    """Limits on multimodal references; the defaults are Seedance 2.0's (API.md §1.1)."""

    max_images: int = 9
    max_videos: int = 3
    min_video_seconds: float = 2.0
    max_video_seconds: float = 15.0
    max_video_total_seconds: float = 15.0
    max_audios: int = 3
    min_audio_seconds: float = 2.0
    max_audio_seconds: float = 15.0
    max_audio_total_seconds: float = 15.0
    max_image_bytes: int = 30 * 1024 * 1024
    max_video_bytes: int = 50 * 1024 * 1024
    max_audio_bytes: int = 15 * 1024 * 1024
    min_image_side: int = 300
    max_image_side: int = 6000
    min_image_aspect: float = 0.4
    max_image_aspect: float = 2.5


ALL_TASK_TYPES = ("text", "first_frame", "first_last_frame", "reference", "remix", "edit", "extend")
GENERATE_TYPES = ("text", "first_frame", "first_last_frame", "reference")


@dataclass(frozen=True)
class ModelSpec:
    """A public model name with what it accepts and what it costs."""

    name: str
    description: str
    resolutions: tuple[str, ...] = RESOLUTIONS
    ratios: tuple[str, ...] = (*RATIOS, "adaptive")
    min_duration: int = 4
    max_duration: int = 15
    default_duration: int = 5
    default_resolution: str = "720p"
    audio: bool = True
    requires_image: bool = False  # image-to-video: one first-frame image is required
    limits: ReferenceLimits = field(default_factory=ReferenceLimits)
    task_types: tuple[str, ...] = GENERATE_TYPES
    #: Containers the video may be asked in (Ark's ``output_format``); the first is the default.
    output_formats: tuple[str, ...] = ("mp4",)
    price: Price = FREE
    source: str = ""
    aliases: tuple[str, ...] = ()

    def supports(self, task_type: str) -> bool:
        return task_type in self.task_types

    def as_public(self) -> dict[str, object]:
        return {
            "id": self.name,
            "object": "model",
            "owned_by": "videogate",
            "description": self.description,
            "aliases": list(self.aliases),
            "capabilities": {
                "resolutions": list(self.resolutions),
                "ratios": list(self.ratios),
                "durations": {"min": self.min_duration, "max": self.max_duration, "auto": -1},
                "default_duration": self.default_duration,
                "default_resolution": self.default_resolution,
                "audio": self.audio,
                "fps": 24,
                "task_types": list(self.task_types),
                "output_formats": list(self.output_formats),
                "references": {
                    "images": self.limits.max_images,
                    "videos": self.limits.max_videos,
                    "video_total_seconds": self.limits.max_video_total_seconds,
                    "audios": self.limits.max_audios,
                    "audio_total_seconds": self.limits.max_audio_total_seconds,
                },
            },
        }


SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_2_FAST = "doubao-seedance-2-0-fast-260128"
SEEDANCE_2_MINI = "dreamina-seedance-2-0-mini-260615"
SEEDANCE_2_5 = "doubao-seedance-2-5-260628"
SANDBOX = "sandbox"
#: What OpenAI clients get when they name no model (OpenAI's own default).
OPENAI_DEFAULT_MODEL = "sora-2"


def price_from_config(p: PriceConfig) -> Price:
    return Price(
        unit=p.unit,
        per_million=p.per_million,
        per_million_with_video=p.per_million_with_video,
        per_second=p.per_second,
        currency=p.currency,
        tiers=tuple(
            (name, t.per_million, t.per_million_with_video) for name, t in sorted(p.tiers.items())
        ),
    )


def apply_config(base: ModelSpec | None, entry: ModelConfig) -> ModelSpec:
    """``base`` with the fields ``entry`` gives replaced (a new model when ``base`` is None)."""
    spec = base or ModelSpec(entry.name, entry.description or entry.name)
    given = entry.model_dump(exclude_unset=True, exclude={"name", "references", "price"})
    updates: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if entry.references is not None:
        limits = entry.references.model_dump(exclude_none=True)
        updates["limits"] = replace(spec.limits, **limits)
    if entry.price is not None:
        updates["price"] = price_from_config(entry.price)
    spec = replace(spec, **updates)
    if spec.default_resolution not in spec.resolutions:
        spec = replace(spec, default_resolution=spec.resolutions[0])
    if not spec.min_duration <= spec.default_duration <= spec.max_duration:
        spec = replace(spec, default_duration=spec.min_duration)
    return spec


def _shipped() -> dict[str, Any]:
    text = resources.files("videogate").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_catalog(
    models: Iterable[ModelConfig] = (), aliases: Iterable[AliasConfig] = ()
) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """The shipped catalog with the deployment's entries applied: models by name, and
    aliases (client-facing name -> model). An alias of an unknown model is an error."""
    shipped = _shipped()
    specs: dict[str, ModelSpec] = {}
    for entry in [ModelConfig.model_validate(m) for m in shipped.get("models", [])] + list(models):
        specs[entry.name] = apply_config(specs.get(entry.name), entry)
    alias_map: dict[str, str] = {}
    for alias in [AliasConfig.model_validate(a) for a in shipped.get("aliases", [])] + list(
        aliases
    ):
        alias_map[alias.name] = alias.model
    return specs, alias_map


def attach_aliases(specs: dict[str, ModelSpec], aliases: Mapping[str, str]) -> None:
    """Check every alias names a known model and list it on that model."""
    for name, target in aliases.items():
        if target not in specs:
            raise ValueError(
                f"alias {name!r} names model {target!r}, which is not in the catalog; "
                f"known models: {', '.join(sorted(specs))}"
            )
        if name in specs:
            raise ValueError(f"alias {name!r} is also the name of a model; rename one of them")
    for model in list(specs):
        names = tuple(sorted(a for a, t in aliases.items() if t == model))
        specs[model] = replace(specs[model], aliases=names)


def builtin_models() -> dict[str, ModelSpec]:
    """The shipped catalog alone (tests, tools)."""
    return load_catalog()[0]
