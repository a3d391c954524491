"""Output frame sizes of Seedance 1.5 / 2.0 (API.md §4); the sandbox renders the same."""

from __future__ import annotations

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
RESOLUTIONS = ("480p", "720p", "1080p")
FPS = 24

OUTPUT_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "16:9": {"480p": (864, 496), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)},
    "4:3": {"480p": (752, 560), "720p": (1112, 834), "1080p": (1664, 1248), "4k": (3328, 2496)},
    "1:1": {"480p": (640, 640), "720p": (960, 960), "1080p": (1440, 1440), "4k": (2880, 2880)},
    "3:4": {"480p": (560, 752), "720p": (834, 1112), "1080p": (1248, 1664), "4k": (2496, 3328)},
    "9:16": {"480p": (496, 864), "720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)},
    # 21:9 4k is held to 4096 px wide, the sandbox's limit (upstream sizes unpublished).
    "21:9": {"480p": (992, 432), "720p": (1470, 630), "1080p": (2206, 946), "4k": (4096, 1756)},
}
# In order of size: "the nearest resolution a model offers" walks this list.
RESOLUTION_ORDER = ("480p", "720p", "1080p", "4k")

_RATIO_VALUES = {name: int(name.split(":")[0]) / int(name.split(":")[1]) for name in RATIOS}


def nearest_ratio(width: int, height: int) -> str:
    """The supported ratio closest to ``width / height`` (used by ``adaptive``)."""
    aspect = width / height
    return min(RATIOS, key=lambda name: abs(_RATIO_VALUES[name] - aspect))


def output_size(ratio: str, resolution: str) -> tuple[int, int]:
    """Width and height for a concrete ratio and resolution."""
    return OUTPUT_SIZES[ratio][resolution]


def size_to_ratio_resolution(size: str) -> tuple[str, str] | None:
    """Map ``"1280x720"`` back to ``("16:9", "720p")``, or None if it is not an output size."""
    for ratio, by_res in OUTPUT_SIZES.items():
        for resolution, (w, h) in by_res.items():
            if f"{w}x{h}" == size:
                return ratio, resolution
    return None


# OpenAI's video sizes (the ``size`` enum of its videos API), and the Seedance frame each
# one asks for. The 1024x1792 pair has no Seedance size of its own: it maps to the nearest
# frame, 1080p of the same orientation (and, where a model has no 1080p, down to 720p).
OPENAI_SIZES: dict[str, tuple[str, str]] = {
    "720x1280": ("9:16", "720p"),
    "1280x720": ("16:9", "720p"),
    "1024x1792": ("9:16", "1080p"),
    "1792x1024": ("16:9", "1080p"),
}


def nearest_resolution(wanted: str, offered: tuple[str, ...]) -> str:
    """The offered resolution nearest to ``wanted`` (the smaller one on a tie)."""
    if wanted in offered:
        return wanted
    position = {name: i for i, name in enumerate(RESOLUTION_ORDER)}
    target = position.get(wanted, 1)
    known = [r for r in offered if r in position]
    if not known:
        return offered[0]
    return min(known, key=lambda r: (abs(position[r] - target), position[r]))


def openai_size(ratio: str, resolution: str, asked: str | None) -> str:
    """The OpenAI size to show for a task: the one asked for, else the one of the same
    orientation and class as the output (OpenAI's schema allows nothing else)."""
    if asked is not None and asked in OPENAI_SIZES:
        return asked
    width, height = OUTPUT_SIZES.get(ratio, OUTPUT_SIZES["16:9"]).get(resolution, (16, 9))
    large = resolution in ("1080p", "4k")
    if width >= height:
        return "1792x1024" if large else "1280x720"
    return "1024x1792" if large else "720x1280"
