"""Regression tests for the engine faults of issue 10 (docs/reliability.md): the worker
survives its dependencies, recovery is exact, nothing is paid twice, capacity is never
leaked, hanging upstreams fail over, blips are ridden out, money follows the upstream."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import update

from clocks import FakeClock
from engine_support import FakeProvider, ark, ark2, done_result, drive, fake_worker
from engine_support import new_task as new_sandbox_task
from fakes import FakeArk, Fault
from videogate.context import AppContext, open_context
from videogate.errors import Disposition, StorageUnavailable, UpstreamError
from videogate.providers.base import PollResult
from videogate.request import GenerationRequest
from videogate.service.keys import Caller, create_key
from videogate.service.money import unbilled_upstream
from videogate.service.tasks import TaskService
from videogate.settings import GroupConfig, RouteConfig, Settings
from videogate.store.records import TaskRecord
from videogate.store.tables import Attempt, Task
from videogate.worker import Worker
from videogate.worker.retry import gives_up, retry_delay

MODEL = "doubao-seedance-2-0-fast-260128"
TERMINAL = ("succeeded", "failed", "cancelled", "expired")


__all__ = ["ark", "ark2"]  # fixtures


# The slow tier (make test, not make test-fast): the engine against fake upstreams, faults on.
pytestmark = pytest.mark.slow


def route(name: str, fake: FakeArk, **kw: Any) -> RouteConfig:
    values: dict[str, Any] = {
        "name": name,
        "model": MODEL,
        "provider": "ark",
        "base_url": fake.base_url,
        "api_key_env": "FAKE_ARK_KEY",
        "upstream_model": MODEL,
        "timeout_seconds": 5.0,
    }
    values.update(kw)
    return RouteConfig(**values)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``async with engine(*routes, **settings) as ctx``: a context without the HTTP app."""
    monkeypatch.setenv("FAKE_ARK_KEY", "ark-test-key")

    @contextlib.asynccontextmanager
    async def make(*routes: RouteConfig, **settings: Any) -> AsyncIterator[AppContext]:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "public_url": "http://testserver",
            "allow_private_urls": True,
            "worker_poll_interval": 0.05,
            "render_processes": 1,
            "routes": routes,
            "groups": (GroupConfig(name="default"),),
        }
        values.update(settings)
        ctx = await open_context(Settings(**values), clock=FakeClock())
        try:
            yield ctx
        finally:
            await ctx.close()

    return make


async def new_task(ctx: AppContext, prompt: str = "a fox") -> str:
    key = await create_key(ctx.store)
    task, _ = await TaskService(ctx).create(
        Caller(key.id, "default"),
        GenerationRequest(model=MODEL, prompt=prompt, duration=4, resolution="480p"),
    )
    return task.id


async def task_row(ctx: AppContext, task_id: str) -> TaskRecord:
    row = await ctx.store.tasks.get(task_id)
    assert row is not None
    return row


def clock_of(ctx: AppContext) -> FakeClock:
    assert isinstance(ctx.clock, FakeClock)
    return ctx.clock


async def run_until(ctx: AppContext, check: Any, *, timeout: float = 30.0) -> None:
    """Run a worker loop until ``await check()`` is true (or fail after ``timeout`` real
    seconds). Whenever the worker has no step running, the fake clock moves half a
    second, so poll delays, backoffs and capacity waits pass without real waiting; while
    a step runs (real I/O with a fake upstream) time stands still, so no lease lapses."""
    clock = clock_of(ctx)
    worker = Worker(ctx, owner="w-test")
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while not await check():
            assert not runner.done(), "the worker loop ended"
            assert time.monotonic() < deadline, "the condition never came true"
            if not worker._active:
                clock.advance(0.5)
            await asyncio.sleep(0.02)  # real I/O: the database, the fake upstream
    finally:
        stop.set()
        await runner


