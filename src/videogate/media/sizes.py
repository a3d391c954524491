"""Output frame sizes of Seedance 1.5 / 2.0 (API.md §4); the sandbox renders the same."""

from __future__ import annotations

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
RESOLUTIONS = ("480p", "720p", "1080p")
FPS = 24

OUTPUT_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "16:9": {"480p": (864, 496), "720p": (1280, 720), "1080p": (1920, 1080)},
    "4:3": {"480p": (752, 560), "720p": (1112, 834), "1080p": (1664, 1248)},
    "1:1": {"480p": (640, 640), "720p": (960, 960), "1080p": (1440, 1440)},
    "3:4": {"480p": (560, 752), "720p": (834, 1112), "1080p": (1248, 1664)},
    "9:16": {"480p": (496, 864), "720p": (720, 1280), "1080p": (1080, 1920)},
    "21:9": {"480p": (992, 432), "720p": (1470, 630), "1080p": (2206, 946)},
}

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
