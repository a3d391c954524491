"""Upstream callbacks: answered without waiting for SQLite's write lock, written in a
batch, and the task claimed at the worker's first free slot (fake clock: no time passes)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from clocks import FakeClock
from engine_support import FakeProvider, fake_worker, new_task
from videogate.context import AppContext, open_context
from videogate.providers.base import PollResult, TaskContext
from videogate.settings import Settings
from videogate.store.tables import Task
from videogate.worker import Worker
from videogate.worker.callbacks import ark_callback_url, receive_callback

CONCURRENCY = 16  # a claim batch is 2 slots


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = await open_context(
        settings.model_copy(update={"worker_concurrency": CONCURRENCY}), clock=FakeClock()
    )
    yield context
    await context.close()


def token(ctx: AppContext, task_id: str) -> str:
    url = ark_callback_url(ctx, task_id)
    assert url is not None
    return url.rsplit("/", 1)[1]


async def running(ctx: AppContext, n: int, *, due: bool) -> list[str]:
    """``n`` tasks running upstream, due now or an hour from now."""
    ids = [await new_task(ctx) for _ in range(n)]
    now = ctx.clock.now()
    async with ctx.store.sessions.begin() as s:
        for i, task_id in enumerate(ids):
            await s.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(
                    status="running",
                    route="fake",
                    upstream_id=f"up-{task_id}",
                    started_at=now,
                    next_run_at=now if due else now + 3600 + i,
                )
            )
    return ids


def database_path(ctx: AppContext) -> str:
    return ctx.settings.effective_database_url.split("///", 1)[1]


async def next_run_at(ctx: AppContext, task_id: str) -> float | None:
    row = await ctx.store.tasks.get(task_id)
    assert row is not None
    return row.next_run_at


async def test_callback_is_answered_while_another_process_holds_the_write_lock(
    ctx: AppContext,
) -> None:
    hinted, other = await running(ctx, 2, due=False)
    queued = await new_task(ctx)
    later = await next_run_at(ctx, other)
    holder = sqlite3.connect(database_path(ctx), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        ctx.wakeup.clear()
        for task_id in (hinted, hinted, queued):  # one batch: a repeat and a queued task
            # Before: this waited for the lock (and failed after LOCK_WAIT_SECONDS).
            await asyncio.wait_for(receive_callback(ctx, token(ctx, task_id)), 30)
        assert not ctx.wakeup.is_set()  # the worker is woken once it is written
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await ctx.store.tasks.hints_written()
    assert ctx.wakeup.is_set()
    assert await next_run_at(ctx, hinted) == 0.0  # ahead of every regular poll
    assert await next_run_at(ctx, other) == later
    row = await ctx.store.tasks.get(queued)
    assert row is not None and row.status == "queued" and row.next_run_at != 0.0


class Gated(FakeProvider):
    """Each poll waits for its task's gate; answers "still running"."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        self.polled: list[str] = []
        self.changed = asyncio.Event()

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        self.polled.append(ctx.task_id)
        self.changed.set()
        await self.gates.setdefault(ctx.task_id, asyncio.Event()).wait()
        return PollResult(status="running")


class Wakeup(asyncio.Event):
    """The worker's wake-up event, telling when the worker cleared it (it saw it)."""

    def __init__(self) -> None:
        super().__init__()
        self.cleared = asyncio.Event()

    def clear(self) -> None:
        super().clear()
        self.cleared.set()


@contextlib.asynccontextmanager
async def worker_running(ctx: AppContext) -> AsyncIterator[tuple[Gated, Wakeup, Worker]]:
    """A worker stepping ``ctx``'s tasks on a gated provider until the block ends; then
    every gate opens and the worker stops."""
    provider = Gated()
    ctx.wakeup = wakeup = Wakeup()
    worker = fake_worker(ctx, provider)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        yield provider, wakeup, worker
    finally:
        for gate in provider.gates.values():
            gate.set()
        stop.set()
        await runner


