"""The GPU process of a ``diffusers`` route: load the pipeline once, generate, encode.

:func:`serve` runs in a child process (spawned by :mod:`videogate.providers.diffusers`). It
takes :class:`GenerationJob` objects from a pipe and answers with messages:

* ``("progress", step, total)`` after each denoising step,
* ``("done", {"video": path, "width": …, "height": …, "frames": …, …})``,
* ``("cancelled",)`` when the cancel event was set between two steps,
* ``("failed", code, message)`` (a model that cannot be loaded, out of memory, a bad input).

torch and diffusers are imported here only, inside the functions: the rest of videogate
never needs them.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from PIL import Image

from videogate.logs import LogSetup, install
from videogate.media.encode import ClipEncoder, open_mp4
from videogate.media.picture import U8
from videogate.media.soundtrack import F32, SAMPLE_RATE

log = logging.getLogger("videogate.diffusers")


@dataclass(frozen=True)
class PipelineSpec:
    """What to load (picklable: it crosses into the child process)."""

    model_dir: str
    pipeline: str  # a diffusers pipeline class name
    dtype: str
    device: str
    cpu_offload: bool


@dataclass(frozen=True)
class GenerationJob:
    """One generation, already mapped onto what the family supports."""

    job_id: str
    prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    seed: int
    steps: int
    guidance_scale: float
    image_path: str | None
    family_audio: bool  # the pipeline makes a soundtrack
    keep_audio: bool  # … and the request wants it
    out_dir: str


class _Cancelled(Exception):
    """Raised from the step callback to stop a generation between two steps."""


def serve(
    conn: Connection, cancel: Event, spec: PipelineSpec, logs: LogSetup | None = None
) -> None:
    """The child process's loop: one job at a time until the pipe closes. ``logs``: the
    worker's logging set-up (a spawned interpreter starts with none)."""
    install(logs)
    log.info("diffusers process %d serves %s from %s", os.getpid(), spec.pipeline, spec.model_dir)
    pipeline: Any = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the worker went away
        if job is None:
            return
        try:
            if pipeline is None:
                pipeline = load_pipeline(spec)
            conn.send(("done", generate(pipeline, job, cancel, conn)))
        except _Cancelled:
            conn.send(("cancelled",))
        except _LoadError as exc:
            log.warning("%s", exc)
            conn.send(("failed", "model_load_failed", str(exc)))
        except Exception as exc:
            code, message = _describe(exc, spec)
            conn.send(("failed", code, message))
        finally:
            gc.collect()
            _empty_cache()


class _LoadError(Exception):
    pass


