"""The sandbox's remix, edit and extend: new clips made from a finished clip's own frames.

Nothing here is generative, but every output frame comes from the source video, so a client
can see that the operation used it:

- ``remix``: each source frame mirrored, its colour channels rotated (by the seed), with the
  new prompt captioned;
- ``edit``: each source frame colour-graded (warm sepia), with the edit prompt captioned;
- ``extend``: the source frames unchanged, then ``seconds`` more that continue from its last
  frame (a slow push-in), captioned with the prompt; the clip is the stitched total.

Frames stream through (decode, change, encode) so long clips need little memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from videogate.media.encode import AudioMuxer, open_mp4
from videogate.media.probe import MediaError
from videogate.media.render import THUMBNAIL_WIDTH, RenderResult
from videogate.media.soundtrack import SAMPLE_RATE, soundtrack

FPS = 24
Mode = Literal["remix", "edit", "extend"]
Frame = np.ndarray  # H x W x 3, uint8 RGB
_LABEL = {"remix": "REMIX", "edit": "EDIT", "extend": "EXTENDED"}


def source_frames(source: Path, width: int, height: int) -> Iterator[Frame]:
    """The source's frames as RGB arrays of ``width`` x ``height``."""
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise MediaError("the source has no video track")
            for frame in container.decode(video=0):
                yield frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    except av.error.FFmpegError as exc:
        raise MediaError(f"the source video cannot be read ({exc})") from None


def remix_frame(frame: Frame, seed: int) -> Frame:
    shift = 1 + seed % 2  # rotate the channels by one or two
    return np.ascontiguousarray(np.roll(frame[:, ::-1, :], shift, axis=2))


def edit_frame(frame: Frame) -> Frame:
    gray = frame.astype(np.float32).mean(axis=2, keepdims=True)
    toned = gray * np.array([1.07, 0.86, 0.62], dtype=np.float32) + 12.0
    graded: Frame = np.clip(toned, 0, 255).astype(np.uint8)
    return graded


def push_in(last: Frame, step: int, steps: int) -> Frame:
    """``last`` zoomed in by up to 12 % over ``steps`` frames (centre crop, scaled back)."""
    height, width = last.shape[:2]
    zoom = 1.0 + 0.12 * (step + 1) / max(steps, 1)
    cw, ch = max(2, int(width / zoom)), max(2, int(height / zoom))
    x, y = (width - cw) // 2, (height - ch) // 2
    crop = Image.fromarray(last[y : y + ch, x : x + cw])
    return np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR))


def caption(frame: Frame, text: str) -> Frame:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = max(12, image.height // 24)
    font = ImageFont.load_default(size=size)
    band = size + size // 2
    draw.rectangle((0, image.height - band, image.width, image.height), fill=(0, 0, 0))
    draw.text(
        (size // 2, image.height - band + size // 4), text[:120], fill=(255, 255, 255), font=font
    )
    return np.asarray(image)


def rework(
    mode: Mode,
    source: Path,
    out_video: Path,
    *,
    prompt: str,
    width: int,
    height: int,
    seconds: float,
    seed: int,
    generate_audio: bool = False,
    out_thumbnail: Path | None = None,
    out_last_frame: Path | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Write the reworked clip to ``out_video`` (atomically) and return what was written.
    With ``generate_audio`` it has the source's sound (looped to its new length), or a
    seeded chord when the source is silent."""
    label = f"{_LABEL[mode]}: {prompt}"
    frames = _frames(mode, source, width, height, seconds, seed, label)
    tmp = out_video.with_name(f".{out_video.name}.{os.getpid()}.tmp")
    written = 0
    last: Frame | None = None
    thumb: Frame | None = None
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
            written += 1
            last = frame
            if written == FPS:  # one second in: the thumbnail
                thumb = frame
            if on_progress is not None and written % FPS == 0:
                on_progress(min(0.95, written / (FPS * 30)))
        for packet in stream.encode():
            container.mux(packet)
    if last is None:
        tmp.unlink(missing_ok=True)
        raise MediaError("the source video has no frames")
    if generate_audio:
        _add_soundtrack(tmp, source, written, seed)
    tmp.replace(out_video)
    if out_thumbnail is not None:
        _save_thumbnail(thumb if thumb is not None else last, out_thumbnail)
    if out_last_frame is not None:
        Image.fromarray(last).save(out_last_frame, format="PNG")
    if on_progress is not None:
        on_progress(1.0)
    return RenderResult(
        width=width,
        height=height,
        duration=written / FPS,
        frames=written,
        has_audio=generate_audio,
    )


def _add_soundtrack(video: Path, source: Path, frames: int, seed: int) -> None:
    """Give the silent clip at ``video`` a soundtrack of ``frames`` frames: the source's own
    sound, else a chord from ``seed``. The video packets are copied, not re-encoded."""
    try:
        track = soundtrack(seed % 2**64, [source], frames, FPS)
    except MediaError:  # the source has no (readable) sound
        track = soundtrack(seed % 2**64, [], frames, FPS)
    mixed = video.with_name(f"{video.name}.sound")
    try:
        with av.open(str(video)) as src, open_mp4(mixed) as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            audio = AudioMuxer(out, track)
            for packet in src.demux(src.streams.video[0]):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                end = (packet.pts or 0) * packet.time_base
                packet.stream = stream
                out.mux(packet)
                audio.feed_until(math.ceil(end * SAMPLE_RATE))
            audio.finish()
        mixed.replace(video)
    finally:
        mixed.unlink(missing_ok=True)


def _frames(
    mode: Mode, source: Path, width: int, height: int, seconds: float, seed: int, label: str
) -> Iterator[Frame]:
    last: Frame | None = None
    for frame in source_frames(source, width, height):
        last = frame
        if mode == "remix":
            yield caption(remix_frame(frame, seed), label)
        elif mode == "edit":
            yield caption(edit_frame(frame), label)
        else:
            yield frame  # the source itself, unchanged
    if mode == "extend" and last is not None:
        steps = max(1, round(seconds * FPS))
        for step in range(steps):
            yield caption(push_in(last, step, steps), label)


def _save_thumbnail(frame: Frame, path: Path) -> None:
    image = Image.fromarray(frame)
    if image.width > THUMBNAIL_WIDTH:
        image = image.resize(
            (THUMBNAIL_WIDTH, max(2, round(image.height * THUMBNAIL_WIDTH / image.width)))
        )
    image.save(path, format="WEBP" if path.suffix == ".webp" else "JPEG", quality=85)
