"""Aftercare: upstream jobs of tasks that ended on our side while the job may still run.

A task cancelled by its owner, failed by us (its polls failed for the whole window) or
expired while an upstream works on it is refunded at once. Its upstream job is not free,
though, so a worker keeps the task scheduled and:

1. polls the job: if it has ended, records what it used (below) and stops;
2. else asks the upstream to cancel it: done where the upstream allows it (Ark cancels
   queued jobs; a relay may stop any);
3. where it refuses (Ark does not stop running jobs), follows the job until it ends.

What such a job used is kept in the task's ``upstream_result`` (never shown to clients)
as ``{"unbilled": {...}}``, and the operator's usage report lists it per route as upstream
work nobody paid for (docs/reliability.md).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from videogate.errors import UpstreamError
from videogate.providers.base import PollResult
from videogate.store.records import TaskChange, TaskRecord
from videogate.worker.host import StepHost
from videogate.worker.results import remove_scratch
from videogate.worker.retry import asks_again, describe, gives_up, is_infrastructure, retry_delay

log = logging.getLogger("videogate.worker")

FOLLOW_DELAY = 10.0  # seconds between two looks at a job we could not stop
FOLLOW_LIMIT = 3 * 86_400.0  # Ark expires jobs after at most 72 h: stop following then
_DONE = ("succeeded", "failed", "cancelled", "expired")


def unbilled_usage(route: str, result: PollResult, ended_as: str) -> dict[str, Any]:
    """The record of upstream work done for a task that was not charged for it."""
    return {
        "unbilled": {
            "route": route,
            "upstream_status": result.status,
            "task_status": ended_as,
            "completion_tokens": result.completion_tokens,
            "seconds": result.seconds,
            "width": result.width,
            "height": result.height,
        }
    }


class Aftercare:
    def __init__(self, worker: StepHost) -> None:
        self.w = worker
        self.ctx = worker.ctx

    async def step(self, row: TaskRecord) -> None:
        """One look at the upstream job of an ended task. Never changes its status."""
        try:
            await self._look(row)
        except Exception as exc:
            if is_infrastructure(exc):
                raise  # the worker retries the step, uncounted
            log.exception("task %s: looking after upstream job %s failed", row.id, row.upstream_id)
            await self._again(row, describe(exc))

    async def _look(self, row: TaskRecord) -> None:
        route = self.ctx.router.get(row.route or "")
        if route is None or not row.upstream_id:
            await self._done(row)
            return
        provider = self.w.provider(route)
        tctx = await self.w.task_context(row, route)
        if route.capabilities.local:  # nothing runs between polls (a poll would render)
            await provider.cancel(tctx, row.upstream_id)
            await self._done(row)
            return
        try:
            result = await provider.poll(tctx, row.upstream_id)
        except UpstreamError as exc:
            if asks_again(exc):
                await self._again(row, exc.message)
            else:  # the upstream no longer knows the job: nothing left to stop
                log.info("task %s: upstream job %s: %s", row.id, row.upstream_id, exc.message)
                await self._done(row)
            return
        if result.status in _DONE:
            # Failed, cancelled or expired jobs are not charged upstream; a finished one is.
            used = result.status == "succeeded"
            usage = unbilled_usage(route.name, result, row.status)
            await self._done(row, TaskChange(upstream_result=usage) if used else TaskChange())
            remove_scratch(self.ctx, row.upstream_id)
            return
        try:
            await provider.cancel(tctx, row.upstream_id)
        except UpstreamError as exc:
            if asks_again(exc):
                await self._again(row, exc.message)
                return
            # Refused (Ark does not stop a running job): follow it until it ends.
            if self.w.clock.now() - (row.completed_at or self.w.clock.now()) > FOLLOW_LIMIT:
                log.warning("task %s: stopped following upstream job %s", row.id, row.upstream_id)
                await self._done(row)
                return
            log.info(
                "task %s: the upstream did not stop %s (%s); following it to its end",
                row.id,
                row.upstream_id,
                exc.message,
            )
            await self._later(row, FOLLOW_DELAY, errors_in_a_row=0)
            return
        await self._done(row)  # the upstream stopped the job before it cost anything

    async def _again(self, row: TaskRecord, why: str) -> None:
        errors = row.errors_in_a_row + 1
        if gives_up(errors, self.w.settings.poll_failure_window_seconds):
            log.warning(
                "task %s: gave up on upstream job %s after %d errors: %s",
                row.id,
                row.upstream_id,
                errors,
                why,
            )
            await self._done(row)
            return
        await self._later(row, retry_delay(errors), errors_in_a_row=errors)

    async def _later(self, row: TaskRecord, delay: float, *, errors_in_a_row: int) -> None:
        change = TaskChange(next_run_at=self.w.clock.now() + delay, errors_in_a_row=errors_in_a_row)
        await self.ctx.store.tasks.transition(row.id, self.w.owner, row.status, change)

    async def _done(self, row: TaskRecord, change: TaskChange | None = None) -> None:
        """Nothing more to do upstream: off the schedule (with what ``change`` adds)."""
        change = replace(change or TaskChange(), next_run_at=None)
        await self.ctx.store.tasks.transition(row.id, self.w.owner, row.status, change)
