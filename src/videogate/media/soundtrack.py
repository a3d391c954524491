"""The sandbox clip's soundtrack: the request's reference audios decoded and mixed, or, without
any, a seeded synthetic chord. Always 48 kHz stereo float (channels, samples), exactly as long
as the video.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypeAlias

import av
import numpy as np
from numpy.typing import NDArray

from videogate.media.probe import MediaError

SAMPLE_RATE: Final = 48_000

F32: TypeAlias = NDArray[np.float32]


def soundtrack(seed: int, reference_audios: Sequence[Path], frames: int, fps: int) -> F32:
    """Stereo float samples for ``frames`` frames at ``fps``: the reference audios mixed, else
    a chord from ``seed`` (0 <= seed < 2**64). MediaError if a reference is unreadable."""
    samples = round(frames * SAMPLE_RATE / fps)
    if reference_audios:
        tracks = [_loop(_decode_audio(path, samples), samples) for path in reference_audios]
        mix: F32 = np.stack(tracks).mean(axis=0, dtype=np.float32)
        peak = float(np.max(np.abs(mix))) if mix.size else 0.0
        return (mix / peak).astype(np.float32) if peak > 1.0 else mix
    return _synth(seed, samples)


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
    rng = np.random.default_rng([seed, 0xA0D10])
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
