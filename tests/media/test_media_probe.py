"""Tests for media probing: every input is generated here (Pillow / PyAV / the renderer)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from videogate.media.probe import SNIFF_BYTES, MediaError, MediaInfo, probe, sniff_kind
from videogate.media.render import RenderSpec, render


def _image(path: Path, fmt: str, size: tuple[int, int] = (64, 48)) -> Path:
    # Noise, so that lossy and lossless encoders produce a realistically sized file.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def _video(
    path: Path,
    fmt: str,
    *,
    seconds: float = 1.0,
    audio: bool = False,
    audio_seconds: float | None = None,
    codec: str = "libx264",
) -> Path:
    """A 96x64 24 fps clip (optionally with AAC/Opus audio), written with PyAV."""
    with av.open(str(path), mode="w", format=fmt) as container:
        video = container.add_stream(codec, rate=24)
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("libopus" if fmt == "webm" else "aac", rate=48_000)
            assert isinstance(sound, av.audio.stream.AudioStream)
            sound.layout = "stereo"
        frames = round(seconds * 24)
        for index in range(frames):
            rgb = np.full((64, 96, 3), index * 7 % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            _encode_tone(container, sound, audio_seconds or seconds)
    return path


def _encode_tone(
    container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float
) -> None:
    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.layout.nb_channels
    step = stream.codec_context.frame_size or 1024
    fmt = stream.codec_context.format.name
    total = round(seconds * rate)
    t = np.arange(total) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)
    for start in range(0, total, step):
        chunk = np.repeat(tone[None, start : start + step], channels, axis=0)
        if fmt == "s16":  # interleaved integer PCM
            data = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
        elif fmt == "s32p":
            data = (chunk * 2**31 - 1).astype(np.int32)
        else:
            data = np.ascontiguousarray(chunk)
        layout = "stereo" if channels == 2 else "mono"
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _audio(path: Path, fmt: str, codec: str, *, seconds: float = 1.0, rate: int = 44_100) -> Path:
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.layout = "stereo"
        _encode_tone(container, stream, seconds)
    return path


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pil_format", "suffix", "fmt", "mime"),
    [
        ("PNG", "png", "png", "image/png"),
        ("JPEG", "jpg", "jpeg", "image/jpeg"),
        ("WEBP", "webp", "webp", "image/webp"),
        ("BMP", "bmp", "bmp", "image/bmp"),
        ("TIFF", "tif", "tiff", "image/tiff"),
        ("GIF", "gif", "gif", "image/gif"),
    ],
)
def test_images(tmp_path: Path, pil_format: str, suffix: str, fmt: str, mime: str) -> None:
    path = _image(tmp_path / f"img.{suffix}", pil_format)
    assert probe(path) == MediaInfo(
        kind="image",
        format=fmt,
        mime_type=mime,
        width=64,
        height=48,
        duration=None,
        fps=None,
        has_audio=False,
        has_video=False,
        bytes=path.stat().st_size,
    )


def test_image_type_comes_from_content_not_name(tmp_path: Path) -> None:
    path = _image(tmp_path / "actually-a-png.jpg", "PNG")
    assert (probe(path).format, probe(path).mime_type) == ("png", "image/png")


def test_exif_rotated_jpeg_reports_display_size(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (64, 48), (10, 20, 30)).save(path, format="JPEG", exif=exif)
    info = probe(path)
    assert (info.width, info.height) == (48, 64)


# --- video --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "sandbox.mp4"
    spec = RenderSpec(
        prompt="probe me", width=256, height=144, duration=2.0, seed=3, generate_audio=True
    )
    render(spec, out)
    return out


def test_rendered_mp4(rendered: Path) -> None:
    assert probe(rendered) == MediaInfo(
        kind="video",
        format="mp4",
        mime_type="video/mp4",
        width=256,
        height=144,
        duration=pytest.approx(2.0),  # type: ignore[arg-type]
        fps=24.0,
        has_audio=True,
        has_video=True,
        bytes=rendered.stat().st_size,
    )


class _Counted:
    """A PyAV container (or packet) seen through a counter of demuxed packets and decodes."""

    def __init__(self, inner: Any, counts: dict[str, int]) -> None:
        self._inner, self._counts = inner, counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _Counted:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)

    def demux(self, *args: Any, **kwargs: Any) -> Iterator[_Counted]:
        for packet in self._inner.demux(*args, **kwargs):
            self._counts["demuxed"] += 1
            yield _Counted(packet, self._counts)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        self._counts["decoded"] += 1
        return self._inner.decode(*args, **kwargs)


def test_probe_reads_metadata_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long clip is probed by its headers, one decoded frame and its last second of packets:
    counted, not timed."""
    clip = _video(tmp_path / "long.mp4", "mp4", seconds=10.0)
    counts = {"demuxed": 0, "decoded": 0}
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **kw: _Counted(real_open(*a, **kw), counts))
    info = probe(clip)
    assert info.duration == pytest.approx(10.0, abs=0.1)
    # Of 240 frames: the decoder's few packets up to the first frame, and a demux of about
    # the last second (the truncation check).
    assert 0 < counts["decoded"] < 24, counts
    assert 0 < counts["demuxed"] <= 3 * 24, counts


