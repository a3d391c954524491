"""The request's references shown in the overlay: images as a row of framed square tiles,
videos as looping picture-in-picture in a right-hand column.

Reference videos are decoded once, up front, at their on-screen size and at the clip's frame
rate (only as many frames as the clip can show), so drawing one per frame is a slice copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image

from videogate.media.picture import I420, Patch, cover, even, open_rgb, solid
from videogate.media.probe import MediaError

_BORDER: Final = (235, 235, 235)


@dataclass(frozen=True)
class Pip:
    """A reference video shown picture-in-picture, looping if shorter than the clip."""

    x: int
    y: int
    frames: tuple[I420, ...]

    def draw(self, canvas: I420, index: int) -> None:
        canvas.paste(self.frames[index % len(self.frames)], self.x, self.y)


def layout_tiles(
    paths: Sequence[Path], left: int, top: int, avail_w: int, avail_h: int, unit: int
) -> list[Patch]:
    """Reference images as a row of square tiles, shrunk so that all of them fit."""
    if not paths or avail_w < 8 or avail_h < 8:
        return []
    gap = even(unit * 0.015, minimum=2)
    count = len(paths)
    tile = even(min(unit * 0.2, avail_h, (avail_w - gap * (count - 1)) / count), minimum=8)
    border = 2
    patches = []
    for n, path in enumerate(paths):
        inner = tile - 2 * border
        image = cover(open_rgb(path, inner), inner, inner)
        framed = Image.new("RGB", (tile, tile), _BORDER)
        framed.paste(image, (border, border))
        patches.append(Patch(left + n * (tile + gap), top, I420.from_image(framed)))
    return patches


def layout_pips(
    paths: Sequence[Path],
    width: int,
    top: int,
    avail_h: int,
    margin: int,
    frames: int,
    fps: int,
) -> tuple[list[tuple[Pip, Patch]], int]:
    """Reference videos stacked in a right-hand column.

    Returns each pip with the patch that frames it (to be drawn under it, with the static
    layers) and the column's width (0 if nothing fits).
    """
    if not paths or avail_h < 16:
        return [], 0
    gap = margin
    slot_h = (avail_h - gap * (len(paths) - 1)) / len(paths) - 4
    pip_w = even(min(width * 0.28, slot_h * 16 / 9), minimum=8)
    pip_h = even(min(slot_h, pip_w * 9 / 16), minimum=8)
    x = even(width - margin - pip_w, minimum=2)
    out = []
    for n, path in enumerate(paths):
        y = even(top + 2 + n * (pip_h + 4 + gap))
        clip = _decode_clip(path, pip_w, pip_h, frames, fps)
        border = Patch(x - 2, y - 2, solid(pip_w + 4, pip_h + 4, _BORDER))
        out.append((Pip(x, y, clip), border))
    return out, pip_w + 4


def _decode_clip(path: Path, width: int, height: int, frames: int, fps: int) -> tuple[I420, ...]:
    """Decode up to ``frames`` output-rate frames of a video, each covered to width x height.

    Source frames are mapped to output slots by timestamp: faster sources drop frames, slower
    ones repeat them. Only what the clip can show is decoded and kept (small, PiP-sized).
    """
    out: list[I420] = []
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                raise MediaError(f"reference video {path.name} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start: float | None = None
            for decoded in container.decode(stream):
                stamp = decoded.time if decoded.time is not None else len(out) / fps
                start = stamp if start is None else start
                slot = min(frames - 1, math.floor((stamp - start) * fps + 1e-6))
                if slot < len(out):
                    continue
                pic = _cover_frame(decoded, width, height)
                while len(out) < slot:
                    out.append(out[-1] if out else pic)
                out.append(pic)
                if len(out) >= frames:
                    break
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode reference video {path.name}: {exc.strerror}") from exc
    if not out:
        raise MediaError(f"reference video {path.name} has no decodable frames")
    return tuple(out)


def _cover_frame(frame: av.VideoFrame, width: int, height: int) -> I420:
    """Scale a decoded frame (keeping its aspect) to cover width x height; centre-crop."""
    scale = max(width / frame.width, height / frame.height)
    scaled_w = max(width, even(math.ceil(frame.width * scale) + 1))
    scaled_h = max(height, even(math.ceil(frame.height * scale) + 1))
    scaled = frame.reformat(width=scaled_w, height=scaled_h, format="yuv420p")
    pic = I420(np.ascontiguousarray(scaled.to_ndarray(), dtype=np.uint8), scaled_w, scaled_h)
    x, y = even((scaled_w - width) / 2, minimum=0), even((scaled_h - height) / 2, minimum=0)
    return pic.crop(x, y, width, height)
