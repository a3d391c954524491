"""The overlay drawn over every frame of a sandbox clip (except the frames that must reproduce
the request's first/last frame images).

From the top: an opaque banner with "SANDBOX PREVIEW" and a live frame counter; the reference
images as tiles and the reference videos as picture-in-picture; an optional "AI generated"
mark; and a box with the model, seed, size and the wrapped prompt. Everything but the counter
and the pips is static, so it is rendered once and pasted per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from videogate.media.picture import I420, U8, Patch, even
from videogate.media.references import Pip, layout_pips, layout_tiles
from videogate.media.text import Font, clean_text, load_font, text_top, wrap

BANNER_TEXT: Final = "SANDBOX PREVIEW"

_BANNER_BG: Final = (24, 24, 24)  # neutral grey: the counter inside it is redrawn in luma only
_BANNER_FG: Final = (255, 186, 0)
_BOX_BG: Final = (20, 22, 30)
_BOX_FG: Final = (242, 242, 242)
_HEADER_FG: Final = (140, 190, 255)


@dataclass(frozen=True)
class Counter:
    """Frame number and time, redrawn each frame in luma only (its box is neutral grey, so the
    chroma stays whatever the banner set)."""

    x: int
    width: int
    height: int
    font: Font
    text_x: int
    text_y: int
    digits: int
    frames: int
    fps: int
    luma: U8  # full-range grey level -> limited-range Y, as swscale converts

    def draw(self, canvas: I420, index: int) -> None:
        text = f"frame {index + 1:0{self.digits}d}/{self.frames}   {index / self.fps:.2f} s"
        img = Image.new("L", (self.width, self.height), _BANNER_BG[0])
        ImageDraw.Draw(img).text((self.text_x, self.text_y), text, fill=255, font=self.font)
        canvas.y[0 : self.height, self.x : self.x + self.width] = self.luma[np.asarray(img)]


@dataclass(frozen=True)
class Overlay:
    """Static patches (pasted in order), the reference pips, then the frame counter."""

    patches: tuple[Patch, ...]
    pips: tuple[Pip, ...]
    counter: Counter

    def draw(self, canvas: I420, index: int) -> None:
        for patch in self.patches:
            canvas.paste(patch.pic, patch.x, patch.y)
        for pip in self.pips:
            pip.draw(canvas, index)
        self.counter.draw(canvas, index)


def build_overlay(
    *,
    width: int,
    height: int,
    fps: int,
    frames: int,
    prompt: str,
    model: str,
    seed: int,
    watermark: bool,
    reference_images: Sequence[Path],
    reference_videos: Sequence[Path],
) -> Overlay:
    """Lay out and pre-render everything drawn on top of the scene."""
    fonts: dict[int, Font] = {}
    unit = min(width, height)
    margin = even(unit * 0.03, minimum=4)
    patches: list[Patch] = []

    # Banner: title on the left, counter on the right, both shrunk until they fit side by side.
    banner_h = even(max(18.0, unit * 0.08))
    digits = len(str(frames))
    widest = f"frame {'8' * digits}/{frames}   {frames / fps:.2f} s".replace("1", "8")
    size = int(banner_h * 0.6)
    while True:
        font = load_font(size, fonts)
        title_w, counter_w = font.getlength(BANNER_TEXT), font.getlength(widest)
        if title_w + counter_w + 4 * margin <= width or size <= 8:
            break
        size -= 1
    banner = Image.new("RGB", (width, banner_h), _BANNER_BG)
    draw = ImageDraw.Draw(banner)
    top = text_top(font, banner_h)
    # A 1 px stroke in the same colour fakes a bold weight, which the bundled font lacks.
    draw.text(
        (margin, top),
        BANNER_TEXT,
        font=font,
        fill=_BANNER_FG,
        stroke_width=1,
        stroke_fill=_BANNER_FG,
    )
    patches.append(Patch(0, 0, I420.from_image(banner)))
    box_w = even(counter_w + margin)
    counter = Counter(
        x=even(width - box_w - margin, minimum=0),
        width=box_w,
        height=banner_h,
        font=font,
        text_x=0,
        text_y=top,
        digits=digits,
        frames=frames,
        fps=fps,
        luma=(16 + (np.arange(256) * 219 + 127) // 255).astype(np.uint8),
    )

    # Prompt box at the bottom: a header line (model, seed, size) and the wrapped prompt.
    text_size = max(10, round(unit * 0.036))
    font = load_font(text_size, fonts)
    line_h = round(text_size * 1.3)
    box_inner = width - 2 * margin - 2 * margin
    max_lines = min(6, max(1, int(height * 0.26 / line_h) - 1))
    header = clean_text(
        f"{model}  |  seed {seed}  |  {width}x{height}  |  {frames / fps:g}s @ {fps} fps"
    )
    lines = wrap(clean_text(prompt) or "(empty prompt)", font, box_inner, max_lines)
    box_h = even(line_h * (len(lines) + 1) + margin)
    box = Image.new("RGB", (width - 2 * margin, box_h), _BOX_BG)
    draw = ImageDraw.Draw(box)
    y = margin // 2
    for row, line in enumerate([*wrap(header, font, box_inner, 1), *lines]):
        fill = _HEADER_FG if row == 0 else _BOX_FG
        draw.text((margin, y + text_top(font, line_h)), line, font=font, fill=fill)
        y += line_h
    box_y = even(height - margin - box_h, minimum=0)
    patches.append(Patch(margin, box_y, I420.from_image(box)))

    if watermark:
        patches.append(_watermark(width, box_y, margin, load_font(text_size, fonts)))

    # Between banner and prompt box: reference videos on the right, image tiles on the left.
    area_top = banner_h + margin
    area_h = max(0, box_y - margin - area_top)
    pips, pip_w = layout_pips(reference_videos, width, area_top, area_h, margin, frames, fps)
    patches.extend(border for _, border in pips)
    tiles_w = width - 2 * margin - (pip_w + margin if pips else 0)
    patches.extend(layout_tiles(reference_images, margin, area_top, tiles_w, area_h, unit))
    return Overlay(tuple(patches), tuple(pip for pip, _ in pips), counter)


def _watermark(width: int, box_y: int, margin: int, font: Font) -> Patch:
    """Seedance's "AI generated" mark, bottom right above the prompt box."""
    text = "AI generated"
    w = even(font.getlength(text) + margin)
    h = even(font.size * 1.5 if isinstance(font, ImageFont.FreeTypeFont) else 16)
    img = Image.new("RGB", (w, h), _BOX_BG)
    ImageDraw.Draw(img).text((margin // 2, text_top(font, h)), text, font=font, fill=_BOX_FG)
    x, y = even(width - margin - w, minimum=0), even(box_y - margin // 2 - h, minimum=0)
    return Patch(x, y, I420.from_image(img))
