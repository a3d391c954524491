"""Pictures for the sandbox renderer: the YUV 4:2:0 buffer every layer is built in, and the
conversions between it and Pillow images (loading and fitting the request's stills, saving our
frames back out as RGB).

Everything is kept in the encoder's own format (yuv420p) so that per-frame work is slice
copies; RGB -> YUV always goes through swscale's defaults (BT.601, limited range), the same
conversion a player reverses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from videogate.media.probe import MediaError

U8: TypeAlias = NDArray[np.uint8]
I16: TypeAlias = NDArray[np.int16]


class I420:
    """A YUV 4:2:0 picture in one contiguous buffer, laid out like PyAV's yuv420p ndarray.

    ``packed`` is what goes to the encoder; ``y``, ``u`` and ``v`` are views into it.
    """

    __slots__ = ("height", "packed", "u", "v", "width", "y")

    def __init__(self, packed: U8, width: int, height: int) -> None:
        self.packed = packed.reshape(height * 3 // 2, width)
        self.width, self.height = width, height
        flat = self.packed.reshape(-1)
        luma = width * height
        self.y = flat[:luma].reshape(height, width)
        self.u = flat[luma : luma + luma // 4].reshape(height // 2, width // 2)
        self.v = flat[luma + luma // 4 :].reshape(height // 2, width // 2)

    @classmethod
    def blank(cls, width: int, height: int) -> I420:
        return cls(np.zeros(height * width * 3 // 2, dtype=np.uint8), width, height)

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> I420:
        """Convert any decoded frame (or one built from RGB) with swscale's defaults."""
        packed = frame.reformat(format="yuv420p").to_ndarray()
        return cls(np.ascontiguousarray(packed, dtype=np.uint8), frame.width, frame.height)

    @classmethod
    def from_rgb(cls, rgb: U8) -> I420:
        return cls.from_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), "rgb24"))

    @classmethod
    def from_image(cls, image: Image.Image) -> I420:
        return cls.from_rgb(np.asarray(image.convert("RGB"), dtype=np.uint8))

    def crop(self, x: int, y: int, width: int, height: int) -> I420:
        """A copy of the (even-aligned) rectangle at x, y."""
        out = I420.blank(width, height)
        out.y[...] = self.y[y : y + height, x : x + width]
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        out.u[...] = self.u[cy : cy + ch, cx : cx + cw]
        out.v[...] = self.v[cy : cy + ch, cx : cx + cw]
        return out

    def paste(self, pic: I420, x: int, y: int) -> None:
        """Copy ``pic`` in at even x, y, clipped to this picture."""
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + pic.width, self.width), min(y + pic.height, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        self.y[y0:y1, x0:x1] = pic.y[y0 - y : y1 - y, x0 - x : x1 - x]
        sx, sy = (x0 - x) // 2, (y0 - y) // 2
        cw, ch = (x1 - x0) // 2, (y1 - y0) // 2
        self.u[y0 // 2 : y0 // 2 + ch, x0 // 2 : x0 // 2 + cw] = pic.u[sy : sy + ch, sx : sx + cw]
        self.v[y0 // 2 : y0 // 2 + ch, x0 // 2 : x0 // 2 + cw] = pic.v[sy : sy + ch, sx : sx + cw]


@dataclass(frozen=True)
class Patch:
    """An opaque picture pasted at a fixed position."""

    x: int
    y: int
    pic: I420


def even(value: float, minimum: int = 2) -> int:
    """Round down to an even int (4:2:0 chroma needs even positions and sizes)."""
    return max(minimum, int(value) // 2 * 2)


def solid(width: int, height: int, color: tuple[int, int, int]) -> I420:
    """A picture of one colour."""
    return I420.from_image(Image.new("RGB", (width, height), color))


def open_rgb(path: Path, min_side: int) -> Image.Image:
    """Load an image upright as RGB (transparency over black); MediaError if unreadable.

    ``min_side``: neither side needs more pixels than this, which lets JPEG decode at a
    reduced scale when the source is much larger than the clip.
    """
    try:
        with Image.open(path) as img:
            # Square hint: draft keeps both sides >= it, whatever the EXIF rotation or the
            # aspect ratio the cover-crop will cut to.
            img.draft("RGB", (min_side, min_side))
            upright = ImageOps.exif_transpose(img)
            if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
                rgba = upright.convert("RGBA")
                flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
                return Image.alpha_composite(flat, rgba).convert("RGB")
            return upright.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MediaError(f"cannot read image {path.name}: {exc}") from exc


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height and centre-crop (like CSS object-fit: cover)."""
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)


def load_cover(path: Path, width: int, height: int) -> I420:
    """The image at ``path``, covering exactly width x height."""
    return I420.from_image(cover(open_rgb(path, max(width, height)), width, height))


def to_image(packed: U8, width: int, height: int) -> Image.Image:
    """The RGB picture a player shows for a frame we encoded (same swscale conversion)."""
    frame = av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")
    return Image.fromarray(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
