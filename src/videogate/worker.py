"""The task engine: claims due tasks with a lease and moves each one step.

States and steps (DESIGN.md): ``queued`` → submit → ``running`` → poll … → ``fetching``
→ copy the result into our blob store → ``succeeded``. Every write is a compare-and-set
on the status and the lease, so a task cancelled meanwhile, or taken over by another
worker after this one stalled, is never overwritten. A worker that dies leaves leases
that lapse; any other worker then takes those tasks over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

from videogate.errors import UpstreamError, VideogateError
from videogate.providers import ProviderDeps, load_provider
from videogate.providers.base import PollResult, Provider, Route, TaskContext
from videogate.request import GenerationRequest
from videogate.service.context import AppContext
from videogate.store.tables import Task

log = logging.getLogger("videogate.worker")

T = TypeVar("T")
MAX_STEP_ERRORS = 5
MAX_POLL_DELAY = 30.0


def poll_delay(polls: int) -> float:
    """Quick at first, slower later: 2 s, 3 s, 4.5 s … capped at 30 s."""
    return float(min(2.0 * 1.5 ** max(polls, 0), MAX_POLL_DELAY))


class Worker:
    """Runs tasks until ``stop`` is set. Several workers may share one database."""

    def __init__(self, ctx: AppContext, *, owner: str | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._held: set[str] = set()
        self._active: set[asyncio.Task[None]] = set()
        self._pool: ProcessPoolExecutor | None = None
        self._providers: dict[str, Provider] = {}
        self._deps = ProviderDeps(settings=ctx.settings, http=ctx.http, run_cpu=self._run_cpu)

    # Process pool for CPU-heavy provider work (the sandbox renderer) -----------------

    async def _run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            workers = self.settings.render_processes or os.cpu_count() or 1
            # "spawn": a fresh interpreter per render process, no inherited event loop/locks.
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def _provider(self, route: Route) -> Provider:
        provider = self._providers.get(route.name)
        if provider is None:
            provider = load_provider(route.provider, route, self._deps)
            self._providers[route.name] = provider
        return provider

    # Main loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started", self.owner)
        renewer = asyncio.create_task(self._renew_leases(stop))
        try:
            while not stop.is_set():
                started = await self.claim_and_start()
                if started == 0:
                    self.ctx.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            _first(self.ctx.wakeup.wait(), stop.wait()),
                            timeout=self.settings.worker_poll_interval,
                        )
        finally:
            renewer.cancel()
            for task in list(self._active):
                task.cancel()
            await asyncio.gather(*self._active, renewer, return_exceptions=True)
            await self.close()
            log.info("worker %s stopped", self.owner)

    async def close(self) -> None:
        """Stop the render processes."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def claim_and_start(self) -> int:
        free = self.settings.worker_concurrency - len(self._active)
        if free <= 0:
            return 0
        now = time.time()
        claimed = await self.ctx.store.tasks.claim_due(
            self.owner, free, now, self.settings.lease_seconds
        )
        for row in claimed:
            self._held.add(row.id)
            job = asyncio.create_task(self._run_step(row))
            self._active.add(job)
            job.add_done_callback(self._active.discard)
        return len(claimed)

    async def run_until_idle(self, timeout: float = 60.0) -> None:
        """Step tasks until none is due (for tests and one-shot runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = await self.claim_and_start()
            if self._active:
                await asyncio.wait(self._active, return_when=asyncio.FIRST_COMPLETED)
            elif started == 0:
                return

    async def _renew_leases(self, stop: asyncio.Event) -> None:
        interval = self.settings.lease_seconds / 3
        while not stop.is_set():
            await asyncio.sleep(interval)
            try:
                await self.ctx.store.tasks.renew(
                    self.owner, list(self._held), time.time() + self.settings.lease_seconds
                )
            except Exception:
                log.exception("lease renewal failed; will retry")

    # One step of one task ---------------------------------------------------------------

    async def _run_step(self, row: Task) -> None:
        try:
            await self.step(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("step of task %s failed", row.id)
            await self._step_error(row, exc)
        finally:
            self._held.discard(row.id)

    async def step(self, row: Task) -> None:
        now = time.time()
        if now >= row.deadline_at:
            await self._finish_failed(
                row,
                row.status,
                "expired",
                "the task did not finish before its deadline "
                f"({self.settings.task_deadline_seconds} s); it was stopped",
                status="expired",
            )
            return
        if row.status == "queued":
            await self._submit(row)
        elif row.status == "running":
            await self._poll(row)
        elif row.status == "fetching":
            await self._fetch(row)
        else:  # a terminal task should never be due; drop it from the schedule
            await self.ctx.store.tasks.transition(row.id, self.owner, row.status, next_run_at=None)

    def _task_context(self, row: Task, route: Route) -> TaskContext:
        req = GenerationRequest.model_validate(row.request)
        paths: dict[str, Path] = {}
        for ref in req.references:
            if ref.blob_key:
                local = self.ctx.blobs.local_path(ref.blob_key)
                if local is not None:
                    paths[ref.label] = local

        async def report_progress(progress: int) -> None:
            await self.ctx.store.tasks.set_progress(row.id, self.owner, progress, time.time())

        return TaskContext(
            task_id=row.id,
            request=req,
            route=route,
            reference_paths=paths,
            work_dir=self.ctx.work_dir,
            report_progress=report_progress,
        )

    async def _group_of(self, key_id: str) -> str:
        key = await self.ctx.store.keys.get(key_id)
        return key.group if key is not None else "default"

    async def _submit(self, row: Task) -> None:
        group = await self._group_of(row.key_id)
        candidates = self.ctx.router.candidates(row.model, group)
        if not candidates:
            await self._finish_failed(
                row,
                "queued",
                "no_available_route",
                f"No available route for model {row.model} under group {group}",
            )
            return
        route = candidates[0]
        tctx = self._task_context(row, route)
        upstream_id = await self._provider(route).submit(tctx)
        now = time.time()
        await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            "queued",
            status="running",
            route=route.name,
            provider=route.provider,
            upstream_id=upstream_id,
            started_at=now,
            updated_at=now,
            progress=5,
            next_run_at=now,
        )

    def _route_of(self, row: Task) -> Route:
        route = self.ctx.router.get(row.route or "")
        if route is None:
            raise UpstreamError(
                f"route {row.route!r} is no longer configured", code="route_removed"
            )
        return route

    async def _poll(self, row: Task) -> None:
        route = self._route_of(row)
        tctx = self._task_context(row, route)
        try:
            result = await self._provider(route).poll(tctx, row.upstream_id or "")
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            await self._poll_error(row, exc)
            return
        now = time.time()
        store = self.ctx.store.tasks
        if result.status in ("queued", "running"):
            await store.transition(
                row.id,
                self.owner,
                "running",
                progress=max(row.progress, min(result.progress or row.progress, 99)),
                updated_at=now,
                poll_errors=0,
                next_run_at=min(now + poll_delay(row.steps), row.deadline_at),
            )
        elif result.status == "succeeded":
            moved = await store.transition(
                row.id,
                self.owner,
                "running",
                release=False,
                status="fetching",
                upstream_result=_result_dict(result),
                updated_at=now,
                completion_tokens=result.completion_tokens,
                seed=result.seed or row.seed,
                width=result.width,
                height=result.height,
                seconds=result.seconds,
                progress=99,
                next_run_at=now,
            )
            if moved:
                row.status = "fetching"
                row.upstream_result = _result_dict(result)
                await self._fetch(row)
        else:
            code = result.error_code or result.status
            message = result.error_message or f"the upstream reported the task {result.status}"
            status = result.status if result.status in ("cancelled", "expired") else "failed"
            await self._finish_failed(row, "running", code, message, status=status)

    async def _fetch(self, row: Task) -> None:
        """Copy the result into our own storage, then complete the task."""
        result = row.upstream_result or {}
        prefix = f"results/{row.key_id}/{row.id}"
        keys: dict[str, str | None] = {}
        for field, name in (
            ("video_url", "video.mp4"),
            ("thumbnail_url", "thumbnail.jpg"),
            ("last_frame_url", "last_frame.png"),
        ):
            url = result.get(field)
            if not url:
                keys[field] = None
                continue
            keys[field] = f"{prefix}/{name}"
            await self._copy_into_blobs(str(url), keys[field] or "")
        now = time.time()
        done = await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            "fetching",
            status="succeeded",
            video_key=keys["video_url"],
            thumbnail_key=keys["thumbnail_url"],
            last_frame_key=keys["last_frame_url"],
            progress=100,
            updated_at=now,
            completed_at=now,
            next_run_at=None,
        )
        if done and row.upstream_id:
            shutil.rmtree(self.ctx.work_dir / row.upstream_id, ignore_errors=True)

    async def _copy_into_blobs(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "file":
            await self.ctx.blobs.put_file(key, Path(url2pathname(parts.path)))
            return
        raise UpstreamError(f"cannot copy result from {parts.scheme!r} URLs yet")

    # Failure paths ------------------------------------------------------------------------

    async def _finish_failed(
        self, row: Task, expected: str, code: str, message: str, *, status: str = "failed"
    ) -> None:
        now = time.time()
        await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            expected,
            status=status,
            error_code=code,
            error_message=message,
            updated_at=now,
            completed_at=now,
            next_run_at=None,
        )

    async def _poll_error(self, row: Task, exc: VideogateError) -> None:
        errors = row.poll_errors + 1
        if errors >= MAX_STEP_ERRORS:
            await self._finish_failed(
                row,
                row.status,
                "upstream_poll_failed",
                f"the upstream could not be reached {errors} times in a row: {exc.message}",
            )
            return
        now = time.time()
        await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            row.status,
            poll_errors=errors,
            updated_at=now,
            next_run_at=min(now + poll_delay(errors), row.deadline_at),
        )

    async def _step_error(self, row: Task, exc: Exception) -> None:
        errors = row.poll_errors + 1
        message = exc.message if isinstance(exc, VideogateError) else f"{type(exc).__name__}: {exc}"
        code = exc.code if isinstance(exc, VideogateError) else "internal_error"
        try:
            if errors >= MAX_STEP_ERRORS or (isinstance(exc, UpstreamError) and not exc.retryable):
                await self._finish_failed(row, row.status, code, message)
            else:
                now = time.time()
                await self.ctx.store.tasks.transition(
                    row.id,
                    self.owner,
                    row.status,
                    poll_errors=errors,
                    updated_at=now,
                    next_run_at=min(now + poll_delay(errors), row.deadline_at),
                )
        except Exception:
            log.exception("could not record the failure of task %s; its lease will lapse", row.id)


def _result_dict(result: PollResult) -> dict[str, Any]:
    return {
        "video_url": result.video_url,
        "thumbnail_url": result.thumbnail_url,
        "last_frame_url": result.last_frame_url,
    }


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