def load_pipeline(spec: PipelineSpec) -> Any:
    """The pipeline from ``spec.model_dir``, offline: weights are never downloaded."""
    # The optional `local` extra, loaded only in the generation process (module docstring).
    import diffusers
    import torch

    cls = getattr(diffusers, spec.pipeline, None)
    if cls is None:
        raise _LoadError(
            f"diffusers {diffusers.__version__} has no {spec.pipeline}: "
            "upgrade diffusers (pip install -U 'videogate[local]')"
        )
    dtype = getattr(torch, spec.dtype)
    try:
        pipe = cls.from_pretrained(spec.model_dir, dtype=dtype, local_files_only=True)
    except Exception as exc:
        raise _LoadError(
            f"could not load {spec.pipeline} from {spec.model_dir}: {type(exc).__name__}: "
            f"{str(exc)[:500]}"
        ) from exc
    if spec.cpu_offload:
        pipe.enable_model_cpu_offload(device=spec.device)
    else:
        pipe.to(spec.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: Any, job: GenerationJob, cancel: Event, conn: Connection) -> dict[str, Any]:
    """Run ``pipe`` for ``job`` and encode the result into ``job.out_dir``."""
    import torch  # the optional `local` extra (module docstring)

    def on_step(_pipe: Any, step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        conn.send(("progress", step + 1, job.steps))
        if cancel.is_set():
            raise _Cancelled
        return kwargs

    if cancel.is_set():
        raise _Cancelled
    conn.send(("progress", 0, job.steps))
    args: dict[str, Any] = {
        "prompt": job.prompt,
        "height": job.height,
        "width": job.width,
        "num_frames": job.num_frames,
        "num_inference_steps": job.steps,
        "guidance_scale": job.guidance_scale,
        "generator": torch.Generator(device="cpu").manual_seed(job.seed),
        "output_type": "np",
        "callback_on_step_end": on_step,
    }
    if job.image_path is not None:
        with Image.open(job.image_path) as img:
            args["image"] = img.convert("RGB").resize((job.width, job.height))
    if job.family_audio:
        args["frame_rate"] = float(job.fps)
    started = time.monotonic()
    output = pipe(**args)
    frames = _frames(output.frames)
    audio = None
    if job.keep_audio:
        audio = _stereo_48k(getattr(output, "audio", None), pipe)
    out = Path(job.out_dir).resolve()  # the worker turns these into file:// URLs
    out.mkdir(parents=True, exist_ok=True)
    encode_clip(frames, job.fps, audio, out / "video.mp4")
    Image.fromarray(frames[0]).save(out / "thumbnail.jpg", quality=85)
    Image.fromarray(frames[-1]).save(out / "last_frame.png")
    return {
        "video": str(out / "video.mp4"),
        "thumbnail": str(out / "thumbnail.jpg"),
        "last_frame": str(out / "last_frame.png"),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "frames": int(frames.shape[0]),
        "audio": audio is not None,
        "seconds_spent": round(time.monotonic() - started, 3),
    }


def _frames(raw: Any) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The first video of a pipeline output as uint8 ``(frames, height, width, 3)``."""
    video = raw[0]
    if hasattr(video, "detach"):
        video = video.detach().float().cpu().numpy()
    array = np.asarray(video)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def _stereo_48k(audio: Any, pipe: Any) -> F32 | None:
    """The pipeline's soundtrack as float32 stereo at the encoder's sample rate."""
    if audio is None:
        return None
    if hasattr(audio, "detach"):
        audio = audio.detach().float().cpu().numpy()
    track = np.asarray(audio, dtype=np.float32)
    if track.ndim == 3:
        track = track[0]
    if track.ndim == 1:
        track = track[None, :]
    if track.shape[0] == 1:
        track = np.repeat(track, 2, axis=0)
    track = track[:2]
    rate = _sample_rate(pipe)
    if rate != SAMPLE_RATE:
        samples = math.ceil(track.shape[1] * SAMPLE_RATE / rate)
        src = np.arange(track.shape[1]) / rate
        dst = np.arange(samples) / SAMPLE_RATE
        track = np.stack([np.interp(dst, src, channel) for channel in track])
    return np.ascontiguousarray(np.clip(track, -1.0, 1.0), dtype=np.float32)


def _sample_rate(pipe: Any) -> int:
    vocoder = getattr(pipe, "vocoder", None)
    config = getattr(vocoder, "config", None)
    for name in ("output_sampling_rate", "sampling_rate", "sample_rate"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 24_000


def encode_clip(
    frames: np.ndarray[Any, np.dtype[np.uint8]], fps: int, audio: F32 | None, path: Path
) -> None:
    """RGB frames (and a 48 kHz stereo soundtrack, if any) into an H.264/AAC mp4."""
    count, height, width, _ = frames.shape
    if audio is not None:  # exactly the video's length: pad or cut
        samples = round(count * SAMPLE_RATE / fps)
        audio = np.ascontiguousarray(
            np.pad(audio, ((0, 0), (0, max(0, samples - audio.shape[1]))))[:, :samples]
        )
    with open_mp4(path) as container:
        encoder = ClipEncoder(container, width, height, fps, audio)
        for index in range(count):
            rgb = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
            packed = cast(U8, rgb.reformat(format="yuv420p").to_ndarray())
            encoder.write(packed, index)
        encoder.finish()


def _describe(exc: Exception, spec: PipelineSpec) -> tuple[str, str]:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return (
            "out_of_memory",
            f"{spec.device} ran out of memory generating this video ({str(exc)[:300]}); "
            "ask for a lower resolution or a shorter duration, or set cpu_offload = true "
            "on the route",
        )
    return "local_model_error", f"the local model failed: {name}: {str(exc)[:500]}"


def _empty_cache() -> None:
    try:
        import torch  # the optional `local` extra: absent, there is no cache to empty
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
