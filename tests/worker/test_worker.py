"""The task engine: deadlines, lease takeover, retries, upstream failures, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import update

from clocks import FakeClock
from engine_support import FakeProvider, done_result, drive, fake_worker, new_task
from videogate.context import AppContext, open_context
from videogate.errors import Disposition, UpstreamError
from videogate.providers.base import PollResult, TaskContext
from videogate.settings import Settings
from videogate.store.tables import Task
from videogate.worker import poll_delay


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = await open_context(settings, clock=FakeClock())
    yield context
    await context.close()


async def test_success_path_copies_the_result(ctx: AppContext, tmp_path: Path) -> None:
    provider = FakeProvider(
        polls=[
            PollResult(status="queued"),
            PollResult(status="running", progress=40),
            done_result(tmp_path),
        ]
    )
    worker = fake_worker(ctx, provider)
    task_id = await new_task(ctx)
    assert await drive(worker, task_id, ctx) == "succeeded"
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.video_key and row.completion_tokens == 123 and row.seed == 7
    assert (await ctx.blobs.size(row.video_key)) > 0
    assert provider.submitted == [task_id]  # submitted exactly once


async def test_upstream_failure_keeps_its_code(ctx: AppContext) -> None:
    provider = FakeProvider(
        polls=[
            PollResult(
                status="failed",
                error_code="OutputVideoSensitiveContentDetected",
                error_message="the output may be related to copyright",
            )
        ]
    )
    worker = fake_worker(ctx, provider)
    task_id = await new_task(ctx)
    assert await drive(worker, task_id, ctx) == "failed"
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.error_code == "OutputVideoSensitiveContentDetected"


async def test_upstream_expired_and_cancelled_map_to_terminal_states(ctx: AppContext) -> None:
    statuses: list[Literal["expired", "cancelled"]] = ["expired", "cancelled"]
    for status in statuses:
        provider = FakeProvider(polls=[PollResult(status=status)])
        worker = fake_worker(ctx, provider)
        task_id = await new_task(ctx)
        assert await drive(worker, task_id, ctx) == status


async def test_failed_polls_back_off_then_fail(settings: Settings) -> None:
    # A 10 s window: the waits after failures 1-3 (2 + 4 + 8 s) cover it at the 4th.
    context = await open_context(
        settings.model_copy(update={"poll_failure_window_seconds": 10}), clock=FakeClock()
    )
    try:
        boom = UpstreamError("HTTP 503", disposition=Disposition.RETRY)
        script: list[PollResult | Exception] = [boom, boom, PollResult(status="running")]
        provider = FakeProvider(polls=script + [boom] * 4 + [PollResult(status="running")] * 5)
        worker = fake_worker(context, provider)
        task_id = await new_task(context)
        assert await drive(worker, task_id, context) == "failed"
        row = await context.store.tasks.get(task_id)
        assert row is not None and row.error_code == "upstream_poll_failed"
        assert "4 errors" in (row.error_message or "")
    finally:
        await context.close()


async def test_unexpected_errors_are_retried_not_lost(ctx: AppContext, tmp_path: Path) -> None:
    provider = FakeProvider(polls=[RuntimeError("glitch"), done_result(tmp_path)])
    worker = fake_worker(ctx, provider)
    task_id = await new_task(ctx)
    assert await drive(worker, task_id, ctx) == "succeeded"


async def test_deadline_expires_a_task(ctx: AppContext) -> None:
    provider = FakeProvider(polls=[PollResult(status="running")] * 3)
    worker = fake_worker(ctx, provider)
    task_id = await new_task(ctx)
    async with ctx.store.sessions.begin() as s:
        await s.execute(
            update(Task).where(Task.id == task_id).values(deadline_at=ctx.clock.now() - 1)
        )
    await worker.run_until_idle(timeout=10)
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.status == "expired" and row.error_code == "expired"
    assert row.next_run_at is None


async def test_a_lapsed_lease_is_taken_over(ctx: AppContext, tmp_path: Path) -> None:
    provider = FakeProvider(polls=[done_result(tmp_path)])
    task_id = await new_task(ctx)
    # a worker claims the task and dies without a trace
    assert await ctx.store.tasks.claim_due("dead-worker", 1, ctx.clock.now(), lease=0.2)
    survivor = fake_worker(ctx, provider, owner="w2")
    await survivor.run_until_idle(timeout=5)
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.status == "queued"  # still leased by the dead worker
    assert isinstance(ctx.clock, FakeClock)
    ctx.clock.advance(0.3)  # the dead worker's lease lapses
    assert await drive(survivor, task_id, ctx) == "succeeded"


async def test_a_result_left_on_a_dead_workers_disk_is_polled_again(
    ctx: AppContext, tmp_path: Path
) -> None:
    """A worker killed between a local job and the copy leaves a ``fetching`` task whose
    file:// result lies in its own data directory: the survivor runs the job again (the
    sandbox re-renders), never submits again, and never fails the task."""
    provider = FakeProvider()
    theirs = tmp_path / "other-worker" / "work" / "sbx-1" / "video.mp4"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"\x00\x00\x00\x18ftypmp42 theirs")
    for gone in (theirs, tmp_path / "var" / "work" / "gone" / "video.mp4"):
        provider.polls.append(done_result(tmp_path))
        task_id = await new_task(ctx)
        async with ctx.store.sessions.begin() as s:
            await s.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(
                    status="fetching",
                    route="fake",
                    upstream_id="up-1",
                    upstream_result={"video_url": gone.as_uri()},
                    next_run_at=ctx.clock.now(),
                )
            )
        worker = fake_worker(ctx, provider, owner="survivor")
        assert await drive(worker, task_id, ctx) == "succeeded"
        row = await ctx.store.tasks.get(task_id)
        assert row is not None and row.video_key
        copy = tmp_path / "copy.mp4"
        await ctx.blobs.get_file(row.video_key, copy)
        assert copy.read_bytes() == (tmp_path / "var" / "work" / "v.mp4").read_bytes()
    assert provider.submitted == []
    assert theirs.exists()  # another worker's disk is never touched


async def test_a_step_longer_than_the_lease_keeps_its_task(ctx: AppContext, tmp_path: Path) -> None:
    """The worker renews the lease of a task it is stepping every third of the lease, so a
    step that outlasts the lease many times over is never taken over by another worker.
    (A submit step still running when the task is claimed again for its first poll used
    to end the renewals of that poll.)"""
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    lease = ctx.settings.lease_seconds
    polling, release = asyncio.Event(), asyncio.Event()

    class SlowPoll(FakeProvider):
        async def poll(self, tctx: TaskContext, upstream_id: str) -> PollResult:
            polling.set()
            await release.wait()
            return done_result(tmp_path)

    worker = fake_worker(ctx, SlowPoll())
    renewed: list[list[str]] = []
    idle, done = asyncio.Event(), asyncio.Event()  # no renewal being written; one written
    idle.set()
    real_renew = ctx.store.tasks.renew

    async def renew(owner: str, task_ids: Sequence[str], until: float) -> int:
        idle.clear()
        try:
            return await real_renew(owner, task_ids, until)
        finally:
            renewed.append(list(task_ids))
            idle.set()
            done.set()

    ctx.store.tasks.renew = renew  # type: ignore[method-assign]
    real_adopt = ctx.store.tasks.adopt

    async def adopt(*args: Any, **kwargs: Any) -> bool:
        moved = await real_adopt(*args, **kwargs)
        # The submit step goes on after handing the task on (it used to record its
        # attempt then): keep it busy until the task's first poll has been claimed.
        await polling.wait()
        return moved

    ctx.store.tasks.adopt = adopt  # type: ignore[method-assign]

    async def advance(seconds: float) -> None:
        """Move time only while no renewal is being written (it measures from its end)."""
        await idle.wait()
        clock.advance(seconds)
        await asyncio.sleep(0.02)  # real I/O: what the worker does at this time

    task_id = await new_task(ctx)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        while not polling.is_set():  # submitted; the first poll is due a second later
            await advance(0.5)
        for _ in range(6):  # three leases' worth of time while the poll hangs
            done.clear()
            await advance(lease / 2)  # past a renewal's time
            await asyncio.wait_for(done.wait(), 30)  # real I/O: its database write
            assert task_id in renewed[-1]
            assert await ctx.store.tasks.claim_due("thief", 1, clock.now(), lease) == []
        release.set()
        while (row := await ctx.store.tasks.get(task_id)) and row.status != "succeeded":
            await advance(0.5)
    finally:
        stop.set()
        await runner
    assert row is not None and row.status == "succeeded" and row.lease_owner is None


async def test_cancel_during_a_step_wins(ctx: AppContext, tmp_path: Path) -> None:
    task_id = await new_task(ctx)
    row = await ctx.store.tasks.get(task_id)
    assert row is not None
    key_id = row.key_id

    class CancelWhilePolling(FakeProvider):
        async def poll(self, tctx: TaskContext, upstream_id: str) -> PollResult:
            await ctx.store.tasks.cancel(task_id, key_id, ctx.clock.now())
            return done_result(tmp_path)

    worker = fake_worker(ctx, CancelWhilePolling())
    assert await drive(worker, task_id, ctx) == "cancelled"
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.video_key is None


async def test_a_render_that_lost_its_task_leaves_no_scratch(
    ctx: AppContext, tmp_path: Path
) -> None:
    """A poll that rendered into work_dir/<upstream id> after the task was finished elsewhere
    (here: cancelled; on a starved machine: completed by the worker that took it over)
    removes what it wrote: nobody will fetch it."""
    task_id = await new_task(ctx)
    row = await ctx.store.tasks.get(task_id)
    assert row is not None
    key_id = row.key_id
    rendered: list[Path] = []

    class RenderThenLose(FakeProvider):
        async def poll(self, tctx: TaskContext, upstream_id: str) -> PollResult:
            out = tctx.work_dir / upstream_id
            out.mkdir(parents=True)
            (out / "video.mp4").write_bytes(b"late render")
            rendered.append(out)
            await ctx.store.tasks.cancel(task_id, key_id, ctx.clock.now())
            return done_result(tmp_path)

    worker = fake_worker(ctx, RenderThenLose())
    assert await drive(worker, task_id, ctx) == "cancelled"
    assert rendered and not rendered[0].exists()


async def test_submit_error_that_is_not_retryable_fails_the_task(ctx: AppContext) -> None:
    provider = FakeProvider(submit_error=UpstreamError("bad prompt", code="InvalidParameter"))
    worker = fake_worker(ctx, provider)
    task_id = await new_task(ctx)
    assert await drive(worker, task_id, ctx) == "failed"
    row = await ctx.store.tasks.get(task_id)
    assert row is not None and row.error_code == "InvalidParameter"


def test_poll_delay_grows_and_is_capped() -> None:
    delays = [poll_delay(n) for n in range(12)]
    assert delays[0] == 1.0 and delays == sorted(delays) and delays[-1] == 10.0
