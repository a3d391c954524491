"""Resolving submit attempts a crash left ``submitting``.

Such an attempt counts against its route's in-flight cap until its outcome is known. Each
worker sweeps at start-up and every ``attempt_sweep_interval_seconds``:

* the task is still queued and nobody holds it: it is made due now, and the step that
  follows looks the job up by the attempt's marker (``Submitter.recover``);
* the task has moved on (running with the job, or cancelled or expired meanwhile): the
  sweep looks the job up itself. The task's own job marks the attempt ``submitted``; a job
  of an ended task is handed to the aftercare (stopped, or followed to its end); a job the
  task did not go on with is recorded as ``orphaned``; no job means the attempt
  ``failed``; where the upstream cannot tell, the attempt is marked ``uncertain``.

Either way the attempt leaves ``submitting`` and its slot is released.
"""

from __future__ import annotations

import logging

from videogate.errors import UpstreamError
from videogate.logs import bound
from videogate.statuses import TERMINAL
from videogate.store.records import TaskRecord
from videogate.store.tables import Attempt
from videogate.worker.host import StepHost
from videogate.worker.retry import asks_again

log = logging.getLogger("videogate.worker")

# An upstream that stays unreachable this long after the attempt no longer holds a slot.
GIVE_UP_AFTER = 3600.0


class AttemptSweeper:
    def __init__(self, worker: StepHost) -> None:
        self.w = worker
        self.ctx = worker.ctx

    def stale_before(self, now: float) -> float:
        """A live submitter holds its task's lease, and one upstream call ends within the
        total timeout: an attempt older than both, on an unheld task, is left over."""
        settings = self.w.settings
        return now - settings.lease_seconds - settings.upstream_total_timeout_seconds

    async def sweep(self) -> int:
        """Resolve (or make due) every stale attempt; returns how many were found."""
        now = self.w.clock.now()
        stale = await self.ctx.store.attempts.stale(self.stale_before(now), now)
        for attempt in stale:
            try:
                await self.resolve(attempt, now)
            except UpstreamError as exc:
                log.warning("attempt %s: %s; will look again", attempt.id, exc.message)
        return len(stale)

    async def resolve(self, attempt: Attempt, now: float) -> None:
        store = self.ctx.store
        task = await store.tasks.get(attempt.task_id)
        if task is None:
            return
        # The sweep runs in the worker's main loop: the task's fields for this one only.
        with bound(task_id=task.id, key_id=task.key_id, request_id=task.request_id):
            await self._resolve(attempt, task, now)

    async def _resolve(self, attempt: Attempt, task: TaskRecord, now: float) -> None:
        store = self.ctx.store
        if task.status == "queued":
            await store.tasks.make_due(task.id, now)
            return
        route = self.ctx.router.get(attempt.route)
        if route is None:
            await store.attempts.finish(
                attempt.id,
                "uncertain",
                error_code="route_removed",
                error_message="the route is no longer configured; the job cannot be looked up",
            )
            return
        tctx = await self.w.task_context(task, route, attempt_id=attempt.id)
        try:
            known = await store.attempts.known_upstream_ids(route.name, attempt.created_at)
            found = await self.w.provider(route).recover(tctx, attempt.created_at, frozenset(known))
        except UpstreamError as exc:
            if asks_again(exc) and now - attempt.created_at < GIVE_UP_AFTER:
                raise
            await store.attempts.finish(
                attempt.id, "uncertain", error_code=exc.code, error_message=exc.message
            )
            return
        if found is None:
            await store.attempts.finish(
                attempt.id,
                "failed",
                error_code="not_submitted",
                error_message="the upstream shows no job for this attempt",
            )
            return
        if task.upstream_id is not None and task.upstream_id != found:
            # The task went on with another job (a crash between two steps): this one ran
            # for nobody. Recorded, so the operator can see it; it is never adopted.
            log.warning("task %s: upstream job %s belongs to no task", task.id, found)
            await store.attempts.finish(
                attempt.id,
                "orphaned",
                upstream_id=found,
                error_message=f"the task went on with upstream job {task.upstream_id}",
            )
            return
        if await store.attempts.finish(attempt.id, "submitted", upstream_id=found):
            log.info("task %s (%s): found upstream job %s", task.id, task.status, found)
            if task.status in TERMINAL:
                await store.tasks.orphaned_submit(task.id, route.name, found, now)
