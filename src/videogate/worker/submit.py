"""Submitting a queued task: route choice, failover, capacity, the breaker, at-most-once.

The order of work makes a double submission impossible: an attempt row is committed
*before* the upstream call and its upstream id right after. A worker that finds an
attempt still ``submitting`` (its predecessor died in between) asks the upstream whether
the job exists instead of submitting again.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from videogate.errors import Disposition, UpstreamError
from videogate.logs import bound, log_transition
from videogate.providers.base import Route
from videogate.store.records import TaskChange, TaskRecord
from videogate.store.routes import is_benched_until
from videogate.store.submit_view import AttemptRef, SubmitView
from videogate.store.tables import Attempt
from videogate.worker.host import StepHost
from videogate.worker.retry import asks_again, honoured_retry_after, resubmit_delay
from videogate.worker.wording import PUBLIC_WORDING

log = logging.getLogger("videogate.worker")

CAPACITY_WAIT = 2.0  # seconds before a task waiting for a free route looks again
MAX_SUBMIT_ROUNDS = 5  # rounds in which every candidate failed before the task fails
FULL = "full"  # try_route's answer when the route had no free slot


@dataclass(frozen=True)
class Choice:
    """The candidates a task may be submitted to now, or why it must wait."""

    routes: list[Route]
    wait_until: float | None = None


class Submitter:
    def __init__(self, worker: StepHost) -> None:
        self.w = worker
        self.ctx = worker.ctx

    async def submit(self, row: TaskRecord) -> None:
        store = self.ctx.store
        router = self.ctx.router
        # The attempts, the key's group and the routes' state and load: one read.
        view = await store.attempts.submit_view(row.id, row.key_id, router.names_of(row.model))
        for attempt in reversed(view.attempts):
            if attempt.state == "submitting":
                with bound(route=attempt.route):
                    await self.recover(row, attempt)
                return
            if attempt.state == "submitted" and attempt.upstream_id:
                # Created upstream, but the worker lost the task (its lease lapsed) before
                # the task took the id: this job is the task's, never submit another.
                route = router.get(attempt.route)
                if route is not None:
                    with bound(route=route.name):
                        await self.adopt(row, route, attempt.upstream_id)
                    return
        group = view.group if view.group is not None else "default"
        candidates = router.candidates(row.model, group)
        if not candidates:
            await self.w.finish_failed(
                row,
                "no_available_route",
                f"model {row.model} is no longer served for this key's group ({group})",
            )
            return
        choice = self.choose(candidates, view)
        if not choice.routes:
            # Every route is full or benched: wait in `queued`, no error to the client.
            await store.tasks.transition(
                row.id,
                self.w.owner,
                "queued",
                TaskChange(
                    next_run_at=min(
                        choice.wait_until or self.w.clock.now() + CAPACITY_WAIT, row.deadline_at
                    )
                ),
            )
            return
        errors: list[str] = []
        for route in choice.routes:
            with bound(route=route.name):  # the lines of this try name its route
                outcome = await self.try_route(row, route)
            if outcome is None:
                return  # submitted, or failed for good
            if outcome is not FULL:
                errors.append(outcome)
        if not errors:  # every open route filled up meanwhile: wait for capacity
            await store.tasks.transition(
                row.id,
                self.w.owner,
                "queued",
                TaskChange(next_run_at=min(self.w.clock.now() + CAPACITY_WAIT, row.deadline_at)),
            )
            return
        await self.all_failed(row, errors)

    def choose(self, candidates: list[Route], view: SubmitView) -> Choice:
        """The candidates neither benched nor full as ``view`` saw them (the reservation
        counts again, exactly)."""
        now = self.w.clock.now()
        benched = view.benched_until
        healthy = [r for r in candidates if not is_benched_until(benched.get(r.name), now)]
        if not healthy:
            soonest = min(benched.get(r.name) or now for r in candidates)
            return Choice([], wait_until=max(soonest, now + 0.5))
        counts = view.in_flight
        open_routes = [r for r in healthy if counts.get(r.name, 0) < r.max_in_flight]
        if not open_routes:
            return Choice([], wait_until=now + CAPACITY_WAIT)
        return Choice(open_routes)

    async def try_route(self, row: TaskRecord, route: Route) -> str | None:
        """Submit to one route. None when done (submitted or failed for good), else the
        error that sends us to the next candidate. What happens is decided by the error's
        disposition alone: MAYBE_SUBMITTED is looked up, RETRY and FAIL_OVER fail over,
        FAIL_TASK fails the task."""
        store = self.ctx.store
        provider = self.w.provider(route)
        # Everything before the reservation: from the attempt's commit to the end of the
        # create call, only the call itself (bounded by the total timeout) takes time.
        tctx = await self.w.task_context(row, route, files=True)
        attempt = await store.attempts.reserve(
            row.id,
            route.name,
            route.provider,
            route.max_in_flight,
            owner=self.w.owner,
            now=self.w.clock.now(),
        )
        if attempt is None:
            # Another worker took the last slot meanwhile, or the task itself: then the
            # transitions that follow find it held by someone else and change nothing.
            return FULL
        tctx = dataclasses.replace(tctx, attempt_id=attempt.id)
        metrics = self.ctx.metrics
        started = self.w.clock.monotonic()
        try:
            upstream_id = await provider.submit(tctx)
        except UpstreamError as exc:
            metrics.upstream_latency.labels(route.name, "submit").observe(
                self.w.clock.monotonic() - started
            )
            now = self.w.clock.now()
            final = exc.disposition is Disposition.FAIL_TASK
            metrics.route_submits.labels(route.name, "rejected" if final else "failed").inc()
            if exc.disposition is Disposition.MAYBE_SUBMITTED:
                # The upstream may have created the job and only the answer was lost (a
                # timeout after sending, a 2xx we could not read): look for it by the
                # attempt's marker before anything else, so nothing is paid twice.
                await store.route_state.failure(
                    route.name,
                    f"{exc.code}: {exc.message}",
                    now,
                    threshold=self.w.settings.breaker_failures,
                    cooldown=self.w.settings.breaker_cooldown_seconds,
                )
                return await self.resolve_lost_answer(row, route, attempt, exc)
            await store.attempts.finish(
                attempt.id,
                "failed",
                error_code=exc.code,
                error_message=exc.message,
                http_status=exc.status,
            )
            if not final:  # RETRY or FAIL_OVER: this route failed, another may not
                benched = await store.route_state.failure(
                    route.name,
                    f"{exc.code}: {exc.message}",
                    now,
                    threshold=self.w.settings.breaker_failures,
                    cooldown=self.w.settings.breaker_cooldown_seconds,
                    # An upstream that said when to come back gets nothing from us before.
                    retry_after=honoured_retry_after(exc),
                )
                if benched:
                    log.warning(
                        "route %s benched after repeated failures: %s", route.name, exc.message
                    )
                return f"{route.name}: {exc.message}"
            # The upstream says the request itself is wrong: another route would agree.
            await store.route_state.success(route.name, now)
            await self.w.finish_failed(row, exc.code, exc.message)
            return None
        metrics.upstream_latency.labels(route.name, "submit").observe(
            self.w.clock.monotonic() - started
        )
        metrics.route_submits.labels(route.name, "submitted").inc()
        # The task takes the upstream id with the attempt's end: from then on the job is
        # ours to poll.
        await self.adopt(row, route, upstream_id, attempt.id)
        return None

    async def resolve_lost_answer(
        self, row: TaskRecord, route: Route, attempt: Attempt | AttemptRef, exc: UpstreamError
    ) -> str | None:
        """After a create whose answer was lost: adopt the job found by the marker, or fail
        over like after a 5xx when the upstream shows for certain that there is none."""
        store = self.ctx.store
        tctx = await self.w.task_context(row, route, attempt_id=attempt.id)
        try:
            known = await store.attempts.known_upstream_ids(route.name, attempt.created_at)
            found = await self.w.provider(route).recover(tctx, attempt.created_at, frozenset(known))
        except UpstreamError as why:
            if asks_again(why):
                # The upstream cannot say now: the attempt stays `submitting` and the next
                # step looks again (recover); it is never sent blind.
                await self.w.retry_later(row, exc)
                return None
            await self.uncertain(row, route, attempt, why)
            return None
        if found is not None:
            log.info("task %s: found upstream job %s after a lost answer", row.id, found)
            await self.adopt(row, route, found, attempt.id)
            return None
        await store.attempts.finish(
            attempt.id,
            "failed",
            error_code=exc.code,
            error_message=f"{exc.message} (the upstream shows no job for this attempt)",
            http_status=exc.status,
        )
        return f"{route.name}: {exc.message}"

    async def uncertain(
        self, row: TaskRecord, route: Route, attempt: Attempt | AttemptRef, exc: UpstreamError
    ) -> None:
        """Whether the job exists cannot be told: fail the task (refunding it) rather than
        adopt a job that may be another task's or submit one that may exist already."""
        await self.ctx.store.attempts.finish(
            attempt.id, "uncertain", error_code=exc.code, error_message=exc.message
        )
        log.warning(
            "task %s: submitting to route %s was interrupted and the upstream could not say "
            "whether the job exists: %s",
            row.id,
            route.name,
            exc.message,
        )
        await self.w.finish_failed(row, "submit_interrupted", PUBLIC_WORDING["submit_interrupted"])

    async def adopt(
        self, row: TaskRecord, route: Route, upstream_id: str, attempt_id: str | None = None
    ) -> None:
        """The task runs as ``upstream_id``; ``attempt_id``, the attempt that created the
        job, is marked submitted in the same transaction."""
        now = self.w.clock.now()
        moved = await self.ctx.store.tasks.adopt(
            row.id,
            self.w.owner,
            TaskChange(
                status="running",
                route=route.name,
                provider=route.provider,
                upstream_id=upstream_id,
                started_at=now,
                updated_at=now,
                progress=max(row.progress, 1),
                errors_in_a_row=0,
                next_run_at=now if route.capabilities.local else now + 1.0,
            ),
            route=route.name,
            upstream_id=upstream_id,
            attempt_id=attempt_id,
            now=now,
        )
        # Not moved: cancelled while we were submitting; the store kept the job's id on
        # the task, for a worker to stop it upstream (aftercare).
        if moved:
            log_transition(
                log, row.id, "running", f"submitted to route {route.name} as {upstream_id}"
            )
            self.ctx.metrics.queue_wait.labels(row.model).observe(now - row.created_at)

    async def all_failed(self, row: TaskRecord, errors: list[str]) -> None:
        rounds = row.errors_in_a_row + 1
        detail = "; ".join(errors)
        if rounds >= MAX_SUBMIT_ROUNDS:
            log.warning(
                "task %s: every route for %s refused it %d times: %s",
                row.id,
                row.model,
                rounds,
                detail,
            )
            await self.w.finish_failed(
                row,
                "upstream_error",
                f"the video generation service for {row.model} could not take the "
                f"task ({rounds} tries in a row failed); it was not charged: try again later",
            )
            return
        now = self.w.clock.now()
        await self.ctx.store.tasks.transition(
            row.id,
            self.w.owner,
            "queued",
            TaskChange(
                errors_in_a_row=rounds,
                updated_at=now,
                next_run_at=min(now + resubmit_delay(rounds), row.deadline_at),
            ),
        )

    async def recover(self, row: TaskRecord, attempt: AttemptRef) -> None:
        """A worker died between recording an attempt and recording its upstream id."""
        store = self.ctx.store
        route = self.ctx.router.get(attempt.route)
        if route is None:
            await store.attempts.finish(attempt.id, "uncertain", error_code="route_removed")
            log.warning(
                "task %s: interrupted submit to route %s, which is no longer configured",
                row.id,
                attempt.route,
            )
            await self.w.finish_failed(
                row, "submit_interrupted", PUBLIC_WORDING["submit_interrupted"]
            )
            return
        tctx = await self.w.task_context(row, route, attempt_id=attempt.id)
        try:
            known = await store.attempts.known_upstream_ids(route.name, attempt.created_at)
            upstream_id = await self.w.provider(route).recover(
                tctx, attempt.created_at, frozenset(known)
            )
        except UpstreamError as exc:
            if asks_again(exc) and row.errors_in_a_row + 1 < MAX_SUBMIT_ROUNDS:
                await self.w.retry_later(row, exc)
                return
            await self.uncertain(row, route, attempt, exc)
            return
        if upstream_id is not None:
            log.info(
                "task %s: found upstream job %s after an interrupted submit", row.id, upstream_id
            )
            await self.adopt(row, route, upstream_id, attempt.id)
            return
        settled_at = attempt.created_at + self.w.settings.upstream_total_timeout_seconds + 5
        if self.w.clock.now() < settled_at:
            # Its submitter may be alive (it only lost the task's lease, e.g. during a
            # database outage) with the create still on the way: "no job yet" proves nothing
            # until that call must have ended. Look again then; nothing is counted.
            await self.ctx.store.tasks.transition(
                row.id,
                self.w.owner,
                "queued",
                TaskChange(next_run_at=min(settled_at, row.deadline_at)),
            )
            return
        # The upstream has no such job: the call never reached it, so submitting is safe.
        await store.attempts.finish(
            attempt.id,
            "failed",
            error_code="not_submitted",
            error_message="the worker stopped before the upstream received the task",
        )
        await self.submit(row)  # also adopts the job if its submitter recorded one meanwhile