def test_video_without_audio(tmp_path: Path) -> None:
    info = probe(_video(tmp_path / "v.mp4", "mp4", seconds=1.5))
    assert (info.kind, info.has_video, info.has_audio) == ("video", True, False)
    assert info.duration == pytest.approx(1.5)
    assert info.fps == 24.0


def test_mov(tmp_path: Path) -> None:
    info = probe(_video(tmp_path / "v.mov", "mov", audio=True))
    assert (info.kind, info.format, info.mime_type) == ("video", "mov", "video/quicktime")
    assert info.has_audio and (info.width, info.height) == (96, 64)


def test_audio_longer_than_video_is_not_mistaken_for_truncation(tmp_path: Path) -> None:
    path = _video(tmp_path / "v.mp4", "mp4", seconds=1.0, audio=True, audio_seconds=3.0)
    info = probe(path)
    assert info.duration == pytest.approx(3.0, abs=0.05)  # what a player shows
    assert info.has_audio and info.has_video


def test_webm_without_duration_header_is_measured(tmp_path: Path) -> None:
    path = tmp_path / "live.webm"
    # live=1 makes the muxer skip the duration, like browser MediaRecorder output.
    with av.open(str(path), mode="w", format="webm", options={"live": "1"}) as container:
        stream = container.add_stream("libvpx", rate=24)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for index in range(24):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 96, 3), np.uint8), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.duration is None  # the premise of this test
    info = probe(path)
    assert (info.format, info.mime_type) == ("webm", "video/webm")
    assert info.duration == pytest.approx(1.0, abs=0.01)


# --- audio --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "fmt", "mime"),
    [
        ("a.wav", "wav", "pcm_s16le", "wav", "audio/wav"),
        ("a.mp3", "mp3", "libmp3lame", "mp3", "audio/mpeg"),
        ("a.m4a", "ipod", "aac", "m4a", "audio/mp4"),
        ("a.flac", "flac", "flac", "flac", "audio/flac"),
    ],
)
def test_audio(
    tmp_path: Path, name: str, container_format: str, codec: str, fmt: str, mime: str
) -> None:
    path = _audio(tmp_path / name, container_format, codec, seconds=2.0)
    info = probe(path)
    assert (info.kind, info.format, info.mime_type) == ("audio", fmt, mime)
    assert (info.width, info.height, info.fps) == (None, None, None)
    assert (info.has_audio, info.has_video) == (True, False)
    assert info.duration == pytest.approx(2.0, abs=0.06)
    assert info.bytes == path.stat().st_size


# --- not media ----------------------------------------------------------------------------


def _assert_rejected(path: Path, reason: str = "") -> None:
    with pytest.raises(MediaError, match="not a decodable image/video/audio file") as caught:
        probe(path)
    assert reason in str(caught.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _assert_rejected(path, "empty")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is plain text and not a video at all\n" * 20,
        np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        b"\x00" * 4096,
        b"<html><body>404 Not Found</body></html>",
    ],
    ids=["text", "random", "zeros", "html"],
)
def test_garbage(tmp_path: Path, content: bytes) -> None:
    for name in ("upload.bin", "upload.mp4", "upload.txt", "upload.png"):
        path = tmp_path / name
        path.write_bytes(content)
        _assert_rejected(path)


def test_truncated_fast_start_mp4(rendered: Path, tmp_path: Path) -> None:
    # moov is at the front, so the header still opens and claims 2 s; the data is gone.
    path = tmp_path / "cut.mp4"
    path.write_bytes(rendered.read_bytes()[: rendered.stat().st_size // 2])
    _assert_rejected(path, "truncated")


def test_truncated_mp4_without_index(tmp_path: Path) -> None:
    source = _video(tmp_path / "v.mp4", "mp4", seconds=2.0)  # moov at the end
    path = tmp_path / "cut.mp4"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _assert_rejected(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_truncated_images(tmp_path: Path, fmt: str) -> None:
    source = _image(tmp_path / "full", fmt, size=(256, 256))
    path = tmp_path / "cut"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _assert_rejected(path, "broken")


def test_image_header_only(tmp_path: Path) -> None:
    source = _image(tmp_path / "full.png", "PNG")
    path = tmp_path / "header.png"
    path.write_bytes(source.read_bytes()[:40])
    _assert_rejected(path)


def test_missing_file_is_a_caller_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize("pil_format", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_sniff_kind_of_images(tmp_path: Path, pil_format: str) -> None:
    head = _image(tmp_path / "img", pil_format).read_bytes()[:SNIFF_BYTES]
    assert sniff_kind(head) == "image"


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("mp4", "libx264"), ("mov", "libx264"), ("webm", "libvpx-vp9"), ("mpegts", "libx264")],
)
def test_sniff_kind_of_videos(tmp_path: Path, fmt: str, codec: str) -> None:
    head = _video(tmp_path / f"clip.{fmt}", fmt, codec=codec).read_bytes()[:SNIFF_BYTES]
    assert sniff_kind(head) == "video"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"<!doctype html><html><body>gateway timeout</body></html>",
        b'{"error": "x"}',
        b"\0" * 400,
    ],
)
def test_sniff_kind_refuses_what_is_neither(head: bytes) -> None:
    assert sniff_kind(head) is None
