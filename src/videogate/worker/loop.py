"""The worker loop: claim due tasks, hold their leases, run one step of each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from videogate.context import AppContext
from videogate.errors import StorageUnavailable, UpstreamError, VideogateError
from videogate.logs import bind, current_setup, install, log_transition
from videogate.providers import ProviderDeps, load_provider
from videogate.providers.base import Provider, Route, TaskContext
from videogate.request import stored_surface
from videogate.statuses import TERMINAL
from videogate.store.due_signal import listen_for_due
from videogate.store.records import TaskChange, TaskRecord
from videogate.worker.aftercare import Aftercare
from videogate.worker.callbacks import ark_callback_url
from videogate.worker.memo import TaskMemo
from videogate.worker.poll import Poller
from videogate.worker.reference_files import drop_reference_files, reference_files
from videogate.worker.retention import run_sweeper
from videogate.worker.retry import (
    INFRA_RETRY_SECONDS,
    asks_again,
    backoff,
    describe,
    gives_up,
    honoured_retry_after,
    is_infrastructure,
    resubmit_delay,
    retry_delay,
)
from videogate.worker.submit import Submitter
from videogate.worker.sweep import AttemptSweeper
from videogate.worker.webhooks import WebhookDeliverer
from videogate.worker.wording import PUBLIC_WORDING, public_message

log = logging.getLogger("videogate.worker")

T = TypeVar("T")
MAX_STEP_ERRORS = 5


class Worker:
    """Runs tasks until ``stop`` is set. Several workers may share one database."""

    def __init__(self, ctx: AppContext, *, owner: str | None = None) -> None:
        self.ctx = ctx
        # Every time read and timed wait of the engine (tests pass a fake that they move).
        self.clock = ctx.clock
        self.settings = ctx.settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # Tasks whose leases this worker renews, with how many of its steps hold each: a
        # step may still be finishing (recording its attempt) when the task it released is
        # claimed again, and that step's end must not stop the next one's renewals.
        self._held: Counter[str] = Counter()
        self._active: set[asyncio.Task[None]] = set()
        self._pool: ProcessPoolExecutor | None = None
        self._providers: dict[str, Provider] = {}
        self._slots_freed = asyncio.Event()
        # Each task's parsed request and callback URL, from its first step here.
        self._memo = TaskMemo(lambda task_id: ark_callback_url(ctx, task_id))
        self._deps = ProviderDeps(settings=ctx.settings, http=ctx.http, run_cpu=self._run_cpu)
        self._submitter = Submitter(self)
        self._poller = Poller(self)
        self.sweeper = AttemptSweeper(self)
        self.aftercare = Aftercare(self)

    # Process pool for CPU-heavy provider work (the sandbox renderer) -----------------

    async def _run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            workers = self.settings.render_processes or os.cpu_count() or 1
            # "spawn": a fresh interpreter per render process, no inherited event loop/locks.
            # A spawned interpreter has no logging set up: it repeats this process's.
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=install,
                initargs=(current_setup(),),
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def provider(self, route: Route) -> Provider:
        provider = self._providers.get(route.name)
        if provider is None:
            provider = load_provider(route.provider, route, self._deps)
            self._providers[route.name] = provider
        return provider

    # Main loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Step tasks until ``stop`` is set. An error never ends the loop: a database, blob
        store or upstream failure is logged, waited out (0.5 s, doubling up to
        ``worker_backoff_max_seconds``) and tried again."""
        log.info("worker %s started", self.owner)
        beat = self.ctx.heartbeat
        beat.start()
        renewer = asyncio.create_task(self._renew_leases(stop))
        webhooks = asyncio.create_task(WebhookDeliverer(self.ctx).run(stop))
        retention = asyncio.create_task(run_sweeper(self.ctx, stop))
        failures = 0
        next_sweep = 0.0  # at once: resolve what a crashed predecessor left behind
        listener = None
        if self.ctx.store.dialect == "postgresql":  # callbacks and creates in other processes
            listener = asyncio.create_task(
                listen_for_due(self.settings.effective_database_url, self.ctx.wakeup, stop)
            )
        try:
            while not stop.is_set():
                try:
                    if self.clock.now() >= next_sweep:
                        await self.sweeper.sweep()
                        next_sweep = self.clock.now() + self.settings.attempt_sweep_interval_seconds
                    # Cleared before the claim: a step that ends during it, or before the
                    # wait below starts (a step may run to its end without yielding, its
                    # reads and writes in-loop), is not lost.
                    self._slots_freed.clear()
                    started = await self.claim_and_start()
                except Exception as exc:
                    failures += 1
                    delay = backoff(failures, self.settings.worker_backoff_max_seconds)
                    log.warning(
                        "worker %s: %s (%d in a row); retrying in %.1f s",
                        self.owner,
                        describe(exc),
                        failures,
                        delay,
                        exc_info=failures == 1,
                    )
                    beat.failed(describe(exc))
                    await self.clock.wait(stop.wait(), delay)
                    continue
                failures = 0
                beat.beat()
                if started == 0:
                    # Woken (a callback, a create) while every slot was busy: what woke
                    # us is still unclaimed and due first (a callback's ``next_run_at``
                    # is 0): claim at the first free slot, not once a batch is free. On
                    # SQLite a callback in another process is seen by a read.
                    first_slot = not self._free() and (
                        self.ctx.wakeup.is_set() or self.ctx.store.tasks.hinted_due()
                    )
                    self.ctx.wakeup.clear()
                    await self.clock.wait(
                        _first(
                            self.ctx.wakeup.wait(),
                            stop.wait(),
                            self._slots_freed.wait() if first_slot else self._enough_free(),
                            # SQLite: a callback or a create in another process
                            self.ctx.store.tasks.committed_elsewhere(),
                        ),
                        self._idle_wait(),
                    )
        finally:
            beat.stop()
            renewer.cancel()
            webhooks.cancel()
            retention.cancel()
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            for task in list(self._active):
                task.cancel()
            background = (renewer, webhooks, retention)
            await asyncio.gather(*self._active, *background, return_exceptions=True)
            await self.close()
            log.info("worker %s stopped", self.owner)

    async def close(self) -> None:
        """Stop the render processes."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def _idle_wait(self) -> float:
        """How long to wait when nothing was claimed: until the next scheduled step when
        a slot is free for it (SQLite; one index seek), else the periodic look's interval
        (a poll due in 0.1 s used to wait for the look, up to 0.5 s)."""
        interval = self.settings.worker_poll_interval
        if not self._free():
            return interval
        due = self.ctx.store.tasks.next_due_at()
        return interval if due is None else min(interval, max(0.0, due - self.clock.now()))

    def _free(self) -> int:
        return max(0, self.settings.worker_concurrency - len(self._active))

    async def claim_and_start(self) -> int:
        free = self._free()
        if free <= 0:
            return 0
        now = self.clock.now()
        claimed = await self.ctx.store.tasks.claim_due(
            self.owner, free, now, self.settings.lease_seconds
        )
        for row in claimed:
            self._held[row.id] += 1
            job = asyncio.create_task(self._run_step(row))
            self._active.add(job)
            job.add_done_callback(self._active.discard)
        return len(claimed)

    async def run_until_idle(self, timeout: float = 60.0) -> None:
        """Step tasks until none is due (for tests and one-shot runs); ``timeout`` is on the
        worker's clock (a fake one stands still: the test's own time limit applies)."""
        deadline = self.clock.monotonic() + timeout
        while self.clock.monotonic() < deadline:
            started = await self.claim_and_start()
            if self._active:
                await asyncio.wait(self._active, return_when=asyncio.FIRST_COMPLETED)
            elif started == 0:
                return

    async def _renew_leases(self, stop: asyncio.Event) -> None:
        interval = self.settings.lease_seconds / 3
        while not stop.is_set():
            await self.clock.sleep(interval)
            try:
                await self.ctx.store.tasks.renew(
                    self.owner, list(self._held), self.clock.now() + self.settings.lease_seconds
                )
            except Exception:
                log.exception("lease renewal failed; will retry")

    # One step of one task ---------------------------------------------------------------

    async def _run_step(self, row: TaskRecord) -> None:
        # Every log line of this step names the task (a context of its own asyncio task).
        bind(task_id=row.id, key_id=row.key_id, route=row.route, request_id=row.request_id)
        try:
            await self.guarded(row, self.step)
        finally:
            self._held[row.id] -= 1
            if self._held[row.id] <= 0:
                del self._held[row.id]
            self._slots_freed.set()

    async def guarded(self, row: TaskRecord, work: Callable[[TaskRecord], Awaitable[None]]) -> None:
        """``work(row)``; its failure is recorded against ``row`` (the task as the work
        found it: its status is what the failure's compare-and-set expects)."""
        try:
            await work(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_infrastructure(exc):
                # Our database or storage failed, not the task: try again soon, uncounted.
                log.warning("step of task %s: %s; retrying", row.id, describe(exc))
                with contextlib.suppress(Exception):
                    await self.ctx.store.tasks.release(
                        row.id, self.owner, self.clock.now() + INFRA_RETRY_SECONDS
                    )
                return
            if not isinstance(exc, UpstreamError):
                log.exception("step of task %s failed", row.id)
            await self._step_error(row, exc)

    async def _enough_free(self) -> None:
        """Returns once a batch of slots is free: claiming costs a write, so not per slot."""
        batch = max(1, self.settings.worker_concurrency // 8)
        while True:
            # Cleared before the claim that found nothing (``run``), not here.
            await self._slots_freed.wait()
            self._slots_freed.clear()
            if self._free() >= batch:
                return

    async def step(self, row: TaskRecord) -> None:
        if row.status in TERMINAL:
            # Ended by its owner or by us while an upstream job may still run: stop it, or
            # follow it to its end and record what it cost (aftercare.py).
            await self.aftercare.step(row)
            return
        if self.clock.now() >= row.deadline_at:
            await self.finish_failed(
                row,
                "expired",
                "the task did not finish before its deadline "
                f"({self.settings.task_deadline_seconds} s); it was stopped",
                status="expired",
            )
            return
        if row.status == "queued":
            await self._submitter.submit(row)
        elif row.status == "running":
            await self._poller.poll(row)
        elif row.status == "fetching":
            await self._poller.fetch(row)
        else:  # a finished task should never be due; drop it from the schedule
            await self.ctx.store.tasks.transition(
                row.id, self.owner, row.status, TaskChange(next_run_at=None)
            )

    async def task_context(
        self, row: TaskRecord, route: Route, *, files: bool = False, attempt_id: str | None = None
    ) -> TaskContext:
        """What the provider sees; with ``files`` the references are local files too."""
        req, callback_url = self._memo.of(row)
        paths = await reference_files(self.ctx, row.id, req) if files else {}
        urls = {
            ref.label: self._upstream_reference_url(ref.url, ref.blob_key) for ref in req.references
        }

        async def report_progress(progress: int) -> bool:
            return await self.ctx.store.tasks.set_progress(
                row.id, self.owner, progress, self.clock.now()
            )

        return TaskContext(
            task_id=row.id,
            request=req,
            route=route,
            reference_paths=paths,
            reference_urls=urls,
            work_dir=self.ctx.work_dir,
            callback_url=callback_url if route.capabilities.accepts_callbacks else None,
            report_progress=report_progress,
            attempt_id=attempt_id,
        )

    def forget(self, task_id: str) -> None:
        """The task ended here: drop what this worker kept for its steps."""
        self._memo.forget(task_id)

    def _upstream_reference_url(self, url: str, blob_key: str | None) -> str:
        """What an upstream fetches: the client's own URL, or a signed one of ours."""
        ours = self.ctx.signer.parse_own_url(url) or self.ctx.blobs.presigned_key(url)
        if ours is not None and blob_key:
            signed, _ = self.ctx.signer.sign(blob_key, self.settings.upload_ttl_seconds)
            return signed
        return url

    def route_of(self, row: TaskRecord) -> Route:
        route = self.ctx.router.get(row.route or "")
        if route is None:
            log.warning("task %s: route %r is no longer configured", row.id, row.route)
            raise UpstreamError(PUBLIC_WORDING["route_removed"], code="route_removed")
        return route

    # Failure paths ------------------------------------------------------------------------

    async def finish_failed(
        self, row: TaskRecord, code: str, message: str, *, status: str = "failed"
    ) -> None:
        """End the task (refunding its hold). A job still alive upstream is handed to the
        aftercare, which stops it or follows it to its end."""
        now = self.clock.now()
        live_upstream = row.status == "running" and bool(row.upstream_id)
        # The client reads the task's message; the operator's detail stays in the log.
        public = public_message(code, message, self._route_names())
        done = await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            row.status,
            TaskChange(
                status=status,
                error_code=code,
                error_message=public,
                updated_at=now,
                completed_at=now,
                next_run_at=now if live_upstream else None,
            ),
        )
        drop_reference_files(self.ctx, row.id)
        self.forget(row.id)
        if done:
            log_transition(log, row.id, status, f"{code}: {message}", error_code=code)
            self.ctx.metrics.tasks_finished.labels(
                row.model, stored_surface(row.request), status
            ).inc()
            self.ctx.metrics.count_money(row.currency or "USD", "refunded", row.hold_micros)

    def _route_names(self) -> list[str]:
        return [r.name for r in self.ctx.router.routes]

    async def retry_later(self, row: TaskRecord, exc: VideogateError) -> None:
        """Count an error against the task and look again after a backoff (never sooner
        than the upstream's ``Retry-After``)."""
        errors = row.errors_in_a_row + 1
        now = self.clock.now()
        after = honoured_retry_after(exc)
        queued = row.status == "queued"
        delay = resubmit_delay(errors, after) if queued else retry_delay(errors, after)
        await self.ctx.store.tasks.transition(
            row.id,
            self.owner,
            row.status,
            TaskChange(
                errors_in_a_row=errors,
                updated_at=now,
                next_run_at=min(now + delay, row.deadline_at),
            ),
        )

    async def _step_error(self, row: TaskRecord, exc: Exception) -> None:
        errors = row.errors_in_a_row + 1
        retryable = (
            not isinstance(exc, VideogateError)
            or isinstance(exc, StorageUnavailable)  # the store comes back; the task waits
            or (isinstance(exc, UpstreamError) and asks_again(exc))
        )
        message = exc.message if isinstance(exc, VideogateError) else f"{type(exc).__name__}: {exc}"
        code = exc.code if isinstance(exc, VideogateError) else "internal_error"
        if row.status in ("running", "fetching"):
            # The job exists upstream: ride out a blip for the whole window, not 5 tries.
            exhausted = gives_up(errors, self.settings.poll_failure_window_seconds)
        else:
            exhausted = errors >= MAX_STEP_ERRORS
        if retryable and exhausted:
            last = public_message(code, message, self._route_names())
            code = {"running": "upstream_poll_failed", "fetching": "result_fetch_failed"}.get(
                row.status, code
            )
            log.warning("task %s: gave up after %d errors; the last: %s", row.id, errors, message)
            message = f"gave up after {errors} errors in a row; the last: {last}"
        try:
            if not retryable or exhausted:
                await self.finish_failed(row, code, message)
            else:
                await self.retry_later(
                    row, exc if isinstance(exc, VideogateError) else VideogateError(message)
                )
        except Exception:
            log.exception("could not record the failure of task %s; its lease will lapse", row.id)


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
