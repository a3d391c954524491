"""Open video models on this machine's GPU, through Hugging Face diffusers.

A ``provider = "diffusers"`` route names a local ``save_pretrained`` directory and a pipeline
family (``local = { dir = …, family = "wan-t2v" }``). Nothing is ever downloaded. The GPU
work runs in one child process per route and worker (:mod:`videogate.media.diffusion`): the
pipeline is loaded once and reused, one generation at a time (the route's in-flight cap is
1). ``submit`` only names the job; the generation runs during the first ``poll``, which
reports each denoising step as progress and stops between steps once the task is cancelled.

This module imports neither torch nor diffusers: they are needed only in the child process
(``pip install 'videogate[local]'``).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import math
import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, ClassVar

from videogate.catalog import ModelSpec, ReferenceLimits
from videogate.errors import Disposition, UpstreamError
from videogate.logs import current_setup
from videogate.media.diffusion import GenerationJob, PipelineSpec, serve
from videogate.media.sizes import RATIOS, RESOLUTIONS
from videogate.providers.base import Capabilities, PollResult, ProviderDeps, Route, TaskContext
from videogate.request import resolve_output
from videogate.settings import LocalModelConfig

# How often a running generation checks that its task is still wanted (and keeps the
# progress fresh) when no step has finished in between.
HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class Family:
    """What one pipeline family accepts (its model cards' figures, see docs/local-models.md)."""

    pipeline: str  # the diffusers class in model_index.json
    fps: int
    frame_step: int  # frames = frame_step * k + 1 (the VAE's temporal compression)
    max_seconds: int
    sizes: tuple[tuple[int, int], ...]
    audio: bool
    image: bool  # takes (and needs) a first-frame image
    steps: int
    guidance_scale: float
    default_seconds: int = 5


_WAN_SIZES = ((832, 480), (480, 832), (624, 624), (1280, 720), (720, 1280), (960, 960))
FAMILIES: dict[str, Family] = {
    "wan-t2v": Family("WanPipeline", 16, 4, 5, _WAN_SIZES, False, False, 50, 5.0),
    "wan-i2v": Family("WanImageToVideoPipeline", 16, 4, 5, _WAN_SIZES, False, True, 40, 5.0),
    "ltx2": Family(
        "LTX2Pipeline",
        24,
        8,
        10,
        ((768, 512), (512, 768), (640, 640), (1280, 704), (704, 1280), (960, 960)),
        True,
        False,
        40,
        4.0,
    ),
}


def family_of(local: LocalModelConfig) -> Family:
    return FAMILIES[local.family]


def sizes_of(local: LocalModelConfig) -> tuple[tuple[int, int], ...]:
    return local.size_pairs or family_of(local).sizes


def model_spec(route: Route) -> ModelSpec:
    """The public model a diffusers route serves, with its family's limits."""
    assert route.local is not None
    fam = family_of(route.local)
    fps = route.local.fps or fam.fps
    sizes = sizes_of(route.local)
    limits = ReferenceLimits(max_images=1 if fam.image else 0, max_videos=0, max_audios=0)
    native = " ".join(f"{w}x{h}" for w, h in sizes)
    return ModelSpec(
        route.model,
        f"local {route.local.family} model ({route.local.dir.name}) at {fps} fps; every "
        f"ratio and resolution is mapped to the nearest native size ({native})",
        resolutions=RESOLUTIONS,
        ratios=(*RATIOS, "adaptive"),
        min_duration=1,
        max_duration=fam.max_seconds,
        default_duration=min(fam.default_seconds, fam.max_seconds),
        audio=fam.audio,
        requires_image=fam.image,
        limits=limits,
    )


def nearest_size(width: int, height: int, sizes: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The supported size closest in shape first, then in area, to ``width x height``."""

    def distance(size: tuple[int, int]) -> tuple[float, float]:
        w, h = size
        shape = abs(math.log((w / h) / (width / height)))
        return round(shape, 2), abs(math.log((w * h) / (width * height)))

    return min(sizes, key=distance)


def frame_count(seconds: float, fps: int, fam: Family) -> int:
    """``seconds`` at ``fps``, on the family's frame grid (step * k + 1), within its limit."""
    most = (fam.max_seconds * fps) // fam.frame_step
    steps = min(max(1, round(seconds * fps / fam.frame_step)), most)
    return fam.frame_step * steps + 1


def route_problem(route: Route) -> str | None:
    """Why this diffusers route cannot run, or None. Cheap: a few stats and a small JSON."""
    local = route.local
    if local is None:
        return None
    fam = family_of(local)
    missing = [m for m in ("torch", "diffusers", "transformers") if not _installed(m)]
    if missing:
        return (
            f"{', '.join(missing)} not installed: pip install 'videogate[local]' "
            "(see docs/local-models.md)"
        )
    index = local.dir / "model_index.json"
    if not local.dir.is_dir():
        return (
            f"model directory {local.dir} does not exist: put a diffusers save_pretrained "
            f"copy of a {local.family} model there (see docs/local-models.md)"
        )
    try:
        meta = json.loads(index.read_text())
    except FileNotFoundError:
        return f"{local.dir} has no model_index.json: it is not a diffusers save_pretrained copy"
    except (OSError, ValueError) as exc:
        return f"{index} cannot be read: {exc}"
    if not isinstance(meta, dict):
        return f"{index} is not a JSON object"
    found = meta.get("_class_name")
    if found != fam.pipeline:
        return (
            f"{local.dir} holds a {found} model, but family {local.family!r} needs a "
            f"{fam.pipeline}; fix the route's family or dir"
        )
    for name, value in meta.items():
        listed = isinstance(value, list) and value and value[0] is not None
        if listed and not (local.dir / name).is_dir():
            return f"{local.dir} lacks the {name}/ folder that model_index.json lists"
    return None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class _Runner:
    """The route's GPU process: started on first use, and again after it died."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.cancel: Event | None = None
        self.lock = asyncio.Lock()  # one generation at a time
        self.job_id: str | None = None

    def ensure_started(self) -> tuple[Connection, Event]:
        if self.process is not None and self.process.is_alive():
            assert self.conn is not None and self.cancel is not None
            return self.conn, self.cancel
        self.stop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        cancel = ctx.Event()
        process = ctx.Process(
            target=serve,
            args=(child, cancel, self.spec, current_setup()),
            name="videogate-diffusers",
            daemon=True,
        )
        process.start()
        child.close()
        self.process, self.conn, self.cancel = process, parent, cancel
        return parent, cancel

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process = self.conn = self.cancel = None

    def exit_reason(self) -> str:
        if self.process is not None:
            self.process.join(5)  # reap it, for its exit code
        code = self.process.exitcode if self.process is not None else None
        if code is not None and code < 0:
            return f"was killed by signal {-code}"
        return f"exited with code {code}"


class DiffusersProvider:
    """Runs a local diffusers pipeline for one route."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        needs_base_url=False, needs_api_key=False, local=True, local_model=True
    )
    model_spec = staticmethod(model_spec)
    route_problem = staticmethod(route_problem)

    def __init__(self, route: Route, deps: ProviderDeps) -> None:
        assert route.local is not None
        self._route = route
        self._local = route.local
        self._family = family_of(route.local)
        self._runner = _Runner(
            PipelineSpec(
                model_dir=str(route.local.dir),
                pipeline=self._family.pipeline,
                dtype=route.local.dtype,
                device=route.local.device,
                cpu_offload=route.local.cpu_offload,
            )
        )

    def build_job(self, ctx: TaskContext, upstream_id: str) -> GenerationJob:
        req = ctx.request
        fam = self._family
        fps = self._local.fps or fam.fps
        _, want_w, want_h = resolve_output(req)
        width, height = nearest_size(want_w, want_h, sizes_of(self._local))
        seconds = req.duration if req.duration > 0 else fam.default_seconds
        image = None
        if fam.image:
            ref = req.with_role("first_frame") or next(
                (r for r in req.references if r.kind == "image"), None
            )
            if ref is None or ref.label not in ctx.reference_paths:
                raise UpstreamError(
                    f"model {req.model} turns an image into a video: give one image "
                    "(role first_frame)",
                    code="invalid_request",
                )
            image = str(ctx.reference_paths[ref.label])
        return GenerationJob(
            job_id=upstream_id,
            prompt=req.prompt,
            width=width,
            height=height,
            num_frames=frame_count(seconds, fps, fam),
            fps=fps,
            seed=_seed(req.seed, ctx.task_id),
            steps=self._local.steps or fam.steps,
            guidance_scale=(
                self._local.guidance_scale
                if self._local.guidance_scale is not None
                else fam.guidance_scale
            ),
            image_path=image,
            family_audio=fam.audio,
            keep_audio=req.generate_audio and fam.audio,
            out_dir=str(ctx.work_dir / upstream_id),
        )

    async def submit(self, ctx: TaskContext) -> str:
        problem = route_problem(self._route)
        if problem is not None:
            raise UpstreamError(
                f"route {self._route.name}: {problem}",
                code="model_unavailable",
                disposition=Disposition.FAIL_OVER,
            )
        return f"local-{ctx.task_id}"

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        job = self.build_job(ctx, upstream_id)
        async with self._runner.lock:
            result = await self._run(ctx, job)
        if result.get("cancelled"):
            return PollResult(
                status="cancelled",
                error_code="cancelled",
                error_message="cancelled between denoising steps",
            )
        width, height, frames = result["width"], result["height"], result["frames"]
        seconds = frames / job.fps
        return PollResult(
            status="succeeded",
            progress=100,
            video_url=Path(result["video"]).as_uri(),
            thumbnail_url=Path(result["thumbnail"]).as_uri(),
            last_frame_url=(
                Path(result["last_frame"]).as_uri() if ctx.request.return_last_frame else None
            ),
            seconds=seconds,
            width=width,
            height=height,
            seed=job.seed,
            completion_tokens=int(width * height * frames / 1024),
        )

    async def _run(self, ctx: TaskContext, job: GenerationJob) -> dict[str, Any]:
        runner = self._runner
        conn, cancel = runner.ensure_started()
        cancel.clear()
        runner.job_id = job.job_id
        try:
            conn.send(job)
            last = -1
            while True:
                ready = await asyncio.to_thread(conn.poll, HEARTBEAT_SECONDS)
                if not ready:
                    if runner.process is None or not runner.process.is_alive():
                        raise self._crashed()
                    await self._heartbeat(ctx, max(last, 1), cancel)
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    raise self._crashed() from None
                kind = message[0]
                if kind == "progress":
                    _, step, total = message
                    # Loading is 0-5 %, the steps 5-95 %, decoding and encoding the rest.
                    last = 5 + int(90 * step / max(total, 1))
                    await self._heartbeat(ctx, last, cancel)
                elif kind == "done":
                    result: dict[str, Any] = message[1]
                    return result
                elif kind == "cancelled":
                    return {"cancelled": True}
                elif kind == "failed":
                    _, code, text = message
                    raise UpstreamError(text, code=code)
        except asyncio.CancelledError:
            # The worker is stopping (or gave the task up) mid-generation: the process
            # would still be busy with this job and answer for it later, so end it.
            runner.stop()
            raise
        finally:
            runner.job_id = None

    async def _heartbeat(self, ctx: TaskContext, progress: int, cancel: Event) -> None:
        if ctx.report_progress is None:
            return
        still_running = await ctx.report_progress(min(progress, 98))
        if still_running is False:  # cancelled (or taken over): stop after this step
            cancel.set()

    def _crashed(self) -> UpstreamError:
        reason = self._runner.exit_reason()
        self._runner.stop()
        return UpstreamError(
            f"the local model process of route {self._route.name} {reason} while generating "
            "(out of memory? see the worker's log); the next task loads the model again",
            code="local_model_crashed",
        )

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        runner = self._runner
        if runner.job_id == upstream_id and runner.cancel is not None:
            runner.cancel.set()

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        # Submitting is only naming the job: it is safe to name it again.
        return f"local-{ctx.task_id}"


def _seed(seed: int | None, task_id: str) -> int:
    if seed is not None and seed >= 0:
        return seed
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big")


PROVIDER_CLASS = DiffusersProvider
