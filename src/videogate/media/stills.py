"""Still images made from a finished clip: a sprite sheet of evenly spaced frames, and the
thumbnail in WebP (OpenAI's ``variant=spritesheet`` / ``variant=thumbnail``)."""

from __future__ import annotations

import math
from pathlib import Path

import av
from PIL import Image

from videogate.media.probe import MediaError

SPRITE_FRAMES = 10
SPRITE_COLUMNS = 5
SPRITE_WIDTH = 256  # of one tile, in pixels


def sprite_sheet(video: Path, out: Path, frames: int = SPRITE_FRAMES) -> tuple[int, int]:
    """Write a JPEG grid of ``frames`` evenly spaced frames of ``video`` (left to right, top
    to bottom) to ``out``; return its (width, height)."""
    try:
        with av.open(str(video)) as container:
            decoded = [
                Image.fromarray(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)
            ]
    except av.error.FFmpegError as exc:
        raise MediaError(f"the video cannot be read ({exc})") from None
    if not decoded:
        raise MediaError("the video has no frames")
    count = min(frames, len(decoded))
    # Frame i of the sheet is at (i + 0.5) / count of the clip: evenly spaced, no edge bias.
    picks = [
        decoded[min(len(decoded) - 1, int((i + 0.5) * len(decoded) / count))] for i in range(count)
    ]
    first = picks[0]
    tile_w = min(SPRITE_WIDTH, first.width)
    tile_h = max(1, round(first.height * tile_w / first.width))
    columns = min(SPRITE_COLUMNS, count)
    rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (tile_w * columns, tile_h * rows), (0, 0, 0))
    for i, frame in enumerate(picks):
        tile = frame.convert("RGB").resize((tile_w, tile_h), Image.Resampling.BILINEAR)
        sheet.paste(tile, ((i % columns) * tile_w, (i // columns) * tile_h))
    sheet.save(out, format="JPEG", quality=85)
    return sheet.size


def to_webp(image: Path, out: Path) -> None:
    """Re-encode an image (the stored JPEG thumbnail) as WebP."""
    with Image.open(image) as img:
        img.convert("RGB").save(out, format="WEBP", quality=85)