def all_terminal(ctx: AppContext, *task_ids: str) -> Any:
    async def check() -> bool:
        statuses = [(await task_row(ctx, t)).status for t in task_ids]
        return all(status in TERMINAL for status in statuses)

    return check


async def crash_mid_submit(ctx: AppContext, task_id: str, *, send: bool) -> Attempt:
    """What a worker killed mid-submit leaves: a recorded attempt without an upstream id,
    after the create reached the upstream (``send``) or before it did."""
    row = await task_row(ctx, task_id)
    r = ctx.router.get("volc")
    assert r is not None
    await ctx.store.route_state.ensure(r.name)
    attempt = await ctx.store.attempts.reserve(task_id, r.name, r.provider, r.max_in_flight)
    assert attempt is not None
    if send:
        worker = Worker(ctx, owner="doomed")
        tctx = await worker.task_context(row, r, attempt_id=attempt.id)
        await worker.provider(r).submit(tctx)
    return attempt


async def age_attempts(ctx: AppContext, seconds: float) -> None:
    async with ctx.store.sessions.begin() as s:
        await s.execute(update(Attempt).values(created_at=Attempt.created_at - seconds))


# 1. The worker survives database errors ---------------------------------------------------


async def test_worker_loop_survives_database_errors(engine: Any, ark: FakeArk) -> None:
    async with engine(route("volc", ark)) as ctx:
        real_claim = ctx.store.tasks.claim_due
        failures = {"left": 4}

        async def flaky_claim(*args: Any, **kw: Any) -> Any:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise sa_exc.OperationalError("SELECT …", {}, Exception("database is locked"))
            return await real_claim(*args, **kw)

        ctx.store.tasks.claim_due = flaky_claim
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        assert failures["left"] == 0
        assert (await task_row(ctx, task_id)).status == "succeeded"
        assert ctx.heartbeat.errors_in_a_row == 0 and "database is locked" in str(
            ctx.heartbeat.last_error
        )


async def test_a_database_error_inside_a_step_does_not_count_against_the_task(
    engine: Any, ark: FakeArk
) -> None:
    async with engine(route("volc", ark)) as ctx:
        real = ctx.store.tasks.transition
        failures = {"left": 8}

        async def flaky(*args: Any, **kw: Any) -> Any:
            if failures["left"] > 0 and args[3].status == "fetching":
                failures["left"] -= 1
                raise sa_exc.OperationalError("UPDATE …", {}, Exception("server closed"))
            return await real(*args, **kw)

        ctx.store.tasks.transition = flaky
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded" and failures["left"] == 0
        assert len(ark.tasks) == 1


