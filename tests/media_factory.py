"""Small media files made on the fly for tests (no fixtures on disk)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def png_bytes(
    width: int = 640, height: int = 360, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def mp4_file(
    path: Path, seconds: float, width: int = 640, height: int = 640, fps: int = 24
) -> Path:
    """An H.264 mp4 of ``seconds`` seconds (no audio)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(int(seconds * fps)):
            arr = np.full((height, width, 3), (i * 5) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def probe_mp4(data: bytes) -> dict[str, object]:
    """The facts of an mp4 that tests compare: size, fps, codec, duration, audio codecs."""
    with av.open(io.BytesIO(data), "r") as c:
        v = c.streams.video[0]
        audio = [s.codec_context.name for s in c.streams.audio]
        return {
            "size": (v.codec_context.width, v.codec_context.height),
            "fps": float(v.average_rate or 0),
            "codec": v.codec_context.name,
            "duration": round((c.duration or 0) / 1_000_000, 2),
            "audio": audio,
        }


def wav_file(path: Path, seconds: float, rate: int = 48_000) -> Path:
    """A mono 16-bit WAV sine tone."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        total = int(seconds * rate)
        t = np.arange(total) / rate
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
