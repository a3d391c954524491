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

This module checks the spec and runs the frame loop; the parts live beside it: ``scene``
(background and first/last-frame blending), ``overlay`` (banner, counter, prompt box), with
``references`` (image tiles, video pips) and ``text`` (font, cleaning, wrapping), ``soundtrack``
(reference audio mix or seeded chord) and ``encode`` (the PyAV mp4 writer), all drawing into
``picture.I420`` buffers.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import numpy as np
from PIL import Image

from videogate.media.encode import ClipEncoder, open_mp4
from videogate.media.overlay import BANNER_TEXT, build_overlay
from videogate.media.picture import I420, U8, load_cover, to_image
from videogate.media.scene import Background, Scene
from videogate.media.soundtrack import SAMPLE_RATE, soundtrack

# Not used here, but importable from this module since before the split into parts.
from videogate.media.picture import I16 as I16  # isort: skip
from videogate.media.probe import MediaError as MediaError  # isort: skip
from videogate.media.soundtrack import F32 as F32  # isort: skip

__all__ = [
    "BANNER_TEXT",
    "SAMPLE_RATE",
    "THUMBNAIL_WIDTH",
    "RenderResult",
    "RenderSpec",
    "render",
]

THUMBNAIL_WIDTH: Final = 320
MIN_SIDE: Final = 64
MAX_SIDE: Final = 4096

_SEED_MASK: Final = (1 << 64) - 1

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

    seed = spec.seed & _SEED_MASK
    rng = np.random.default_rng([seed, 0x5A_4E_D8])
    background = Background.build(rng, width, height, fps)
    first = load_cover(spec.first_frame, width, height) if spec.first_frame else None
    last = load_cover(spec.last_frame, width, height) if spec.last_frame else None
    scene = Scene(background, first, last, frames)
    overlay = build_overlay(
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        prompt=spec.prompt,
        model=spec.model,
        seed=spec.seed,
        watermark=spec.watermark,
        reference_images=spec.reference_images,
        reference_videos=spec.reference_videos,
    )
    bare = _bare_frames(spec, frames)
    audio = soundtrack(seed, spec.reference_audios, frames, fps) if spec.generate_audio else None

    tmp = out_video.with_name(f".{out_video.name}.{os.getpid()}.partial")
    canvas = I420.blank(width, height)
    middle: U8 | None = None
    try:
        with open_mp4(tmp) as container:
            encoder = ClipEncoder(container, width, height, fps, audio)
            step = max(1, frames // 20)
            for index in range(frames):
                scene.draw(canvas, index)
                if index not in bare:
                    overlay.draw(canvas, index)
                encoder.write(canvas.packed, index)
                if index == frames // 2:
                    middle = canvas.packed.copy()
                if (index + 1) % step == 0:
                    report(0.95 * (index + 1) / frames)
            encoder.finish()
        os.replace(tmp, out_video)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

    if out_thumbnail is not None and middle is not None:
        _save_thumbnail(to_image(middle, width, height), out_thumbnail)
    if out_last_frame is not None:
        to_image(canvas.packed, width, height).save(out_last_frame, format="PNG")
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


def _bare_frames(spec: RenderSpec, frames: int) -> frozenset[int]:
    """The frames drawn without the overlay: those that must reproduce the first/last frame
    images exactly."""
    bare = set()
    if spec.first_frame is not None:
        bare.add(0)
    if spec.last_frame is not None:
        bare.add(frames - 1)
    return frozenset(bare)


def _save_thumbnail(image: Image.Image, path: Path) -> None:
    if image.width > THUMBNAIL_WIDTH:
        size = (THUMBNAIL_WIDTH, max(1, round(image.height * THUMBNAIL_WIDTH / image.width)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if path.suffix.lower() == ".webp":
        image.save(path, format="WEBP", quality=80)
    else:
        image.save(path, format="JPEG", quality=85)