async def polled(provider: Gated, count: int) -> None:
    while len(provider.polled) < count:
        provider.changed.clear()
        await asyncio.wait_for(provider.changed.wait(), 30)  # real I/O: claims and writes


@pytest.mark.parametrize("wake", ["in_process", "other_process"])
async def test_hinted_task_takes_the_first_free_slot(ctx: AppContext, wake: str) -> None:
    """Every slot busy, a callback arrives, one slot frees (less than a claim batch): the
    hinted task is claimed then (before: only once a whole batch of slots was free)."""
    busy = await running(ctx, CONCURRENCY, due=True)
    [hinted] = await running(ctx, 1, due=False)
    async with worker_running(ctx) as (provider, wakeup, worker):
        await polled(provider, CONCURRENCY)
        assert sorted(provider.polled) == sorted(busy)
        if wake == "in_process":
            await receive_callback(ctx, token(ctx, hinted))
            await ctx.store.tasks.hints_written()
            assert ctx.wakeup.is_set()
            wakeup.cleared.clear()
            await asyncio.wait_for(wakeup.cleared.wait(), 30)  # seen, every slot busy
        else:  # SQLite, a callback in another process: no event here, the worker reads
            seen = asyncio.Event()
            hinted_due = ctx.store.tasks.hinted_due

            def spy() -> bool:
                if found := hinted_due():
                    seen.set()
                return found

            ctx.store.tasks.hinted_due = spy  # type: ignore[method-assign]
            other = sqlite3.connect(database_path(ctx), isolation_level=None)
            other.execute("UPDATE tasks SET next_run_at = 0.0 WHERE id = ?", (hinted,))
            other.close()
            assert isinstance(ctx.clock, FakeClock)
            ctx.clock.advance(ctx.settings.worker_poll_interval)  # its periodic look
            await asyncio.wait_for(seen.wait(), 30)
        assert len(worker._active) == CONCURRENCY
        provider.gates[busy[0]].set()  # one slot frees
        await polled(provider, CONCURRENCY + 1)
        assert provider.polled[-1] == hinted


async def test_idle_worker_steps_a_task_when_it_is_due_not_at_its_next_look(
    ctx: AppContext,
) -> None:
    """A poll scheduled 0.2 s ahead is claimed when the clock reaches it, though the
    worker's periodic look (``worker_poll_interval``, here 10 s) is far off."""
    ctx.settings = ctx.settings.model_copy(update={"worker_poll_interval": 10.0})
    [task_id] = await running(ctx, 1, due=False)
    assert ctx.store.tasks.writer is not None
    await ctx.store.tasks.writer.statement(
        "UPDATE tasks SET next_run_at = ? WHERE id = ?", (ctx.clock.now() + 0.2, task_id)
    )
    async with worker_running(ctx) as (provider, wakeup, _):
        await asyncio.wait_for(wakeup.cleared.wait(), 30)  # it looked: nothing due yet
        assert provider.polled == []
        assert isinstance(ctx.clock, FakeClock)
        ctx.clock.advance(0.25)  # not 0.2: times near 1.8e9 s differ from it by ~1e-7
        await polled(provider, 1)
        assert provider.polled == [task_id]


async def test_a_callback_saying_the_job_still_runs_does_not_make_the_task_due(
    ctx: AppContext,
) -> None:
    """Ark calls back on creation and at each change: the early ``queued``/``running`` ones
    would only buy a poll that says "running", ahead of the tasks waiting to be submitted.
    Any other claim, or none, makes the task due (the body itself is never believed)."""
    ids = await running(ctx, 5, due=False)
    claims = ["queued", "running", "succeeded", "failed", None]
    before = {task_id: await next_run_at(ctx, task_id) for task_id in ids}
    for task_id, claim in zip(ids, claims, strict=True):
        await receive_callback(ctx, token(ctx, task_id), claim)
    await ctx.store.tasks.hints_written()
    after = [await next_run_at(ctx, task_id) for task_id in ids]
    assert after[:2] == [before[ids[0]], before[ids[1]]]
    assert after[2:] == [0.0, 0.0, 0.0]
