"""Polling a running task: ask the upstream, reschedule, or move it on to ``fetching``."""

from __future__ import annotations

import asyncio
import logging

from videogate.logs import log_transition
from videogate.providers.base import Route
from videogate.statuses import TERMINAL
from videogate.store.records import TaskChange, TaskRecord
from videogate.worker.host import StepHost
from videogate.worker.results import complete_with_result, remove_scratch, result_elsewhere
from videogate.worker.retry import poll_delay

log = logging.getLogger("videogate.worker")

# Weight of the newest run time in a route's estimate: about the last ten jobs count.
RUN_TIME_WEIGHT = 0.2


class RunTimes:
    """A running estimate, per route, of how long a job takes from submit to being seen
    finished (mean and mean absolute deviation, exponentially weighted), kept by one
    worker: it times the polls near a job's expected finish (``retry.poll_delay``)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}

    def observe(self, route: str, seconds: float) -> None:
        known = self._seen.get(route)
        if known is None:
            self._seen[route] = (seconds, 0.0)
            return
        mean, spread = known
        self._seen[route] = (
            mean + RUN_TIME_WEIGHT * (seconds - mean),
            spread + RUN_TIME_WEIGHT * (abs(seconds - mean) - spread),
        )

    def expected(self, route: str) -> tuple[float, float] | None:
        """``(mean, spread)`` in seconds, or None before the route's first finished job."""
        return self._seen.get(route)


class Poller:
    """The ``running`` and ``fetching`` steps of one worker."""

    def __init__(self, worker: StepHost) -> None:
        self.w = worker
        self.ctx = worker.ctx
        # At most ``max_concurrent_polls`` polls of one route at a time (per worker).
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.run_times = RunTimes()

    def _slot(self, route: Route) -> asyncio.Semaphore:
        slot = self._slots.get(route.name)
        if slot is None:
            slot = self._slots[route.name] = asyncio.Semaphore(route.max_concurrent_polls)
        return slot

    async def poll(self, row: TaskRecord) -> None:
        w = self.w
        route = w.route_of(row)
        # The sandbox renders during its poll, from the reference files.
        tctx = await w.task_context(row, route, files=route.capabilities.local)
        async with self._slot(route):
            started = w.clock.monotonic()
            result = await w.provider(route).poll(tctx, row.upstream_id or "")
            self.ctx.metrics.upstream_latency.labels(route.name, "poll").observe(
                w.clock.monotonic() - started
            )
        now = w.clock.now()
        store = self.ctx.store.tasks
        if result.status in ("queued", "running"):
            progress = row.progress if result.progress is None else min(result.progress, 99)
            moved = await store.transition(
                row.id,
                w.owner,
                "running",
                TaskChange(
                    progress=max(row.progress, progress),
                    updated_at=now,
                    errors_in_a_row=0,
                    next_run_at=min(now + self._next_poll(row, route, now), row.deadline_at),
                ),
                if_next_run_at=row.next_run_at,
            )
            if not moved:
                # A callback made the task due again while we polled: it must not be
                # pushed back to the regular schedule, so give it back as it is.
                await store.release(row.id, w.owner, keep_schedule=True)
        elif result.status == "succeeded":
            if row.started_at is not None:
                self.run_times.observe(route.name, now - row.started_at)
            change = TaskChange(
                status="fetching",
                updated_at=now,
                progress=99,
                next_run_at=now,
                errors_in_a_row=0,
                seed=result.seed if result.seed is not None else row.seed,
                upstream_result={
                    "video_url": result.video_url,
                    "thumbnail_url": result.thumbnail_url,
                    "last_frame_url": result.last_frame_url,
                },
                completion_tokens=result.completion_tokens,
                width=result.width,
                height=result.height,
                seconds=result.seconds,
            )
            moved = await store.transition(row.id, w.owner, "running", change, release=False)
            if moved:
                log_transition(log, row.id, "fetching", "the upstream finished the job")
                # Still ours (the lease was kept): fetch now, from the task as just written;
                # a failure of the fetch is the fetching task's, not the running one's.
                await w.guarded(change.applied_to(row), self.fetch)
            else:
                await self._drop_lost_render(row)
        else:
            code = result.error_code or result.status
            message = result.error_message or f"the upstream reported the task {result.status}"
            status = result.status if result.status in ("cancelled", "expired") else "failed"
            await w.finish_failed(row, code, message, status=status)

    def _next_poll(self, row: TaskRecord, route: Route, now: float) -> float:
        cap = self.w.settings.poll_max_interval_seconds
        estimate = self.run_times.expected(route.name)
        if estimate is None or row.started_at is None:
            return poll_delay(row.steps - 1, cap=cap)
        expected, spread = estimate
        return poll_delay(
            row.steps - 1, elapsed=now - row.started_at, expected=expected, spread=spread, cap=cap
        )

    async def _drop_lost_render(self, row: TaskRecord) -> None:
        # Another worker took the task over (our lease lapsed) and has already finished it:
        # the scratch this poll rendered is nobody's now, and the winner removed its own
        # copy before ours was written.
        now_row = await self.ctx.store.tasks.get(row.id)
        if row.upstream_id and (now_row is None or now_row.status in TERMINAL):
            remove_scratch(self.ctx, row.upstream_id)

    async def fetch(self, row: TaskRecord) -> None:
        """Copy the result into our own storage, then complete the task."""
        missing = result_elsewhere(self.ctx, row)
        if missing is not None:
            await self._poll_again(row, missing)
            return
        await complete_with_result(self.ctx, self.w.owner, row)
        self.w.forget(row.id)

    async def _poll_again(self, row: TaskRecord, missing: str) -> None:
        # The job's files are on another worker's disk (it stopped before copying them):
        # back to ``running``, so that a poll here runs the local job again or downloads the
        # upstream's result again. Neither submits anything, so nothing is paid twice.
        log.warning(
            "task %s: its result %s is not on this worker's disk; polling the job again",
            row.id,
            missing,
        )
        now = self.w.clock.now()
        await self.ctx.store.tasks.transition(
            row.id,
            self.w.owner,
            "fetching",
            TaskChange(status="running", upstream_result=None, updated_at=now, next_run_at=now),
        )
