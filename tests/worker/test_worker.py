"""The task engine: deadlines, lease takeover, retries, upstream failures, cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from sqlalchemy import update

from clocks import FakeClock
from videogate.context import AppContext, open_context
from videogate.errors import Disposition, UpstreamError
from videogate.providers.base import Capabilities, PollResult, Route, TaskContext
from videogate.request import GenerationRequest
from videogate.routing import Router
from videogate.service.keys import Caller, create_key
from videogate.service.tasks import TaskService
from videogate.settings import Settings
from videogate.store.tables import Task
from videogate.worker import Worker, poll_delay


@dataclass
class FakeProvider:
    """Scripted upstream: ``polls`` are returned (or raised) in order."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    polls: list[PollResult | Exception] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    submit_error: Exception | None = None

    async def submit(self, ctx: TaskContext) -> str:
        if self.submit_error is not None:
            raise self.submit_error
        self.submitted.append(ctx.task_id)
        return f"up-{len(self.submitted)}"

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        item = self.polls.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        return None

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        return None


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = await open_context(settings, clock=FakeClock())
    yield context
    await context.close()


ROUTE = Route(name="fake", model="sandbox", provider="fake", upstream_model="x", groups=("*",))


def fake_worker(ctx: AppContext, provider: FakeProvider, owner: str = "w1") -> Worker:
    ctx.router = Router([ROUTE])
    worker = Worker(ctx, owner=owner)
    worker._providers[ROUTE.name] = provider  # tests inject the upstream directly
    return worker


async def new_task(ctx: AppContext) -> str:
    key = await create_key(ctx.store)
    caller = Caller(key.id, "default")
    task, _ = await TaskService(ctx).create(
        caller, GenerationRequest(model="sandbox", prompt="p", duration=4, resolution="480p")
    )
    return task.id


async def drive(worker: Worker, task_id: str, ctx: AppContext, steps: int = 20) -> str:
    """Run steps until the task is terminal, moving the fake clock to each next step."""
    clock = ctx.clock
    assert isinstance(clock, FakeClock), "drive() moves time: the context needs a FakeClock"
    for _ in range(steps):
        row = await ctx.store.tasks.get(task_id)
        assert row is not None
        if row.status in ("succeeded", "failed", "cancelled", "expired"):
            return row.status
        if row.next_run_at is not None:
            clock.advance(max(0.0, row.next_run_at - clock.now()))
        await worker.run_until_idle(timeout=10)
    row = await ctx.store.tasks.get(task_id)
    assert row is not None
    return row.status


def done_result(tmp: Path) -> PollResult:
    # providers hand out file:// results only from inside the work dir
    video = tmp / "var" / "work" / "v.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake")
    return PollResult(
        status="succeeded",
        video_url=video.as_uri(),
        completion_tokens=123,
        seconds=4.0,
        width=864,
        height=496,
        seed=7,
    )


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


async def test_poll_errors_back_off_then_fail(settings: Settings) -> None:
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
