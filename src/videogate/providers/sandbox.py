"""The built-in offline provider: renders real mp4 previews locally (no key, no network).

A request for ``output_format: mov`` gets the same clip remuxed into a QuickTime container.

``submit`` only names the job; the render happens on the first ``poll``, in the worker's
render process pool, so the API stays responsive. A crash mid-render is harmless: the
render is deterministic and simply runs again when another worker takes the task over.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import ClassVar

from videogate.media.encode import remux
from videogate.media.render import RenderResult, RenderSpec, render
from videogate.media.rework import Mode, rework
from videogate.providers.base import Capabilities, PollResult, ProviderDeps, Route, TaskContext
from videogate.request import resolve_output

DEFAULT_AUTO_DURATION = 5
PROGRESS_INTERVAL = 0.5


def _seed_for(ctx: TaskContext) -> int:
    if ctx.request.seed is not None and ctx.request.seed >= 0:
        return ctx.request.seed
    digest = hashlib.sha256(ctx.task_id.encode()).digest()
    return int.from_bytes(digest[:4], "big")


PROGRESS_FILE = "progress"


def _render_job(spec: RenderSpec, out_dir: str) -> RenderResult:
    """Runs in a render process; leaves its progress in a file the worker reads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress_file = out / PROGRESS_FILE

    def on_progress(fraction: float) -> None:
        progress_file.write_text(f"{fraction:.3f}")

    return render(
        spec,
        out / "video.mp4",
        out_thumbnail=out / "thumbnail.jpg",
        out_last_frame=out / "last_frame.png",
        on_progress=on_progress,
    )


def _rework_job(
    mode: Mode,
    source: str,
    out_dir: str,
    prompt: str,
    size: tuple[int, int],
    seconds: float,
    seed: int,
    generate_audio: bool = False,
) -> RenderResult:
    """Remix, edit or extend the source clip in a render process (see ``media.rework``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress_file = out / PROGRESS_FILE

    def on_progress(fraction: float) -> None:
        progress_file.write_text(f"{fraction:.3f}")

    return rework(
        mode,
        Path(source),
        out / "video.mp4",
        prompt=prompt,
        width=size[0],
        height=size[1],
        seconds=seconds,
        seed=seed,
        generate_audio=generate_audio,
        out_thumbnail=out / "thumbnail.jpg",
        out_last_frame=out / "last_frame.png",
        on_progress=on_progress,
    )


def _read_progress(path: Path) -> int | None:
    try:
        return int(float(path.read_text()) * 100)
    except (OSError, ValueError):
        return None


class SandboxProvider:
    """Renders locally with :func:`videogate.media.render.render`."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        free=True,
        needs_base_url=False,
        needs_api_key=False,
        local=True,
        output_formats=("mp4", "mov"),
    )

    def __init__(self, route: Route, deps: ProviderDeps) -> None:
        self._route = route
        self._deps = deps

    def build_spec(self, ctx: TaskContext) -> RenderSpec:
        req = ctx.request
        _, width, height = resolve_output(req)
        paths = ctx.reference_paths

        def of_role(role: str) -> tuple[Path, ...]:
            return tuple(paths[r.label] for r in req.references if r.role == role)

        first = of_role("first_frame")
        last = of_role("last_frame")
        return RenderSpec(
            prompt=req.prompt,
            width=width,
            height=height,
            duration=float(req.duration if req.duration > 0 else DEFAULT_AUTO_DURATION),
            seed=_seed_for(ctx),
            generate_audio=req.generate_audio,
            model=req.model,
            fps=self._deps.settings.sandbox_fps,
            first_frame=first[0] if first else None,
            last_frame=last[0] if last else None,
            reference_images=of_role("reference_image"),
            reference_videos=of_role("reference_video"),
            reference_audios=of_role("reference_audio"),
            watermark=req.watermark,
        )

    async def submit(self, ctx: TaskContext) -> str:
        return f"sbx-{ctx.task_id}"

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        spec = self.build_spec(ctx)
        out_dir = ctx.work_dir / upstream_id
        req = ctx.request
        if req.operation != "generate":
            # The source clip is the request's reference video 1 (see TaskService).
            source = ctx.reference_paths["video 1"]
            job = asyncio.ensure_future(
                self._deps.run_cpu(
                    _rework_job,
                    req.operation,
                    str(source),
                    str(out_dir),
                    req.prompt,
                    (spec.width, spec.height),
                    spec.duration,
                    spec.seed,
                    spec.generate_audio,
                )
            )
        else:
            job = asyncio.ensure_future(self._deps.run_cpu(_render_job, spec, str(out_dir)))
        last = -1
        while not job.done():
            await asyncio.wait([job], timeout=PROGRESS_INTERVAL)
            progress = _read_progress(out_dir / PROGRESS_FILE)
            if ctx.report_progress and progress is not None and progress > last:
                last = progress
                await ctx.report_progress(min(max(progress, 5), 98))
        result: RenderResult = job.result()
        video = out_dir / "video.mp4"
        if req.output_format != "mp4":
            video = out_dir / f"video.{req.output_format}"
            await asyncio.to_thread(remux, out_dir / "video.mp4", video, req.output_format)
        return PollResult(
            status="succeeded",
            progress=100,
            video_url=video.resolve().as_uri(),
            thumbnail_url=(out_dir / "thumbnail.jpg").resolve().as_uri(),
            last_frame_url=(
                (out_dir / "last_frame.png").resolve().as_uri()
                if ctx.request.return_last_frame
                else None
            ),
            seconds=result.duration,
            width=result.width,
            height=result.height,
            seed=spec.seed,
            completion_tokens=_tokens(result.width, result.height, result.duration),
        )

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        # Nothing runs between polls, so there is nothing to stop.
        return None

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        # Submitting is only naming the job: it is safe to name it again.
        return f"sbx-{ctx.task_id}"


def _tokens(width: int, height: int, seconds: float) -> int:
    # Seedance's token formula (API.md §4), so sandbox usage looks like real usage.
    return int(width * height * (24 * seconds + 1) / 1024)


PROVIDER_CLASS = SandboxProvider
