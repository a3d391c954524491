"""The sandbox renderer: turns a RenderSpec into a real, deterministic H.264/AAC mp4.

Nothing here is generative. The clip is a seeded animated background (a scrolling colour field
with a grid and bouncing discs), optionally blended with the request's first/last frame images,
with the request's reference images as tiles and reference videos as picture-in-picture, under
an opaque "SANDBOX PREVIEW" banner and a box showing the prompt and model.

Speed matters (an 8 s 720p clip renders in well under real time on two cores), so every picture
is built directly in YUV 4:2:0, the encoder's own format: static layers are drawn once with
Pillow and converted once; per frame we only copy slices, blend a few small sprites, draw the
frame counter (luma only) and, for first/last-frame clips, do one integer cross-fade.

Determinism: same spec -> byte-identical file. All randomness comes from ``spec.seed``; the mp4
muxer runs bit-exact with no creation time; x264 gets a fixed thread count because its
bitstream depends on it.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final, TypeAlias

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont, ImageOps

from videogate.media.probe import MediaError

__all__ = [
    "BANNER_TEXT",
    "SAMPLE_RATE",
    "THUMBNAIL_WIDTH",
    "RenderResult",
    "RenderSpec",
    "render",
]

BANNER_TEXT: Final = "SANDBOX PREVIEW"
SAMPLE_RATE: Final = 48_000
THUMBNAIL_WIDTH: Final = 320
MIN_SIDE: Final = 64
MAX_SIDE: Final = 4096

# x264's output depends on its thread count, so it is fixed rather than "auto" (= CPU count):
# the same spec must give the same bytes on every worker host.
_X264_THREADS: Final = 2
# ultrafast: measured on 8 s of 720p (2 cores), 0.9 s / 1.25 MB vs superfast 1.35 s / 1.0 MB;
# the headroom matters when workers share cores, and its constrained-baseline output (no
# B-frames, no CABAC) plays anywhere. Our content (smooth fields, flat boxes) compresses well.
_X264_PRESET: Final = "ultrafast"
_X264_CRF: Final = "23"
_AAC_FRAME: Final = 1024  # samples per AAC-LC frame
_AAC_BIT_RATE: Final = 128_000

# Blend weights are 7-bit so that (a - b) * w fits in int16 for the whole-frame cross-fades.
_W_ONE: Final = 128
_MAX_PROMPT_CHARS: Final = 2000  # more can never fit in the box; bounds the wrapping work
_SEED_MASK: Final = (1 << 64) - 1

_BANNER_BG: Final = (24, 24, 24)  # neutral grey: the counter inside it is redrawn in luma only
_BANNER_FG: Final = (255, 186, 0)
_BOX_BG: Final = (20, 22, 30)
_BOX_FG: Final = (242, 242, 242)
_HEADER_FG: Final = (140, 190, 255)
_BORDER: Final = (235, 235, 235)

U8: TypeAlias = NDArray[np.uint8]
I16: TypeAlias = NDArray[np.int16]
F32: TypeAlias = NDArray[np.float32]
_Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont
ProgressCallback: TypeAlias = Callable[[float], None]


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines a sandbox clip; equal specs render byte-identical files.

    ``width`` and ``height`` must be even (H.264 4:2:0) and within 64..4096. The clip has
    ``round(duration * fps)`` frames. ``seed`` may be any int (only its low 64 bits are used).
    """

    prompt: str
    width: int
    height: int
    duration: float
    seed: int
    generate_audio: bool
    model: str = "sandbox"
    fps: int = 24
    first_frame: Path | None = None
    last_frame: Path | None = None
    reference_images: tuple[Path, ...] = ()
    reference_videos: tuple[Path, ...] = ()
    reference_audios: tuple[Path, ...] = ()
    watermark: bool = False


@dataclass(frozen=True)
class RenderResult:
    """What was written: the clip's real size, length and whether it has an audio track."""

    width: int
    height: int
    duration: float
    frames: int
    has_audio: bool


