"""Tests for the sandbox renderer: real mp4s, decoded back and checked pixel by pixel."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageOps

from videogate.media.encode import remux
from videogate.media.probe import MediaError, probe
from videogate.media.render import (
    SAMPLE_RATE,
    THUMBNAIL_WIDTH,
    RenderResult,
    RenderSpec,
    render,
)
from videogate.media.rework import Mode, rework
from videogate.media.text import load_font, wrap

RGB = NDArray[np.uint8]

# Small and short wherever the property does not need 720p: keeps this file fast.
W, H = 320, 180


def _spec(**changes: object) -> RenderSpec:
    base = RenderSpec(
        prompt="A red fox trots across a snowy meadow at dawn",
        width=W,
        height=H,
        duration=1.0,
        seed=7,
        generate_audio=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _render(tmp_path: Path, name: str = "clip.mp4", **changes: object) -> Path:
    out = tmp_path / name
    render(_spec(**changes), out)
    return out


def _frames(path: Path) -> list[RGB]:
    with av.open(str(path)) as container:
        return [
            np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            for frame in container.decode(video=0)
        ]


def _audio(path: Path) -> NDArray[np.float32]:
    """All audio samples as (channels, n) float32."""
    with av.open(str(path)) as container:
        chunks = [
            np.asarray(frame.to_ndarray(), dtype=np.float32) for frame in container.decode(audio=0)
        ]
    return np.concatenate(chunks, axis=1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mad(a: RGB, b: RGB) -> float:
    """Mean absolute difference of two RGB pictures, in 0..255 levels."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def _picture(path: Path, size: tuple[int, int], colors: tuple[tuple[int, int, int], ...]) -> Path:
    """A simple test image: background, a disc and a bar (flat areas survive compression)."""
    img = Image.new("RGB", size, colors[0])
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w * 0.25, h * 0.15, w * 0.75, h * 0.85), fill=colors[1])
    draw.rectangle((0, h * 0.8, w, h), fill=colors[2])
    img.save(path)
    return path


