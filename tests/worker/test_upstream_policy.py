"""What the engine does with each upstream disposition (providers/http.py decides the
disposition; docs/reliability.md "Upstream errors"): the same answer to a create from an
Ark route and from an OpenAI-compatible route ends the same way, and the upstream's
``Retry-After`` is waited out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_engine_faults import all_terminal, engine, new_task, route, run_until, task_row

from clocks import FakeClock
from engine_support import FakeProvider, drive, fake_worker
from engine_support import new_task as new_sandbox_task
from fakes import FakeArk, FakeRelay, Fault
from videogate.context import open_context
from videogate.errors import Disposition, UpstreamError
from videogate.providers.base import PollResult
from videogate.settings import RouteConfig, Settings
from videogate.worker.retry import (
    MAX_RETRY_AFTER,
    honoured_retry_after,
    resubmit_delay,
    retry_delay,
)

__all__ = ["engine"]  # the fixture, shared with test_engine_faults


# The slow tier (make test, not make test-fast): the engine against fake Ark and relay servers.
pytestmark = pytest.mark.slow


@pytest.fixture
def ark() -> Iterator[FakeArk]:
    with FakeArk(queued_seconds=0.05, running_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def relay() -> Iterator[FakeRelay]:
    with FakeRelay(api_key="ark-test-key") as fake:  # the engine fixture's one key
        yield fake


def first_route(kind: str, ark: FakeArk, relay: FakeRelay, **kw: Any) -> RouteConfig:
    """The route that answers badly: an Ark route, or a relay route with the same key."""
    if kind == "ark":
        return route("first", ark, **kw)
    values: dict[str, Any] = {"provider": "openai", "base_url": relay.base_url, **kw}
    return route("first", ark, **values)


def fake_of(kind: str, ark: FakeArk, relay: FakeRelay) -> FakeArk | FakeRelay:
    return ark if kind == "ark" else relay


# ---- a create's answer: fail over, or fail the task, the same for both API shapes ----------


@pytest.mark.parametrize("kind", ["ark", "openai"])
@pytest.mark.parametrize(
    ("fault", "fails_over"),
    [
        (Fault.error(302), True),  # Ark used to fail the task on a redirect
        (Fault.error(401), True),
        (Fault.error(404), True),
        (Fault.error(400, "ModelNotOpen"), True),
        (Fault.error(408), True),
        (Fault.server_error(), True),
        (Fault.error(400, "InvalidParameter", "no such ratio"), False),
        (Fault.error(409), False),
    ],
    ids=["302", "401", "404", "400-ModelNotOpen", "408", "500", "400", "409"],
)
async def test_a_create_answer_fails_over_or_fails_the_task(
    engine: Any, ark: FakeArk, relay: FakeRelay, kind: str, fault: Fault, fails_over: bool
) -> None:
    backup = FakeArk(queued_seconds=0.05, running_seconds=0.2)
    with backup:
        fake_of(kind, ark, relay).inject(fault, on="create")
        async with engine(
            first_route(kind, ark, relay), route("backup", backup, priority=1)
        ) as ctx:
            task_id = await new_task(ctx)
            await run_until(ctx, all_terminal(ctx, task_id))
            row = await task_row(ctx, task_id)
            attempts = [(a.route, a.state) for a in await ctx.store.attempts.for_task(task_id)]
            if fails_over:
                assert (row.status, row.route) == ("succeeded", "backup")
                assert attempts == [("first", "failed"), ("backup", "submitted")]
            else:
                assert row.status == "failed"
                assert attempts == [("first", "failed")]
                assert not backup.requests_to("create")


@pytest.mark.parametrize("kind", ["ark", "openai"])
async def test_a_create_answered_429_retry_after_benches_the_route_that_long(
    engine: Any, ark: FakeArk, relay: FakeRelay, kind: str
) -> None:
    fake_of(kind, ark, relay).inject(Fault.rate_limited(retry_after="120"), on="create")
    backup = FakeArk(queued_seconds=0.05, running_seconds=0.2)
    with backup:
        async with engine(
            first_route(kind, ark, relay), route("backup", backup, priority=1)
        ) as ctx:
            task_id = await new_task(ctx)
            started = ctx.clock.now()
            await run_until(ctx, all_terminal(ctx, task_id))
            assert (await task_row(ctx, task_id)).route == "backup"
            state = (await ctx.store.route_state.all())["first"]
            # One failure is under the breaker's threshold: only Retry-After benched it.
            assert state.consecutive_failures == 1
            assert state.benched_until is not None and state.benched_until >= started + 120


# ---- a poll's answer: asked again, never sooner than the upstream said ---------------------


@pytest.mark.parametrize("kind", ["ark", "openai"])
async def test_a_poll_answered_503_retry_after_waits_that_long(
    engine: Any, ark: FakeArk, relay: FakeRelay, kind: str
) -> None:
    fake = fake_of(kind, ark, relay)
    fake.set_schedule(auto_advance=False)
    async with engine(first_route(kind, ark, relay)) as ctx:
        task_id = await new_task(ctx)

        async def running() -> bool:
            return (await task_row(ctx, task_id)).status == "running"

        await run_until(ctx, running)
        fake.inject(Fault.error(503, retry_after="45"), on="get")

        async def failed_once() -> bool:
            return (await task_row(ctx, task_id)).errors_in_a_row == 1

        await run_until(ctx, failed_once)
        row = await task_row(ctx, task_id)
        assert row.status == "running" and row.next_run_at is not None
        assert row.next_run_at - row.updated_at >= 45 > retry_delay(1)


async def test_a_poll_failing_over_or_failing_the_task_ends_a_running_task(
    settings: Settings,
) -> None:
    """A running job cannot move: FAIL_OVER and FAIL_TASK end it; RETRY waits (above)."""
    for disposition in (Disposition.FAIL_OVER, Disposition.FAIL_TASK):
        ctx = await open_context(settings, clock=FakeClock())
        try:
            boom = UpstreamError("gone", code="gone_upstream", disposition=disposition)
            polls: list[PollResult | Exception] = [PollResult(status="running"), boom]
            worker = fake_worker(ctx, FakeProvider(polls=polls))
            task_id = await new_sandbox_task(ctx)
            assert await drive(worker, task_id, ctx) == "failed"
            row = await ctx.store.tasks.get(task_id)
            assert row is not None and row.error_code == "gone_upstream"
        finally:
            await ctx.close()


# ---- the retry policy ---------------------------------------------------------------------


def test_retry_after_only_lengthens_the_backoff_and_is_capped() -> None:
    assert retry_delay(3) == 8.0 and retry_delay(3, 2.0) == 8.0 and retry_delay(3, 45.0) == 45.0
    assert resubmit_delay(1) == 1.5 and resubmit_delay(1, 30.0) == 30.0
    long = UpstreamError("slow down", disposition=Disposition.RETRY, retry_after=86_400.0)
    assert honoured_retry_after(long) == MAX_RETRY_AFTER
    assert honoured_retry_after(UpstreamError("x", disposition=Disposition.RETRY)) is None
    assert honoured_retry_after(RuntimeError("not upstream")) is None