def render(
    spec: RenderSpec,
    out_video: Path,
    *,
    out_thumbnail: Path | None = None,
    out_last_frame: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> RenderResult:
    """Render ``spec`` to an mp4 at ``out_video`` (written atomically via a temp file).

    Optionally also writes ``out_thumbnail`` (the middle frame scaled to ``THUMBNAIL_WIDTH``
    px wide, never up; WebP if the suffix is ``.webp``, else JPEG) and ``out_last_frame`` (the
    final frame as a full-size PNG). ``on_progress`` receives fractions from 0.0 to 1.0,
    non-decreasing, about every 5 % of the frames.

    Frame 0 of a clip with ``first_frame`` is that image alone, and the final frame of a clip
    with ``last_frame`` is that image alone: the overlay is left off exactly those frames so
    they match the inputs. Every other frame carries the banner.

    Raises ValueError for an invalid spec and MediaError for unreadable reference inputs.
    """
    frames = _validate(spec)
    width, height, fps = spec.width, spec.height, spec.fps
    report = on_progress or _ignore_progress
    report(0.0)

    rng = np.random.default_rng([spec.seed & _SEED_MASK, 0x5A_4E_D8])
    background = _Background.build(rng, width, height, fps)
    first = _load_cover(spec.first_frame, width, height) if spec.first_frame else None
    last = _load_cover(spec.last_frame, width, height) if spec.last_frame else None
    scene = _Scene(background, first, last, frames)
    overlay = _build_overlay(spec, frames)
    audio = _soundtrack(spec, frames) if spec.generate_audio else None

    tmp = out_video.with_name(f".{out_video.name}.{os.getpid()}.partial")
    canvas = _I420.blank(width, height)
    middle: U8 | None = None
    try:
        with av.open(
            str(tmp),
            mode="w",
            format="mp4",
            # bitexact: no library version strings; faststart: moov first, for streaming.
            options={"movflags": "+faststart", "fflags": "+bitexact"},
        ) as container:
            video = container.add_stream(
                "libx264", rate=fps, options={"preset": _X264_PRESET, "crf": _X264_CRF}
            )
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.thread_count = _X264_THREADS
            video.codec_context.gop_size = 2 * fps
            # Our RGB->YUV conversions are swscale's defaults (BT.601, limited range); say so,
            # or players guess BT.709 for HD sizes and shift the colours.
            video.codec_context.colorspace = 6  # SMPTE 170M
            video.codec_context.color_primaries = 6
            video.codec_context.color_trc = 6
            video.codec_context.color_range = 1  # MPEG / limited
            muxer = _AudioMuxer(container, audio) if audio is not None else None
            step = max(1, frames // 20)
            for index in range(frames):
                scene.draw(canvas, index)
                if overlay.applies(index, spec):
                    overlay.draw(canvas, index)
                frame = av.VideoFrame.from_ndarray(canvas.packed, format="yuv420p")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                container.mux(video.encode(frame))
                if muxer is not None:
                    muxer.feed_until(math.ceil((index + 1) * SAMPLE_RATE / fps))
                if index == frames // 2:
                    middle = canvas.packed.copy()
                if (index + 1) % step == 0:
                    report(0.95 * (index + 1) / frames)
            container.mux(video.encode(None))
            if muxer is not None:
                muxer.finish()
        os.replace(tmp, out_video)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

    if out_thumbnail is not None and middle is not None:
        _save_thumbnail(_to_image(middle, width, height), out_thumbnail)
    if out_last_frame is not None:
        _to_image(canvas.packed, width, height).save(out_last_frame, format="PNG")
    report(1.0)
    return RenderResult(
        width=width,
        height=height,
        duration=frames / fps,
        frames=frames,
        has_audio=audio is not None,
    )


def _ignore_progress(_fraction: float) -> None:
    """Default progress sink."""


def _validate(spec: RenderSpec) -> int:
    """Check the spec; return the frame count."""
    for name, side in (("width", spec.width), ("height", spec.height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"{name} must be between {MIN_SIDE} and {MAX_SIDE}, got {side}")
        if side % 2:
            # H.264 in 4:2:0 needs even dimensions; padding would silently change the size.
            raise ValueError(f"{name} must be even for H.264 yuv420p, got {side}")
    if not 1 <= spec.fps <= 120:
        raise ValueError(f"fps must be between 1 and 120, got {spec.fps}")
    if not math.isfinite(spec.duration) or spec.duration <= 0:
        raise ValueError(f"duration must be positive, got {spec.duration}")
    frames = round(spec.duration * spec.fps)
    if frames < 1:
        raise ValueError(f"duration {spec.duration} s is shorter than one frame")
    return frames


# --- pictures --------------------------------------------------------------------------------


class _I420:
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
    def blank(cls, width: int, height: int) -> _I420:
        return cls(np.zeros(height * width * 3 // 2, dtype=np.uint8), width, height)

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> _I420:
        """Convert any decoded frame (or one built from RGB) with swscale's defaults."""
        packed = frame.reformat(format="yuv420p").to_ndarray()
        return cls(np.ascontiguousarray(packed, dtype=np.uint8), frame.width, frame.height)

    @classmethod
    def from_rgb(cls, rgb: U8) -> _I420:
        return cls.from_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), "rgb24"))

    @classmethod
    def from_image(cls, image: Image.Image) -> _I420:
        return cls.from_rgb(np.asarray(image.convert("RGB"), dtype=np.uint8))

    def crop(self, x: int, y: int, width: int, height: int) -> _I420:
        """A copy of the (even-aligned) rectangle at x, y."""
        out = _I420.blank(width, height)
        out.y[...] = self.y[y : y + height, x : x + width]
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        out.u[...] = self.u[cy : cy + ch, cx : cx + cw]
        out.v[...] = self.v[cy : cy + ch, cx : cx + cw]
        return out

    def paste(self, pic: _I420, x: int, y: int) -> None:
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


def _even(value: float, minimum: int = 2) -> int:
    """Round down to an even int (4:2:0 chroma needs even positions and sizes)."""
    return max(minimum, int(value) // 2 * 2)


def _open_rgb(path: Path, min_side: int) -> Image.Image:
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


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height and centre-crop (like CSS object-fit: cover)."""
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)


def _load_cover(path: Path, width: int, height: int) -> _I420:
    return _I420.from_image(_cover(_open_rgb(path, max(width, height)), width, height))


# --- animated background -------------------------------------------------------------------


def _bounce(position: float, span: int) -> int:
    """Triangle wave: ``position`` reflected into [0, span], rounded down to even."""
    if span <= 0:
        return 0
    folded = position % (2 * span)
    return _even(folded if folded <= span else 2 * span - folded, minimum=0)


@dataclass(frozen=True)
class _Sprite:
    """A disc that bounces around the frame, alpha-blended every frame."""

    pic: _I420
    alpha: I16  # 0.._W_ONE, luma resolution
    alpha_c: I16  # chroma resolution
    x0: float
    y0: float
    vx: float
    vy: float

    def draw(self, canvas: _I420, index: int) -> None:
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
class _Background:
    """A seeded colour field larger than the frame, scrolled by a bouncing window, plus discs."""

    texture: _I420
    span_x: int
    span_y: int
    x0: float
    y0: float
    vx: float
    vy: float
    sprites: tuple[_Sprite, ...]

    @classmethod
    def build(cls, rng: np.random.Generator, width: int, height: int, fps: int) -> _Background:
        span_x, span_y = _even(width * 0.12), _even(height * 0.12)
        texture = _I420.from_rgb(_color_field(rng, width + span_x, height + span_y))
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

    def draw(self, canvas: _I420, index: int) -> None:
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
    cell = _even(min(width, height) / 6, minimum=16)
    rgb[::cell, :] //= 2
    rgb[:, ::cell] //= 2
    return rgb


def _make_sprite(rng: np.random.Generator, width: int, height: int, fps: int) -> _Sprite:
    size = _even(min(width, height) * float(rng.uniform(0.12, 0.2)), minimum=8)
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
        pic=_I420.from_rgb(rgb),
        alpha=alpha,
        alpha_c=alpha_c,
        x0=float(rng.uniform(0, 2 * (width - size))),
        y0=float(rng.uniform(0, 2 * (height - size))),
        vx=per_second * math.cos(angle) / fps,
        vy=per_second * math.sin(angle) / fps,
    )


class _Scene:
    """The picture under the overlay: background, first/last-frame images, or a blend."""

    def __init__(
        self, background: _Background, first: _I420 | None, last: _I420 | None, frames: int
    ) -> None:
        self.background, self.first, self.last, self.frames = background, first, last, frames
        self._first16 = first.packed.astype(np.int16) if first is not None else None
        self._diff16: I16 | None = None
        if first is not None and last is not None:
            self._diff16 = last.packed.astype(np.int16) - first.packed.astype(np.int16)
        self._tmp: I16 | None = None  # scratch for the int16 blend, allocated on first use

    def draw(self, canvas: _I420, index: int) -> None:
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

    def _mix(self, canvas: _I420, diff: I16 | None, target: U8 | None, weight: int) -> None:
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


# --- overlay -------------------------------------------------------------------------------


def _font(size: int, cache: dict[int, _Font]) -> _Font:
    """Pillow's bundled scalable font (Pillow >= 10.1): no font files to ship or find."""
    size = max(8, size)
    if size not in cache:
        cache[size] = ImageFont.load_default(size=size)
    return cache[size]


def _clean_text(text: str, limit: int = _MAX_PROMPT_CHARS) -> str:
    """Make arbitrary user text safe to draw: one line, no control characters.

    Lone surrogates (legal in a Python str, e.g. from JSON "\\ud800") cannot be encoded for
    FreeType, and control/format characters would draw as boxes or break the layout.
    """
    text = text[: limit * 2].encode("utf-8", "replace").decode("utf-8")
    chars = (" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return " ".join("".join(chars).split())[:limit]


def _fit_prefix(text: str, font: _Font, max_width: int) -> int:
    """Length of the longest prefix of ``text`` that fits in ``max_width`` (at least 1)."""
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _ellipsize(line: str, font: _Font, max_width: int) -> str:
    """``line`` shortened so that it plus "..." fits (ASCII dots: the font may lack U+2026)."""
    while line and font.getlength(line + "...") > max_width:
        line = line[:-1]
    return line.rstrip() + "..."


def _wrap(text: str, font: _Font, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to at most ``max_lines`` lines; words wider than a line (URLs, CJK
    without spaces) are broken by characters; overflow ends the last line with "..."."""
    words = text.split(" ") if text else []
    lines: list[str] = []
    current = ""
    index = 0
    while index < len(words) and len(lines) < max_lines:
        word = words[index]
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_width:
            current, index = candidate, index + 1
        elif current:
            lines.append(current)
            current = ""
        else:
            cut = _fit_prefix(word, font, max_width)
            lines.append(word[:cut])
            words[index] = word[cut:]
            if not words[index]:
                index += 1
    truncated = index < len(words)
    if current:
        if len(lines) < max_lines:
            lines.append(current)
        else:
            truncated = True
    if truncated and lines:
        lines[-1] = _ellipsize(lines[-1], font, max_width)
    return lines


def _text_top(font: _Font, box_height: int) -> int:
    """y at which to draw a line of ``font`` so that it is vertically centred in the box."""
    _, top, _, bottom = font.getbbox("Ag")
    return int((box_height - (bottom - top)) // 2 - top)


@dataclass(frozen=True)
class _Patch:
    """An opaque picture pasted at a fixed position."""

    x: int
    y: int
    pic: _I420


@dataclass(frozen=True)
class _Counter:
    """Frame number and time, redrawn each frame in luma only (its box is neutral grey, so the
    chroma stays whatever the banner set)."""

    x: int
    width: int
    height: int
    font: _Font
    text_x: int
    text_y: int
    digits: int
    frames: int
    fps: int
    luma: U8  # full-range grey level -> limited-range Y, as swscale converts

    def draw(self, canvas: _I420, index: int) -> None:
        text = f"frame {index + 1:0{self.digits}d}/{self.frames}   {index / self.fps:.2f} s"
        img = Image.new("L", (self.width, self.height), _BANNER_BG[0])
        ImageDraw.Draw(img).text((self.text_x, self.text_y), text, fill=255, font=self.font)
        canvas.y[0 : self.height, self.x : self.x + self.width] = self.luma[np.asarray(img)]


@dataclass(frozen=True)
class _Pip:
    """A reference video shown picture-in-picture, looping if shorter than the clip."""

    x: int
    y: int
    frames: tuple[_I420, ...]

    def draw(self, canvas: _I420, index: int) -> None:
        canvas.paste(self.frames[index % len(self.frames)], self.x, self.y)


@dataclass(frozen=True)
class _Overlay:
    patches: tuple[_Patch, ...]
    pips: tuple[_Pip, ...]
    counter: _Counter
    frames: int

    def applies(self, index: int, spec: RenderSpec) -> bool:
        """Not on the frames that must reproduce the first/last frame images."""
        if index == 0 and spec.first_frame is not None:
            return False
        return not (index == self.frames - 1 and spec.last_frame is not None)

    def draw(self, canvas: _I420, index: int) -> None:
        for patch in self.patches:
            canvas.paste(patch.pic, patch.x, patch.y)
        for pip in self.pips:
            pip.draw(canvas, index)
        self.counter.draw(canvas, index)


def _build_overlay(spec: RenderSpec, frames: int) -> _Overlay:
    """Lay out and pre-render everything drawn on top of the scene."""
    width, height = spec.width, spec.height
    fonts: dict[int, _Font] = {}
    unit = min(width, height)
    margin = _even(unit * 0.03, minimum=4)
    patches: list[_Patch] = []

    # Banner: title on the left, counter on the right, both shrunk until they fit side by side.
    banner_h = _even(max(18.0, unit * 0.08))
    digits = len(str(frames))
    widest = f"frame {'8' * digits}/{frames}   {frames / spec.fps:.2f} s".replace("1", "8")
    size = int(banner_h * 0.6)
    while True:
        font = _font(size, fonts)
        title_w, counter_w = font.getlength(BANNER_TEXT), font.getlength(widest)
        if title_w + counter_w + 4 * margin <= width or size <= 8:
            break
        size -= 1
    banner = Image.new("RGB", (width, banner_h), _BANNER_BG)
    draw = ImageDraw.Draw(banner)
    top = _text_top(font, banner_h)
    # A 1 px stroke in the same colour fakes a bold weight, which the bundled font lacks.
    draw.text(
        (margin, top),
        BANNER_TEXT,
        font=font,
        fill=_BANNER_FG,
        stroke_width=1,
        stroke_fill=_BANNER_FG,
    )
    patches.append(_Patch(0, 0, _I420.from_image(banner)))
    box_w = _even(counter_w + margin)
    counter = _Counter(
        x=_even(width - box_w - margin, minimum=0),
        width=box_w,
        height=banner_h,
        font=font,
        text_x=0,
        text_y=top,
        digits=digits,
        frames=frames,
        fps=spec.fps,
        luma=(16 + (np.arange(256) * 219 + 127) // 255).astype(np.uint8),
    )

    # Prompt box at the bottom: a header line (model, seed, size) and the wrapped prompt.
    text_size = max(10, round(unit * 0.036))
    font = _font(text_size, fonts)
    line_h = round(text_size * 1.3)
    box_inner = width - 2 * margin - 2 * margin
    max_lines = min(6, max(1, int(height * 0.26 / line_h) - 1))
    header = _clean_text(
        f"{spec.model}  |  seed {spec.seed}  |  {width}x{height}  |  "
        f"{frames / spec.fps:g}s @ {spec.fps} fps"
    )
    lines = _wrap(_clean_text(spec.prompt) or "(empty prompt)", font, box_inner, max_lines)
    box_h = _even(line_h * (len(lines) + 1) + margin)
    box = Image.new("RGB", (width - 2 * margin, box_h), _BOX_BG)
    draw = ImageDraw.Draw(box)
    y = margin // 2
    for row, line in enumerate([*_wrap(header, font, box_inner, 1), *lines]):
        fill = _HEADER_FG if row == 0 else _BOX_FG
        draw.text((margin, y + _text_top(font, line_h)), line, font=font, fill=fill)
        y += line_h
    box_y = _even(height - margin - box_h, minimum=0)
    patches.append(_Patch(margin, box_y, _I420.from_image(box)))

    if spec.watermark:
        patches.append(_watermark(width, box_y, margin, _font(text_size, fonts)))

    # Between banner and prompt box: reference videos on the right, image tiles on the left.
    area_top = banner_h + margin
    area_h = max(0, box_y - margin - area_top)
    pips, pip_w = _layout_pips(
        spec.reference_videos, width, area_top, area_h, margin, frames, spec.fps
    )
    for pip, (border_w, border_h) in pips:
        patches.append(_Patch(pip.x - 2, pip.y - 2, _solid(border_w, border_h, _BORDER)))
    tiles_w = width - 2 * margin - (pip_w + margin if pips else 0)
    patches.extend(_layout_tiles(spec.reference_images, margin, area_top, tiles_w, area_h, unit))
    return _Overlay(tuple(patches), tuple(p for p, _ in pips), counter, frames)


def _solid(width: int, height: int, color: tuple[int, int, int]) -> _I420:
    return _I420.from_image(Image.new("RGB", (width, height), color))


def _watermark(width: int, box_y: int, margin: int, font: _Font) -> _Patch:
    """Seedance's "AI generated" mark, bottom right above the prompt box."""
    text = "AI generated"
    w = _even(font.getlength(text) + margin)
    h = _even(font.size * 1.5 if isinstance(font, ImageFont.FreeTypeFont) else 16)
    img = Image.new("RGB", (w, h), _BOX_BG)
    ImageDraw.Draw(img).text((margin // 2, _text_top(font, h)), text, font=font, fill=_BOX_FG)
    x, y = _even(width - margin - w, minimum=0), _even(box_y - margin // 2 - h, minimum=0)
    return _Patch(x, y, _I420.from_image(img))


def _layout_tiles(
    paths: Sequence[Path], left: int, top: int, avail_w: int, avail_h: int, unit: int
) -> list[_Patch]:
    """Reference images as a row of square tiles, shrunk so that all of them fit."""
    if not paths or avail_w < 8 or avail_h < 8:
        return []
    gap = _even(unit * 0.015, minimum=2)
    count = len(paths)
    tile = _even(min(unit * 0.2, avail_h, (avail_w - gap * (count - 1)) / count), minimum=8)
    border = 2
    patches = []
    for n, path in enumerate(paths):
        inner = tile - 2 * border
        image = _cover(_open_rgb(path, inner), inner, inner)
        framed = Image.new("RGB", (tile, tile), _BORDER)
        framed.paste(image, (border, border))
        patches.append(_Patch(left + n * (tile + gap), top, _I420.from_image(framed)))
    return patches


def _layout_pips(
    paths: Sequence[Path],
    width: int,
    top: int,
    avail_h: int,
    margin: int,
    frames: int,
    fps: int,
) -> tuple[list[tuple[_Pip, tuple[int, int]]], int]:
    """Reference videos stacked in a right-hand column; returns (pip, border size) and width."""
    if not paths or avail_h < 16:
        return [], 0
    gap = margin
    slot_h = (avail_h - gap * (len(paths) - 1)) / len(paths) - 4
    pip_w = _even(min(width * 0.28, slot_h * 16 / 9), minimum=8)
    pip_h = _even(min(slot_h, pip_w * 9 / 16), minimum=8)
    x = _even(width - margin - pip_w, minimum=2)
    out = []
    for n, path in enumerate(paths):
        y = _even(top + 2 + n * (pip_h + 4 + gap))
        clip = _decode_clip(path, pip_w, pip_h, frames, fps)
        out.append((_Pip(x, y, clip), (pip_w + 4, pip_h + 4)))
    return out, pip_w + 4


def _decode_clip(path: Path, width: int, height: int, frames: int, fps: int) -> tuple[_I420, ...]:
    """Decode up to ``frames`` output-rate frames of a video, each covered to width x height.

    Source frames are mapped to output slots by timestamp: faster sources drop frames, slower
    ones repeat them. Only what the clip can show is decoded and kept (small, PiP-sized).
    """
    out: list[_I420] = []
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


def _cover_frame(frame: av.VideoFrame, width: int, height: int) -> _I420:
    """Scale a decoded frame (keeping its aspect) to cover width x height; centre-crop."""
    scale = max(width / frame.width, height / frame.height)
    scaled_w = max(width, _even(math.ceil(frame.width * scale) + 1))
    scaled_h = max(height, _even(math.ceil(frame.height * scale) + 1))
    scaled = frame.reformat(width=scaled_w, height=scaled_h, format="yuv420p")
    pic = _I420(np.ascontiguousarray(scaled.to_ndarray(), dtype=np.uint8), scaled_w, scaled_h)
    x, y = _even((scaled_w - width) / 2, minimum=0), _even((scaled_h - height) / 2, minimum=0)
    return pic.crop(x, y, width, height)


# --- audio ---------------------------------------------------------------------------------


def _soundtrack(spec: RenderSpec, frames: int) -> F32:
    """Stereo float samples for the clip: the reference audios mixed, else a seeded chord."""
    samples = round(frames * SAMPLE_RATE / spec.fps)
    if spec.reference_audios:
        tracks = [_loop(_decode_audio(path, samples), samples) for path in spec.reference_audios]
        mix: F32 = np.stack(tracks).mean(axis=0, dtype=np.float32)
        peak = float(np.max(np.abs(mix))) if mix.size else 0.0
        return (mix / peak).astype(np.float32) if peak > 1.0 else mix
    return _synth(spec.seed, samples)


def _loop(track: F32, samples: int) -> F32:
    """Repeat or trim (channels, n) audio to exactly ``samples``."""
    if track.shape[1] >= samples:
        return track[:, :samples]
    return track[:, np.arange(samples) % track.shape[1]]


def _decode_audio(path: Path, samples: int) -> F32:
    """Decode up to ``samples`` of the first audio stream, resampled to 48 kHz stereo float."""
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
    chunks: list[F32] = []
    total = 0
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.audio:
                raise MediaError(f"reference audio {path.name} has no audio stream")
            for decoded in container.decode(container.streams.audio[0]):
                decoded.pts = None  # the resampler only needs the samples, not their times
                for out in resampler.resample(decoded):
                    chunk = np.asarray(out.to_ndarray(), dtype=np.float32)
                    chunks.append(chunk)
                    total += chunk.shape[1]
                if total >= samples:
                    break
            else:
                chunks.extend(
                    np.asarray(out.to_ndarray(), dtype=np.float32)
                    for out in resampler.resample(None)
                )
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode reference audio {path.name}: {exc.strerror}") from exc
    track = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    if track.shape[1] == 0:
        raise MediaError(f"reference audio {path.name} has no decodable samples")
    return track


def _synth(seed: int, samples: int) -> F32:
    """A seeded, gently pulsing three-note pentatonic chord, panned across the stereo field."""
    rng = np.random.default_rng([seed & _SEED_MASK, 0xA0D10])
    t = np.arange(samples, dtype=np.float64) / SAMPLE_RATE
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    steps = rng.choice(np.array([0, 2, 4, 7, 9, 12, 14, 16, 19]), size=3, replace=False)
    out = np.zeros((2, samples), dtype=np.float64)
    for step in steps:
        freq = root * 2 ** (int(step) / 12) * 2
        pulse = 0.6 + 0.4 * np.sin(2 * np.pi * float(rng.uniform(0.2, 1.5)) * t)
        tone = np.sin(2 * np.pi * freq * t + float(rng.uniform(0, 2 * np.pi))) * pulse
        pan = float(rng.uniform(0.2, 0.8))
        out[0] += tone * (1 - pan)
        out[1] += tone * pan
    out *= 0.3 / len(steps)
    fade = min(samples // 2, SAMPLE_RATE // 50)  # 20 ms fades: no clicks at the ends
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:, :fade] *= ramp
        out[:, samples - fade :] *= ramp[::-1]
    return out.astype(np.float32)


class _AudioMuxer:
    """Feeds the soundtrack to an AAC stream in step with the video (good interleaving)."""

    def __init__(self, container: av.container.OutputContainer, samples: F32) -> None:
        self.container = container
        self.samples = samples
        self.stream = container.add_stream("aac", rate=SAMPLE_RATE)
        self.stream.layout = "stereo"
        self.stream.bit_rate = _AAC_BIT_RATE
        self.sent = 0

    def feed_until(self, end: int) -> None:
        """Encode whole AAC frames up to sample ``end`` (the rest waits for the next call)."""
        total = self.samples.shape[1]
        end = min(end, total)
        while self.sent + _AAC_FRAME <= end or (end == total and self.sent < total):
            chunk = np.ascontiguousarray(self.samples[:, self.sent : self.sent + _AAC_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self.sent
            frame.time_base = Fraction(1, SAMPLE_RATE)
            self.container.mux(self.stream.encode(frame))
            self.sent += chunk.shape[1]

    def finish(self) -> None:
        self.feed_until(self.samples.shape[1])
        self.container.mux(self.stream.encode(None))


# --- stills --------------------------------------------------------------------------------


def _to_image(packed: U8, width: int, height: int) -> Image.Image:
    """The RGB picture a player shows for a frame we encoded (same swscale conversion)."""
    frame = av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")
    return Image.fromarray(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))


def _save_thumbnail(image: Image.Image, path: Path) -> None:
    if image.width > THUMBNAIL_WIDTH:
        size = (THUMBNAIL_WIDTH, max(1, round(image.height * THUMBNAIL_WIDTH / image.width)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if path.suffix.lower() == ".webp":
        image.save(path, format="WEBP", quality=80)
    else:
        image.save(path, format="JPEG", quality=85)