async def test_a_blob_store_outage_while_copying_a_result_is_waited_out(
    engine: Any, ark: FakeArk, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine(route("volc", ark)) as ctx:
        real_put = ctx.blobs.put_file
        failures = {"left": 8}  # more than a task's own error budget

        async def unreachable(*args: Any, **kw: Any) -> Any:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise StorageUnavailable("the bucket cannot be reached")
            return await real_put(*args, **kw)

        monkeypatch.setattr(ctx.blobs, "put_file", unreachable)
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded" and failures["left"] == 0 and row.errors_in_a_row == 0


# 2. and 5. Recovery adopts only the job its own attempt created -----------------------------


async def test_recovery_never_adopts_another_tasks_job(engine: Any, ark: FakeArk) -> None:
    """Two in-flight submits with identical bodies: A's worker died before its create
    left; B's create reached Ark and its answer is still on the way. A must not take B's
    job (before the fix: A completed with B's video)."""
    async with engine(route("volc", ark), worker_concurrency=1) as ctx:
        b = await new_task(ctx, prompt="same body")
        a = await new_task(ctx, prompt="same body")
        await crash_mid_submit(ctx, a, send=False)
        await age_attempts(ctx, 120)  # A's submitter is long dead: its call has ended
        # B: the create is carried out upstream, the answer held back for 2 s.
        ark.inject(Fault.hang(2, process=True), on="create")
        worker_b = Worker(ctx, owner="w-b")
        assert await worker_b.claim_and_start() == 1  # claims B (created first)
        for _ in range(100):
            if ark.tasks:
                break
            await asyncio.sleep(0.05)  # real I/O: the create reaching the fake upstream
        [b_job] = list(ark.tasks)
        # A is stepped by another worker while B's answer is in flight.
        worker_a = Worker(ctx, owner="w-a")
        await worker_a.run_until_idle(timeout=10)
        await asyncio.gather(*worker_b._active)
        row_a = await task_row(ctx, a)
        assert row_a.upstream_id is not None and row_a.upstream_id != b_job
        assert (await task_row(ctx, b)).upstream_id == b_job
        markers = {t.body["safety_identifier"] for t in ark.tasks.values()}
        assert len(ark.tasks) == 2 and len(markers) == 2
        await run_until(ctx, all_terminal(ctx, a, b))
        assert (await task_row(ctx, a)).status == "succeeded"
        assert (await task_row(ctx, b)).status == "succeeded"


async def test_killed_mid_submit_tasks_adopt_their_own_jobs(engine: Any, ark: FakeArk) -> None:
    """Several workers killed after their creates reached Ark: each task finds its own job
    (before the fix, several unclaimed jobs at once failed them all as ambiguous)."""
    async with engine(route("volc", ark)) as ctx:
        tasks = [await new_task(ctx, prompt="same body") for _ in range(4)]
        for task_id in tasks:
            await crash_mid_submit(ctx, task_id, send=True)
        jobs_by_marker = {t.body["safety_identifier"]: t.id for t in ark.tasks.values()}
        await run_until(ctx, all_terminal(ctx, *tasks))
        for task_id in tasks:
            row = await task_row(ctx, task_id)
            assert row.status == "succeeded", row.error_message
            [attempt] = await ctx.store.attempts.for_task(task_id)
            assert jobs_by_marker[f"videogate-{attempt.id}"] == row.upstream_id
        assert len(ark.requests_to("create")) == 4  # nothing sent twice


async def test_a_live_submitter_that_lost_its_lease_is_not_raced(engine: Any, ark: FakeArk) -> None:
    """During a database outage a submitter's lease lapses while its create is still on
    the way; the worker that takes the task over must not conclude "no job" and submit a
    second one (seen by the chaos suite), but wait for the first call to end."""
    async with engine(
        route("volc", ark), lease_seconds=0.5, upstream_total_timeout_seconds=3
    ) as ctx:
        task_id = await new_task(ctx)
        ark.inject(Fault.hang(2), on="create")  # the job is created only after 2 s
        first = Worker(ctx, owner="w-first")  # no lease renewal: it lapses
        assert await first.claim_and_start() == 1
        for _ in range(500):
            if ark.requests_to("create"):
                break
            await asyncio.sleep(0.02)  # real I/O: the create reaching the fake upstream
        clock_of(ctx).advance(0.7)  # the first worker's lease lapses
        second = Worker(ctx, owner="w-second")
        await second.run_until_idle(timeout=10)  # takes the task over, looks, waits
        await asyncio.gather(*first._active)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded"
        assert len(ark.tasks) == 1 and row.upstream_id == next(iter(ark.tasks))
        assert len(ark.requests_to("create")) == 1


# 3. An unreadable 2xx is resolved by recovery, never by a blind retry -----------------------


@pytest.mark.parametrize("fault", ["malformed_json", "disconnect"])
async def test_unreadable_2xx_create_makes_exactly_one_job(
    engine: Any, ark: FakeArk, ark2: FakeArk, fault: str
) -> None:
    bad = Fault.malformed_json(process=True) if fault == "malformed_json" else None
    ark.inject(bad or Fault.disconnect(process=True), on="create")
    async with engine(route("volc", ark), route("backup", ark2, priority=1)) as ctx:
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded"
        assert len(ark.tasks) == 1 and not ark2.tasks
        assert row.upstream_id == next(iter(ark.tasks))
        assert len(ark.requests_to("create")) == 1


# 4. Stale `submitting` attempts are resolved and release their capacity --------------------


@pytest.mark.parametrize("sent", [False, True])
async def test_stale_attempts_of_ended_tasks_release_capacity(
    engine: Any, ark: FakeArk, sent: bool
) -> None:
    ark.set_schedule(auto_advance=False)
    async with engine(
        route("volc", ark, max_in_flight=1), lease_seconds=1, upstream_total_timeout_seconds=1
    ) as ctx:
        dead = await new_task(ctx)
        attempt = await crash_mid_submit(ctx, dead, send=sent)
        row = await task_row(ctx, dead)
        assert await ctx.store.tasks.cancel(dead, row.key_id, ctx.clock.now())
        await age_attempts(ctx, 10)
        nxt = await new_task(ctx)

        async def next_one_running() -> bool:
            return (await task_row(ctx, nxt)).status == "running"

        await run_until(ctx, next_one_running)
        [resolved] = [a for a in await ctx.store.attempts.for_task(dead) if a.id == attempt.id]
        if sent:  # the job existed: found by its marker, and stopped upstream
            assert resolved.state == "submitted"
            assert ark.task(resolved.upstream_id or "").status == "cancelled"
        else:
            assert resolved.state == "failed" and resolved.error_code == "not_submitted"


async def test_stale_attempt_of_an_unfinished_task_is_recovered_at_start_up(
    engine: Any, ark: FakeArk
) -> None:
    async with engine(route("volc", ark), lease_seconds=1, upstream_total_timeout_seconds=1) as ctx:
        task_id = await new_task(ctx)
        await crash_mid_submit(ctx, task_id, send=True)
        async with ctx.store.sessions.begin() as s:  # due only in an hour
            await s.execute(update(Task).values(next_run_at=ctx.clock.now() + 3600))
        await age_attempts(ctx, 10)
        await run_until(ctx, all_terminal(ctx, task_id))
        assert (await task_row(ctx, task_id)).status == "succeeded"
        assert len(ark.requests_to("create")) == 1


# 6. A hanging create times out and fails over, paying once ----------------------------------


async def test_hanging_create_fails_over_like_a_5xx(
    engine: Any, ark: FakeArk, ark2: FakeArk
) -> None:
    ark.inject(Fault.hang(30), on="create")
    async with engine(
        route("volc", ark, timeout_seconds=0.5), route("backup", ark2, priority=1)
    ) as ctx:
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded" and row.route == "backup"
        attempts = [(a.route, a.state) for a in await ctx.store.attempts.for_task(task_id)]
        assert attempts == [("volc", "failed"), ("backup", "submitted")]
        assert ark.requests_to("list"), "it looked for the job before failing over"
        assert not ark.tasks and len(ark2.tasks) == 1


async def test_create_answered_too_late_is_adopted_not_sent_elsewhere(
    engine: Any, ark: FakeArk, ark2: FakeArk
) -> None:
    ark.inject(Fault.hang(30, process=True), on="create")
    async with engine(
        route("volc", ark, timeout_seconds=0.5), route("backup", ark2, priority=1)
    ) as ctx:
        task_id = await new_task(ctx)
        await run_until(ctx, all_terminal(ctx, task_id))
        row = await task_row(ctx, task_id)
        assert row.status == "succeeded" and row.route == "volc"
        assert row.upstream_id == next(iter(ark.tasks))
        assert not ark2.requests_to("create")


async def test_total_timeout_bounds_a_trickling_call(engine: Any, ark: FakeArk) -> None:
    from videogate.providers import ProviderDeps, load_provider
    from videogate.providers.base import TaskContext

    async with engine(
        route("volc", ark, timeout_seconds=10), upstream_total_timeout_seconds=0.5
    ) as ctx:
        ark.inject(Fault.hang(5), on="create")
        r = ctx.router.get("volc")
        assert r is not None
        deps = ProviderDeps(ctx.settings, ctx.http, run_cpu=lambda *a: None)
        provider = load_provider("ark", r, deps)
        req = GenerationRequest(model=MODEL, prompt="p", duration=4, resolution="480p")
        tctx = TaskContext("t", req, r, {}, {}, ctx.work_dir, attempt_id="att_t")
        with pytest.raises(UpstreamError) as err:
            await provider.submit(tctx)
        assert err.value.code == "upstream_timeout" and (
            err.value.disposition is Disposition.MAYBE_SUBMITTED
        )


# 7. and 11. Blips are ridden out; jobs we end are stopped or followed ----------------------


async def test_a_short_poll_blip_does_not_fail_the_task(settings: Settings, tmp_path: Path) -> None:
    """Five failed polls in a row (about 12 s) used to fail a task still rendering."""
    ctx = await open_context(settings, clock=FakeClock())
    try:
        boom = UpstreamError("HTTP 503", disposition=Disposition.RETRY)
        polls: list[PollResult | Exception] = [PollResult(status="running"), *[boom] * 6]
        provider = FakeProvider(polls=[*polls, done_result(tmp_path)])
        worker = fake_worker(ctx, provider)
        task_id = await new_sandbox_task(ctx)
        assert await drive(worker, task_id, ctx, steps=30) == "succeeded"
    finally:
        await ctx.close()


def test_the_poll_failure_window_is_covered_by_backoff() -> None:
    waits = [retry_delay(n) for n in range(1, 20)]
    assert waits[:3] == [2.0, 4.0, 8.0] and max(waits) == 60.0
    failures = next(n for n in range(1, 100) if gives_up(n, 600))
    assert sum(waits[: failures - 1]) >= 600 > sum(waits[: failures - 2])


async def test_a_task_we_fail_cancels_its_queued_upstream_job(engine: Any, ark: FakeArk) -> None:
    ark.set_schedule(auto_advance=False)
    async with engine(route("volc", ark), poll_failure_window_seconds=1) as ctx:
        task_id = await new_task(ctx)

        async def running() -> bool:
            return (await task_row(ctx, task_id)).status == "running"

        await run_until(ctx, running)
        ark.inject(Fault.server_error(), on="get", times=2)

        async def ended_and_cared_for() -> bool:
            row = await task_row(ctx, task_id)
            return row.status == "failed" and row.next_run_at is None

        await run_until(ctx, ended_and_cared_for)
        assert (await task_row(ctx, task_id)).error_code == "upstream_poll_failed"
        assert ark.task(next(iter(ark.tasks))).status == "cancelled"


async def test_cancelled_running_job_is_followed_and_its_cost_reported(
    engine: Any, ark: FakeArk
) -> None:
    """Ark refuses to delete a running job: the owner is refunded at once, the job is
    followed to its end and what it used shows in the operator's usage report."""
    ark.set_schedule(auto_advance=False)
    async with engine(route("volc", ark)) as ctx:
        task_id = await new_task(ctx)

        async def running() -> bool:
            return (await task_row(ctx, task_id)).status == "running"

        await run_until(ctx, running)
        [job] = list(ark.tasks)
        ark.set_status(job, "running")
        row = await task_row(ctx, task_id)
        assert await ctx.store.tasks.cancel(task_id, row.key_id, ctx.clock.now())
        await run_until(ctx, lambda: _deleted_refused(ark))
        ark.complete(job)

        async def cared_for() -> bool:
            return (await task_row(ctx, task_id)).next_run_at is None

        await run_until(ctx, cared_for)
        row = await task_row(ctx, task_id)
        assert row.status == "cancelled" and row.billing_state == "refunded"
        [report] = await unbilled_upstream(ctx.store)
        assert report["route"] == "volc" and report["jobs"] == 1
        assert report["tokens"] == ark.task(job).completion_tokens > 0
        assert report["amount_micros"] >= 0


async def _deleted_refused(ark: FakeArk) -> bool:
    return any(r.status == 400 for r in ark.requests_to("delete"))


async def test_a_process_starting_during_a_database_outage_waits_for_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from videogate import context as context_module
    from videogate.store.migrate import upgrade as real_upgrade

    failures = {"left": 3}

    async def locked(url: str) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise sa_exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        await real_upgrade(url)

    monkeypatch.setattr(context_module, "upgrade", locked)
    ctx = await open_context(settings.model_copy(update={"worker_backoff_max_seconds": 0.1}))
    try:
        assert failures["left"] == 0
        assert await ctx.store.tasks.count(None) == 0
    finally:
        await ctx.close()
    failures["left"] = 1
    monkeypatch.setattr(context_module, "STARTUP_PATIENCE", 0.0)
    with pytest.raises(sa_exc.OperationalError):  # patience has an end: then it exits
        await open_context(settings)


@pytest.mark.postgres
async def test_postgres_refusing_connections_counts_as_infrastructure() -> None:
    """What a database in maintenance answers (SQLSTATE 55000, seen in the chaos suite
    when a process started during the outage): waited out, not a crash."""
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from videogate.store.db import is_infrastructure

    name = f"vg_refusing_{int(time.time() * 1000)}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
        with pytest.raises(sa_exc.DBAPIError) as err:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        await engine.dispose()
        assert is_infrastructure(err.value)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.close()


# Found by the chaos suite: a submitter whose lease lapsed must not send a create ----------


async def test_a_worker_that_lost_its_task_never_submits_it(engine: Any, ark: FakeArk) -> None:
    """A database outage stops the lease renewals of a worker about to submit; another
    worker claims the task and submits it. The first must not send its own create too:
    its reserve finds the task held by someone else, so nothing is recorded or sent."""
    async with engine(route("volc", ark)) as ctx:
        task_id = await new_task(ctx)
        clock = clock_of(ctx)
        [first] = await ctx.store.tasks.claim_due("w1", 1, clock.now(), 0.01)
        clock.advance(0.05)  # w1's lease lapses without a renewal
        [taken] = await ctx.store.tasks.claim_due("w2", 1, clock.now(), 30.0)
        assert first.id == taken.id == task_id

        r = ctx.router.get("volc")
        assert r is not None
        await ctx.store.route_state.ensure(r.name)
        stale = await ctx.store.attempts.reserve(
            task_id, r.name, r.provider, r.max_in_flight, owner="w1"
        )
        assert stale is None and await ctx.store.attempts.for_task(task_id) == []

        loser = Worker(ctx, owner="w1")
        await loser._submitter.submit(first)  # the whole submit path of the stale holder
        assert ark.requests_to("create") == [] and await ctx.store.attempts.for_task(task_id) == []
        assert (await task_row(ctx, task_id)).lease_owner == "w2"

        winner = Worker(ctx, owner="w2")
        await winner._submitter.submit(taken)
        assert len(ark.requests_to("create")) == 1
        row = await task_row(ctx, task_id)
        assert row.status == "running" and row.upstream_id in ark.tasks


async def test_the_store_is_closed_even_when_closing_the_blob_store_fails(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left open, the store's pooled aiosqlite connections were never closed: the
    collector found them later, in whatever test ran then (a ResourceWarning there)."""
    ctx = await open_context(settings, clock=FakeClock())
    assert await ctx.store.tasks.count(None) == 0  # a connection in the pool

    async def broken() -> None:
        raise StorageUnavailable("the blob store is gone")

    monkeypatch.setattr(ctx.blobs, "close", broken)
    with pytest.raises(StorageUnavailable):
        await ctx.close()
    del ctx
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
