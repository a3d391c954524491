"""The scene under the overlay: a seeded animated background, the request's first/last frame
images, or a cross-fade between them.

The background is a smooth colour field with a faint grid, larger than the frame and scrolled
by a bouncing window, with a few discs bouncing over it. All of it is drawn once (Pillow, then
converted to YUV 4:2:0); per frame only slices are copied and the small discs blended.

Blends use 7-bit integer weights (0..128) so that ``(a - b) * w`` fits in int16 for the
whole-frame cross-fades.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

from videogate.media.picture import I16, I420, U8, even

_W_ONE: Final = 128


def _bounce(position: float, span: int) -> int:
    """Triangle wave: ``position`` reflected into [0, span], rounded down to even."""
    if span <= 0:
        return 0
    folded = position % (2 * span)
    return even(folded if folded <= span else 2 * span - folded, minimum=0)


@dataclass(frozen=True)
class _Sprite:
    """A disc that bounces around the frame, alpha-blended every frame."""

    pic: I420
    alpha: I16  # 0.._W_ONE, luma resolution
    alpha_c: I16  # chroma resolution
    x0: float
    y0: float
    vx: float
    vy: float

    def draw(self, canvas: I420, index: int) -> None:
        size = self.pic.width
        x = _bounce(self.x0 + self.vx * index, canvas.width - size)
        y = _bounce(self.y0 + self.vy * index, canvas.height - size)
        _blend(canvas.y[y : y + size, x : x + size], self.pic.y, self.alpha)
        half, cx, cy = size // 2, x // 2, y // 2
        _blend(canvas.u[cy : cy + half, cx : cx + half], self.pic.u, self.alpha_c)
        _blend(canvas.v[cy : cy + half, cx : cx + half], self.pic.v, self.alpha_c)


def _blend(dst: U8, src: U8, alpha: I16) -> None:
    """dst = dst + (src - dst) * alpha / 128, in place."""
    cur = dst.astype(np.int16)
    cur += ((src.astype(np.int16) - cur) * alpha) >> 7
    dst[...] = cur


@dataclass(frozen=True)
class Background:
    """A seeded colour field larger than the frame, scrolled by a bouncing window, plus discs."""

    texture: I420
    span_x: int
    span_y: int
    x0: float
    y0: float
    vx: float
    vy: float
    sprites: tuple[_Sprite, ...]

    @classmethod
    def build(cls, rng: np.random.Generator, width: int, height: int, fps: int) -> Background:
        span_x, span_y = even(width * 0.12), even(height * 0.12)
        texture = I420.from_rgb(_color_field(rng, width + span_x, height + span_y))
        # Scroll at a steady >= 2 px/frame so consecutive frames always differ.
        speed = 24 / fps
        return cls(
            texture=texture,
            span_x=span_x,
            span_y=span_y,
            x0=float(rng.uniform(0, 2 * span_x)),
            y0=float(rng.uniform(0, 2 * span_y)),
            vx=float(rng.uniform(2.0, 3.5)) * speed * max(1.0, width / 1280),
            vy=float(rng.uniform(1.0, 2.0)) * speed * max(1.0, height / 720),
            sprites=tuple(_make_sprite(rng, width, height, fps) for _ in range(4)),
        )

    def draw(self, canvas: I420, index: int) -> None:
        ox = _bounce(self.x0 + self.vx * index, self.span_x)
        oy = _bounce(self.y0 + self.vy * index, self.span_y)
        w, h = canvas.width, canvas.height
        canvas.y[...] = self.texture.y[oy : oy + h, ox : ox + w]
        cx, cy = ox // 2, oy // 2
        canvas.u[...] = self.texture.u[cy : cy + h // 2, cx : cx + w // 2]
        canvas.v[...] = self.texture.v[cy : cy + h // 2, cx : cx + w // 2]
        for sprite in self.sprites:
            sprite.draw(canvas, index)


def _color_field(rng: np.random.Generator, width: int, height: int) -> U8:
    """A smooth seeded plasma (sum of random plane waves per channel) with a faint grid.

    Computed on a coarse grid and upscaled: it is smooth anyway, and 16x fewer pixels to
    evaluate. The grid makes the scrolling visible in flat areas.
    """
    gw, gh = max(2, width // 16), max(2, height // 16)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32) / max(gw, gh)
    field = np.zeros((gh, gw, 3), dtype=np.float32)
    for channel in range(3):
        for _ in range(3):
            fx, fy = rng.uniform(-2.5, 2.5, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            field[..., channel] += np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
    base = rng.uniform(60, 170, size=3).astype(np.float32)
    coarse = np.clip(base + field * 28, 0, 255).astype(np.uint8)
    rgb = np.array(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    cell = even(min(width, height) / 6, minimum=16)
    rgb[::cell, :] //= 2
    rgb[:, ::cell] //= 2
    return rgb


def _make_sprite(rng: np.random.Generator, width: int, height: int, fps: int) -> _Sprite:
    size = even(min(width, height) * float(rng.uniform(0.12, 0.2)), minimum=8)
    hue = float(rng.uniform(0, 1))
    top = tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.75, 1.0))
    bottom = tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.9, 0.55))
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    shade = np.array(top, np.float32) * (1 - ramp) + np.array(bottom, np.float32) * ramp
    rgb = np.broadcast_to(shade, (size, size, 3)).astype(np.uint8)
    # Draw the disc 4x larger and shrink it: a cheap anti-aliased edge.
    mask = Image.new("L", (size * 4, size * 4), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size * 4 - 1, size * 4 - 1), fill=255)
    small = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.int16)
    alpha = ((small * _W_ONE + 127) // 255).astype(np.int16)
    alpha_c = alpha.reshape(size // 2, 2, size // 2, 2).mean(axis=(1, 3)).astype(np.int16)
    per_second = min(width, height) * float(rng.uniform(0.25, 0.5))
    angle = float(rng.uniform(0, 2 * np.pi))
    return _Sprite(
        pic=I420.from_rgb(rgb),
        alpha=alpha,
        alpha_c=alpha_c,
        x0=float(rng.uniform(0, 2 * (width - size))),
        y0=float(rng.uniform(0, 2 * (height - size))),
        vx=per_second * math.cos(angle) / fps,
        vy=per_second * math.sin(angle) / fps,
    )


class Scene:
    """The picture under the overlay: background, first/last-frame images, or a blend."""

    def __init__(
        self, background: Background, first: I420 | None, last: I420 | None, frames: int
    ) -> None:
        self.background, self.first, self.last, self.frames = background, first, last, frames
        self._first16 = first.packed.astype(np.int16) if first is not None else None
        self._diff16: I16 | None = None
        if first is not None and last is not None:
            self._diff16 = last.packed.astype(np.int16) - first.packed.astype(np.int16)
        self._tmp: I16 | None = None  # scratch for the int16 blend, allocated on first use

    def draw(self, canvas: I420, index: int) -> None:
        progress = index / (self.frames - 1) if self.frames > 1 else 1.0
        eased = progress * progress * (3 - 2 * progress)  # smoothstep: gentle start and end
        first, last = self.first, self.last
        if first is not None and last is not None and self._diff16 is not None:
            # Cross-fade first -> last; exact endpoints (weights 0 and 128).
            self._mix(canvas, self._diff16, None, round(_W_ONE * eased))
            return
        self.background.draw(canvas, index)
        if first is not None:
            # Start on the image, then let the animation show through (up to 60 %).
            weight = round(_W_ONE * 0.6 * eased)
            self._mix(canvas, None, first.packed, _W_ONE - weight)
        elif last is not None:
            # Start on the animation and settle exactly on the image.
            self._mix(canvas, None, last.packed, round(_W_ONE * eased))

    def _mix(self, canvas: I420, diff: I16 | None, target: U8 | None, weight: int) -> None:
        """canvas = base + (target - base) * weight / 128, where base is the first frame (for
        a precomputed ``diff`` = last - first) or the current canvas (for ``target``)."""
        out = canvas.packed
        if weight <= 0 and diff is None:
            return
        if weight >= _W_ONE and target is not None:
            out[...] = target
            return
        if self._tmp is None:
            self._tmp = np.empty(out.shape, np.int16)
        tmp = self._tmp
        if diff is not None:
            assert self._first16 is not None
            np.multiply(diff, weight, out=tmp)
            tmp >>= 7
            tmp += self._first16
        else:
            assert target is not None
            np.subtract(target, out, out=tmp, dtype=np.int16)
            tmp *= weight
            tmp >>= 7
            tmp += out
        np.copyto(out, tmp, casting="unsafe")
