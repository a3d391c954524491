"""OpenAI's ``size`` and ``seconds`` on a Seedance model (API.md §1.3, "Models, aliases and sizes").

Every Seedance output size maps to its own ratio and resolution; OpenAI's two sizes that
Seedance does not render map to the nearest Seedance frame, and OpenAI's own sizes fall
back to the nearest resolution a model offers instead of being refused.
"""

from __future__ import annotations

import re

from videogate.catalog import ModelSpec
from videogate.errors import InvalidRequest
from videogate.media.sizes import OPENAI_SIZES, OUTPUT_SIZES, nearest_resolution

DEFAULT_SECONDS = 4
DEFAULT_SIZE = "720x1280"

_OPENAI_SIZES = ("1280x720", "720x1280", "1792x1024", "1024x1792")
# Every accepted size and its (ratio, resolution): the Seedance output sizes, plus the above.
SIZE_FRAMES: dict[str, tuple[str, str]] = {
    f"{w}x{h}": (ratio, resolution)
    for ratio, by_res in OUTPUT_SIZES.items()
    for resolution, (w, h) in by_res.items()
}
SIZE_FRAMES.update(OPENAI_SIZES)
# As error messages list them: the OpenAI sizes first.
SUPPORTED_SIZES: tuple[str, ...] = (
    *_OPENAI_SIZES,
    *(s for s in SIZE_FRAMES if s not in _OPENAI_SIZES),
)
_SECONDS = re.compile(r"-?\d{1,4}")


def size_to_frame(size: str) -> tuple[str, str]:
    """``"1280x720"`` → ``("16:9", "720p")``; the OpenAI-only sizes map to the nearest frame."""
    mapped = SIZE_FRAMES.get(size)
    if mapped is None:
        raise InvalidRequest(
            f"size '{size[:40]}' is not supported; use one of: {', '.join(SUPPORTED_SIZES)}",
            param="size",
        )
    return mapped


def parse_seconds(value: str | None, spec: ModelSpec | None) -> int:
    if value is None:
        return DEFAULT_SECONDS
    allowed = (
        f"{spec.name} accepts {spec.min_duration}-{spec.max_duration} seconds, "
        'or "-1" to let the model choose'
        if spec is not None
        else 'for example "4", "8" or "12"'
    )
    text = value.strip()
    if not _SECONDS.fullmatch(text):
        raise InvalidRequest(
            f"seconds '{value[:20]}' is not a whole number of seconds; {allowed}",
            param="seconds",
        )
    seconds = int(text)
    if spec is not None and seconds != -1 and not spec.min_duration <= seconds <= spec.max_duration:
        raise InvalidRequest(f"seconds {seconds} is out of range: {allowed}", param="seconds")
    return seconds


def parse_size(value: str | None, spec: ModelSpec | None) -> tuple[str, str] | None:
    if value is None:
        return None
    size = value.strip().lower()
    ratio, resolution = size_to_frame(size)
    if spec is not None and size in OPENAI_SIZES and ratio in spec.ratios:
        # OpenAI's own sizes are never refused: the nearest resolution the model offers.
        return ratio, nearest_resolution(resolution, spec.resolutions)
    if spec is not None and (resolution not in spec.resolutions or ratio not in spec.ratios):
        offered = [
            s for s, (r, res) in SIZE_FRAMES.items() if res in spec.resolutions and r in spec.ratios
        ]
        raise InvalidRequest(
            f"size '{size}' is {ratio} at {resolution}, which {spec.name} does not offer; "
            f"use one of: {', '.join(offered)} (or a model with {resolution})",
            param="size",
        )
    return ratio, resolution