def _color_video(path: Path, colors: list[tuple[int, int, int]], per_color: int) -> Path:
    """A 160x90 24 fps H.264 clip showing each colour for ``per_color`` frames."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        for index in range(len(colors) * per_color):
            rgb = np.zeros((90, 160, 3), np.uint8)
            rgb[:] = colors[index // per_color]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _tone(path: Path, freq: float, seconds: float, codec: str = "pcm_s16le") -> Path:
    """A mono sine tone at 44.1 kHz (so the renderer has to resample it)."""
    rate = 44_100
    t = np.arange(round(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * 0.5).astype(np.float32)[None, :]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "mono"
        pcm = codec == "pcm_s16le"
        stream.format = "s16" if pcm else "fltp"
        step = 1152
        for start in range(0, samples.shape[1], step):
            chunk = np.ascontiguousarray(samples[:, start : start + step])
            frame = (
                av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), "s16", "mono")
                if pcm
                else av.AudioFrame.from_ndarray(chunk, "fltp", "mono")
            )
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _dominant_frequency(samples: NDArray[np.float32]) -> float:
    mono = samples.mean(axis=0)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / mono.size)


def _banner_rows(height: int) -> slice:
    """Rows safely inside the banner (it is 8 % of the short side, at least 18 px)."""
    return slice(2, max(18, int(min(W, height) * 0.08)) - 2)


# --- the full-size clip -------------------------------------------------------------------


def test_720p_8s_clip_matches_the_seedance_shape(tmp_path: Path) -> None:
    # How fast it renders (about 2 s on two cores) is measured by `make bench`
    # (bench/render_bench.py), not asserted here: a timed assertion flakes on a loaded machine.
    out = tmp_path / "720p.mp4"
    spec = _spec(width=1280, height=720, duration=8.0, generate_audio=True)
    result = render(spec, out)

    assert result == RenderResult(width=1280, height=720, duration=8.0, frames=192, has_audio=True)
    with av.open(str(out)) as container:
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(8.0, abs=1e-3)
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert video.average_rate == 24
        assert video.duration is not None and video.time_base is not None
        assert float(video.duration * video.time_base) == pytest.approx(8.0)
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == SAMPLE_RATE
        assert audio.duration is not None and audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(8.0, abs=0.03)
        packets = sum(1 for p in container.demux(video) if p.size)
    assert packets == 192
    info = probe(out)
    assert (info.kind, info.format, info.width, info.height) == ("video", "mp4", 1280, 720)
    assert info.fps == 24 and info.duration == pytest.approx(8.0) and info.has_audio


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (2206, 946), (1470, 630)])
def test_large_and_odd_aspect_sizes_work(tmp_path: Path, width: int, height: int) -> None:
    out = _render(tmp_path, width=width, height=height, duration=0.25)
    info = probe(out)
    assert (info.width, info.height) == (width, height)
    assert info.duration == pytest.approx(0.25)


def test_fractional_duration_gives_matching_frames_and_audio(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    result = render(_spec(duration=1.5, generate_audio=True), out)
    assert (result.frames, result.duration) == (36, 1.5)
    assert len(_frames(out)) == 36
    assert _audio(out).shape[1] == pytest.approx(1.5 * SAMPLE_RATE, abs=1024)
    assert probe(out).duration == pytest.approx(1.5)


def test_remux_to_mov_keeps_every_packet(tmp_path: Path) -> None:
    """output_format mov: the same H.264/AAC packets in a QuickTime container."""
    out = tmp_path / "clip.mp4"
    render(_spec(duration=1.5, generate_audio=True), out)
    mov = tmp_path / "clip.mov"
    remux(out, mov, "mov")
    assert mov.read_bytes()[4:12] == b"ftypqt  "
    info = probe(mov)
    assert (info.kind, info.mime_type, info.has_audio) == ("video", "video/quicktime", True)
    assert info.duration == pytest.approx(1.5)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(mov), _frames(out), strict=True))
    assert np.array_equal(_audio(mov), _audio(out))


@pytest.mark.parametrize("mode", ["remix", "edit", "extend"])
def test_reworked_clips_keep_the_sources_sound(tmp_path: Path, mode: Mode) -> None:
    """generate_audio on a remix, edit or extend: the source's own sound, as long as the new
    clip (extend: looped on); none without it."""
    source = tmp_path / "source.mp4"
    render(_spec(duration=1.0, generate_audio=True), source)
    out = tmp_path / f"{mode}.mp4"
    result = rework(
        mode, source, out, prompt="p", width=W, height=H, seconds=0.5, seed=3, generate_audio=True
    )
    seconds = 1.5 if mode == "extend" else 1.0
    assert (result.duration, result.has_audio) == (seconds, True)
    sound = _audio(out)
    assert sound.shape[1] == pytest.approx(seconds * SAMPLE_RATE, abs=1024)
    original = _audio(source)
    head = min(original.shape[1], sound.shape[1]) // 2
    # AAC twice over is not bit-exact, but it is the same sound.
    assert np.corrcoef(original[0, 2048:head], sound[0, 2048:head])[0, 1] > 0.9
    silent = rework(
        mode, source, tmp_path / "silent.mp4", prompt="p", width=W, height=H, seconds=0.5, seed=3
    )
    assert not silent.has_audio and not probe(tmp_path / "silent.mp4").has_audio


# --- determinism --------------------------------------------------------------------------


def test_same_spec_gives_identical_bytes(tmp_path: Path) -> None:
    a = _render(tmp_path, "a.mp4", generate_audio=True)
    b = _render(tmp_path, "b.mp4", generate_audio=True)
    assert _sha256(a) == _sha256(b)


def test_different_seed_gives_different_content(tmp_path: Path) -> None:
    a = _render(tmp_path, "a.mp4", seed=1, generate_audio=True)
    b = _render(tmp_path, "b.mp4", seed=2, generate_audio=True)
    assert _sha256(a) != _sha256(b)
    middle = slice(H // 3, H // 2)  # below the banner, above the prompt box
    assert _mad(_frames(a)[5][middle], _frames(b)[5][middle]) > 5
    assert not np.allclose(_audio(a), _audio(b), atol=1e-3)


# --- picture content ----------------------------------------------------------------------


def test_background_moves_every_frame(tmp_path: Path) -> None:
    frames = _frames(_render(tmp_path))
    middle = slice(H // 3, H // 2)
    diffs = [_mad(a[middle], b[middle]) for a, b in itertools.pairwise(frames)]
    assert min(diffs) > 0.3, diffs


def test_every_frame_carries_the_sandbox_banner(tmp_path: Path) -> None:
    frames = _frames(_render(tmp_path))
    rows = _banner_rows(H)
    title = frames[0][rows, : W // 3]
    # The title is amber on dark grey: plenty of both, and identical on every frame.
    amber = (title[..., 0] > 180) & (title[..., 1] > 110) & (title[..., 2] < 90)
    dark = title.max(axis=2) < 50
    assert amber.mean() > 0.05 and dark.mean() > 0.3
    for frame in frames:
        assert _mad(frame[rows, : W // 3], title) < 2
    # The counter on the right changes from frame to frame.
    counters = [frame[rows, W // 2 :] for frame in frames]
    assert all(_mad(a, b) > 0.1 for a, b in itertools.pairwise(counters))


def test_prompt_and_model_are_drawn(tmp_path: Path) -> None:
    base = _frames(_render(tmp_path, "base.mp4"))[3]
    other_prompt = _frames(_render(tmp_path, "prompt.mp4", prompt="Completely different"))[3]
    other_model = _frames(_render(tmp_path, "model.mp4", model="seedance-2-0-pro"))[3]
    box = slice(H - H // 4, H)  # the prompt box sits at the bottom
    assert _mad(base[box], other_prompt[box]) > 2
    assert _mad(base[box], other_model[box]) > 0.5
    # Same seed: everything but the text is unchanged.
    assert _mad(base[: H // 2], other_prompt[: H // 2]) < 1


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   \n\t  ",
        "emoji 🦊🔥👩‍👩‍👧 and CJK 日本語のテキスト and Arabic مرحبا بالعالم",
        "combining e\u0301\u0302\u0303 zero\u200bwidth \u202eRTL override\u202c",
        "control \x00\x01\x1b[31m chars\r\nand a lone surrogate \ud800 here",
        "x" * 10_000,
        "word " * 5_000,
        "\U0010ffff\U000e0001\ufeff",
    ],
)
def test_any_unicode_prompt_renders(tmp_path: Path, prompt: str) -> None:
    result = render(_spec(prompt=prompt, duration=0.25), tmp_path / "clip.mp4")
    assert result.frames == 6


def test_long_prompts_are_wrapped_and_truncated() -> None:
    font = load_font(16, {})
    text = " ".join(f"word{n}" for n in range(500))
    lines = wrap(text, font, 200, 3)
    assert len(lines) == 3
    assert lines[-1].endswith("...")
    assert all(font.getlength(line) <= 200 for line in lines)
    unbroken = wrap("x" * 1000, font, 150, 4)
    assert len(unbroken) == 4 and all(font.getlength(line) <= 150 for line in unbroken)
    assert wrap("short", font, 200, 3) == ["short"]


def test_watermark_adds_a_mark(tmp_path: Path) -> None:
    plain = _frames(_render(tmp_path, "plain.mp4"))[2]
    marked = _frames(_render(tmp_path, "marked.mp4", watermark=True))[2]
    assert _mad(plain, marked) > 0.1


# --- first / last frame -------------------------------------------------------------------


def test_first_frame_is_the_image(tmp_path: Path) -> None:
    # A 4:3 image for a 16:9 clip: it must be scaled to cover and centre-cropped.
    image = _picture(
        tmp_path / "first.png", (400, 300), ((200, 60, 40), (250, 220, 50), (30, 30, 160))
    )
    frames = _frames(_render(tmp_path, first_frame=image))
    expected = np.asarray(ImageOps.fit(Image.open(image).convert("RGB"), (W, H)), np.uint8)
    assert _mad(frames[0], expected) < 5
    # From frame 1 on the banner is drawn over it.
    rows = _banner_rows(H)
    assert _mad(frames[1][rows], expected[rows]) > 30
    # And the clip moves away from the still.
    assert _mad(frames[-1][H // 3 : H // 2], expected[H // 3 : H // 2]) > 5


def test_first_and_last_frame_cross_fade(tmp_path: Path) -> None:
    first = _picture(tmp_path / "a.png", (W, H), ((200, 40, 40), (240, 240, 60), (20, 20, 20)))
    last = _picture(tmp_path / "b.jpg", (W, H), ((30, 60, 200), (40, 220, 120), (240, 240, 240)))
    frames = _frames(_render(tmp_path, first_frame=first, last_frame=last, duration=1.0))
    want_first = np.asarray(Image.open(first).convert("RGB"), np.uint8)
    want_last = np.asarray(Image.open(last).convert("RGB"), np.uint8)
    assert _mad(frames[0], want_first) < 5
    assert _mad(frames[-1], want_last) < 5
    # Halfway it is between the two (checked on a patch of plain background, left of the disc).
    patch = (slice(H // 3, H // 2), slice(20, 60))
    mid = frames[len(frames) // 2][patch].reshape(-1, 3).mean(axis=0)
    start = want_first[patch].reshape(-1, 3).mean(axis=0)
    end = want_last[patch].reshape(-1, 3).mean(axis=0)
    assert np.all(np.minimum(start, end) - 10 <= mid) and np.all(mid <= np.maximum(start, end) + 10)
    assert _mad(frames[len(frames) // 2][patch], want_first[patch]) > 20


def test_last_frame_alone_ends_on_the_image(tmp_path: Path) -> None:
    last = _picture(tmp_path / "b.png", (W, H), ((30, 60, 200), (40, 220, 120), (240, 240, 240)))
    frames = _frames(_render(tmp_path, last_frame=last))
    want = np.asarray(Image.open(last).convert("RGB"), np.uint8)
    assert _mad(frames[-1], want) < 5
    assert _mad(frames[0], want) > 20


# --- references ---------------------------------------------------------------------------


def _magenta(frame: RGB) -> int:
    return int(np.sum((frame[..., 0] > 200) & (frame[..., 1] < 60) & (frame[..., 2] > 200)))


def test_reference_images_appear_as_tiles(tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    Image.new("RGB", (200, 120), (255, 0, 255)).save(ref)
    other = _picture(tmp_path / "o.png", (100, 100), ((0, 0, 0), (255, 255, 255), (0, 255, 0)))
    with_refs = _frames(_render(tmp_path, "r.mp4", reference_images=(ref, other)))
    without = _frames(_render(tmp_path, "n.mp4"))
    for frame in with_refs:
        assert _magenta(frame) > 400
    assert _magenta(without[5]) == 0


def test_reference_video_plays_picture_in_picture(tmp_path: Path) -> None:
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    ref = _color_video(tmp_path / "ref.mp4", colors, per_color=4)  # 0.5 s, shorter than the clip
    frames = _frames(_render(tmp_path, reference_videos=(ref,)))

    def count(frame: RGB, color: tuple[int, int, int]) -> int:
        near = np.abs(frame.astype(np.int16) - np.array(color, np.int16)).max(axis=2) < 40
        return int(near.sum())

    for index, frame in enumerate(frames):
        expected = colors[(index % 12) // 4]  # loops after 12 frames
        counts = {c: count(frame, c) for c in colors}
        assert counts[expected] > 1500, (index, counts)
        assert all(counts[c] < 200 for c in colors if c != expected), (index, counts)


@pytest.mark.parametrize("codec", ["pcm_s16le", "libmp3lame"])
def test_reference_audio_becomes_the_looped_soundtrack(tmp_path: Path, codec: str) -> None:
    suffix = ".wav" if codec == "pcm_s16le" else ".mp3"
    ref = _tone(tmp_path / f"tone{suffix}", 1000.0, 0.4, codec)
    out = _render(tmp_path, duration=1.5, generate_audio=True, reference_audios=(ref,))
    samples = _audio(out)
    assert samples.shape[1] == pytest.approx(1.5 * SAMPLE_RATE, abs=1024)
    assert _dominant_frequency(samples) == pytest.approx(1000, abs=15)
    # Looped, not padded with silence: the last quarter is as loud as the first.
    quarter = samples.shape[1] // 4
    rms = [
        float(np.sqrt(np.mean(part**2))) for part in (samples[:, :quarter], samples[:, -quarter:])
    ]
    assert min(rms) > 0.1 and max(rms) / min(rms) < 1.5


def test_reference_audio_is_ignored_without_generate_audio(tmp_path: Path) -> None:
    ref = _tone(tmp_path / "tone.wav", 440.0, 0.5)
    out = _render(tmp_path, reference_audios=(ref,))
    with av.open(str(out)) as container:
        assert not container.streams.audio


def test_no_audio_stream_without_generate_audio(tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    assert not render(_spec(), out).has_audio
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 0
        assert len(container.streams.video) == 1
    assert not probe(out).has_audio


def test_synthesized_soundtrack_is_not_silence(tmp_path: Path) -> None:
    samples = _audio(_render(tmp_path, generate_audio=True))
    assert samples.shape[0] == 2
    assert float(np.sqrt(np.mean(samples**2))) > 0.02
    assert float(np.max(np.abs(samples))) < 1.0


@pytest.mark.parametrize("field", ["first_frame", "reference_images"])
def test_unreadable_image_inputs_raise_media_error(tmp_path: Path, field: str) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"definitely not a png")
    value: object = bad if field == "first_frame" else (bad,)
    with pytest.raises(MediaError):
        render(_spec(**{field: value}), tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("field", ["reference_videos", "reference_audios"])
def test_unreadable_av_inputs_raise_media_error(tmp_path: Path, field: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError):
        render(_spec(generate_audio=True, **{field: (bad,)}), tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == [bad]  # no output, no leftover temp file


# --- side outputs and progress ------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "fmt"), [(".jpg", "JPEG"), (".webp", "WEBP")])
def test_thumbnail_and_last_frame_stills(tmp_path: Path, suffix: str, fmt: str) -> None:
    out, thumb, last = tmp_path / "c.mp4", tmp_path / f"t{suffix}", tmp_path / "last.png"
    render(_spec(width=640, height=360), out, out_thumbnail=thumb, out_last_frame=last)
    frames = _frames(out)
    with Image.open(thumb) as img:
        assert img.format == fmt
        assert img.size == (THUMBNAIL_WIDTH, 180)
        small = np.asarray(img.convert("RGB"), np.uint8)
    middle = Image.fromarray(frames[len(frames) // 2]).resize((THUMBNAIL_WIDTH, 180))
    assert _mad(small, np.asarray(middle, np.uint8)) < 6
    with Image.open(last) as img:
        assert (img.format, img.size) == ("PNG", (640, 360))
        assert _mad(np.asarray(img.convert("RGB"), np.uint8), frames[-1]) < 4


def test_progress_is_reported_from_zero_to_one(tmp_path: Path) -> None:
    seen: list[float] = []
    render(_spec(duration=2.0), tmp_path / "c.mp4", on_progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert len(seen) >= 10
    assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(seen))


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 321}, "even"),
        ({"height": 181}, "even"),
        ({"width": 32}, "between"),
        ({"height": 5000}, "between"),
        ({"duration": 0.0}, "positive"),
        ({"duration": -1.0}, "positive"),
        ({"duration": math.nan}, "positive"),
        ({"duration": 0.01}, "shorter than one frame"),
        ({"fps": 0}, "fps"),
    ],
)
def test_invalid_specs_raise_value_error(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render(_spec(**changes), tmp_path / "c.mp4")


def test_render_is_usable_as_a_plain_callable() -> None:
    # The worker pool pickles the function and its spec.
    import pickle

    fn: Callable[..., RenderResult] = pickle.loads(pickle.dumps(render))
    spec = pickle.loads(pickle.dumps(_spec(first_frame=Path("/x.png"))))
    assert fn is render and spec == _spec(first_frame=Path("/x.png"))
