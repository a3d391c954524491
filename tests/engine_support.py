"""Shared by the engine tests (tests/worker, tests/api): fake Ark servers on a short schedule
as fixtures, and a scripted provider with a worker stepped on the fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from clocks import FakeClock
from fakes import FakeArk
from videogate.context import AppContext
from videogate.providers.base import Capabilities, PollResult, Route, TaskContext
from videogate.request import GenerationRequest
from videogate.routing import Router
from videogate.service.keys import Caller, create_key
from videogate.service.tasks import TaskService
from videogate.worker import Worker

# ---- fake Ark servers (a module imports the fixtures it uses and names them in __all__) ----


@pytest.fixture
def ark() -> Iterator[FakeArk]:
    with FakeArk(queued_seconds=0.05, running_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def ark2() -> Iterator[FakeArk]:
    with FakeArk(queued_seconds=0.05, running_seconds=0.2) as fake:
        yield fake


# ---- a scripted upstream and a worker stepped by hand -------------------------------------


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
