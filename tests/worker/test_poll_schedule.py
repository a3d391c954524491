"""The poll schedule: backoff capped by ``poll_max_interval_seconds``, polls every second
near a job's expected finish (a per-route estimate), and the engine following it on a fake
clock."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from clocks import FakeClock
from engine_support import FakeProvider, done_result, drive, fake_worker, new_task
from videogate.context import AppContext, open_context
from videogate.providers.base import Capabilities, PollResult, TaskContext
from videogate.settings import Settings
from videogate.worker.poll import RunTimes
from videogate.worker.retry import MAX_POLL_DELAY, poll_delay, resubmit_delay

CAP = 5.0


@pytest.mark.parametrize(
    ("case", "polls", "elapsed", "expected", "spread", "delay"),
    [
        # no estimate yet: the plain backoff, capped
        ("first poll, no estimate", 0, 1.0, None, 0.0, 1.0),
        ("third poll, no estimate", 2, 5.0, None, 0.0, 2.25),
        ("many polls, no estimate", 20, 200.0, None, 0.0, CAP),
        # early in a 60 s job (window 57-63 s): the backoff, up to the cap
        ("early, short backoff", 1, 2.0, 60.0, 0.0, 1.5),
        ("early, at the cap", 10, 30.0, 60.0, 0.0, CAP),
        # just before the window: wait only until it opens
        ("before the window", 10, 55.0, 60.0, 0.0, 2.0),
        ("right at the window", 10, 56.5, 60.0, 0.0, 1.0),
        # inside the window: every second, however many polls came before
        ("window start", 10, 57.0, 60.0, 0.0, 1.0),
        ("expected finish", 10, 60.0, 60.0, 0.0, 1.0),
        ("window end", 10, 63.0, 60.0, 0.0, 1.0),
        # a wide spread widens the window, but never beyond the cap either side
        ("wide spread", 10, 55.5, 60.0, 8.0, 1.0),
        ("no spread, same time", 10, 55.5, 60.0, 0.0, 1.5),
        ("spread beyond the cap", 10, 50.0, 60.0, 30.0, CAP),
        # a short job: the window is at least a second either side
        ("short job", 0, 4.0, 5.0, 0.0, 1.0),
        # long past it: the wait grows with the overrun, never beyond the cap
        ("just past the window", 12, 64.0, 60.0, 0.0, 1.0),
        ("past the window", 12, 66.0, 60.0, 0.0, 3.0),
        ("long past it", 30, 300.0, 60.0, 0.0, CAP),
    ],
)
def test_schedule(
    case: str, polls: int, elapsed: float, expected: float | None, spread: float, delay: float
) -> None:
    got = poll_delay(polls, elapsed=elapsed, expected=expected, spread=spread, cap=CAP)
    assert got == pytest.approx(delay), case


def test_the_cap_bounds_every_wait() -> None:
    for cap in (0.5, 2.0, 5.0, 10.0):
        for expected in (None, 3.0, 60.0, 600.0):
            for polls in range(30):
                for elapsed in (0.0, 1.0, 10.0, 58.0, 61.0, 100.0, 1000.0):
                    delay = poll_delay(polls, elapsed=elapsed, expected=expected, cap=cap)
                    assert 0 < delay <= cap


def test_few_extra_polls_for_a_timed_finish() -> None:
    """A 60 s job: polling near its expected finish costs a few polls more than the plain
    capped backoff, not a poll a second."""

    def polls_until(finish: float, expected: float | None) -> tuple[int, float]:
        t, n = 0.0, 0
        while t < finish:
            t += poll_delay(n, elapsed=t, expected=expected, cap=CAP)
            n += 1
        return n, t - finish

    plain, plain_late = polls_until(60.2, None)
    timed, timed_late = polls_until(60.2, 60.0)
    assert timed_late <= 1.0 < plain_late <= CAP
    assert timed <= plain + 6


def test_resubmits_keep_their_ten_second_cap() -> None:
    assert resubmit_delay(30) == MAX_POLL_DELAY


def test_run_times_learn_per_route() -> None:
    times = RunTimes()
    assert times.expected("a") is None
    times.observe("a", 60.0)
    assert times.expected("a") == (60.0, 0.0)
    times.observe("a", 70.0)
    mean, spread = times.expected("a") or (0.0, 0.0)
    assert 60.0 < mean < 70.0 and spread > 0
    assert times.expected("b") is None


# The engine on a fake clock -----------------------------------------------------------


@dataclass
class TimedProvider(FakeProvider):
    """An upstream whose jobs finish ``durations[i]`` seconds after the i-th submit (on the
    fake clock); it notes when each poll came."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    clock: FakeClock = field(default_factory=FakeClock)
    durations: list[float] = field(default_factory=list)
    result: PollResult = field(default_factory=lambda: PollResult(status="succeeded"))
    finish_at: dict[str, float] = field(default_factory=dict)
    poll_times: dict[str, list[float]] = field(default_factory=dict)

    async def submit(self, ctx: TaskContext) -> str:
        upstream_id = await super().submit(ctx)
        self.finish_at[upstream_id] = self.clock.now() + self.durations.pop(0)
        return upstream_id

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        now = self.clock.now()
        self.poll_times.setdefault(upstream_id, []).append(now)
        if now >= self.finish_at[upstream_id]:
            return self.result
        return PollResult(status="running")


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    update = {"poll_max_interval_seconds": CAP}
    context = await open_context(settings.model_copy(update=update), clock=FakeClock())
    yield context
    await context.close()


async def test_polls_are_timed_near_the_expected_finish(ctx: AppContext, tmp_path: Path) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    # Three jobs of 60 s teach the route's run time; the fourth ends at its expected time,
    # the fifth runs three times as long.
    provider = TimedProvider(
        clock=clock, durations=[60.0, 60.0, 60.0, 60.0, 180.0], result=done_result(tmp_path)
    )
    worker = fake_worker(ctx, provider)
    for _ in range(3):
        assert await drive(worker, await new_task(ctx), ctx, steps=200) == "succeeded"
    learned = worker._poller.run_times.expected("fake")
    assert learned is not None and 60.0 <= learned[0] <= 60.0 + CAP

    for job, seen_within in (("up-4", 1.0), ("up-5", CAP)):
        assert await drive(worker, await new_task(ctx), ctx, steps=300) == "succeeded"
        times = provider.poll_times[job]
        finish = provider.finish_at[job]
        # the one ending on time is seen within about a second; the long one within the cap
        assert finish <= times[-1] <= finish + seen_within + 1e-6, job
        # and both are polled no less often than the cap all along
        assert max(_gaps(times)) <= CAP + 1e-6, job
    # the long job is not polled every second once it has overrun its window
    assert sum(1 for gap in _gaps(provider.poll_times["up-5"]) if gap == pytest.approx(CAP)) >= 10


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_without_an_estimate_polls_back_off_to_the_cap(
    ctx: AppContext, tmp_path: Path
) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    provider = TimedProvider(clock=clock, durations=[60.0], result=done_result(tmp_path))
    worker = fake_worker(ctx, provider)
    assert await drive(worker, await new_task(ctx), ctx, steps=200) == "succeeded"
    times = provider.poll_times["up-1"]
    gaps = _gaps(times)
    assert gaps[:3] == pytest.approx([1.5, 2.25, 3.375]) and max(gaps) == pytest.approx(CAP)
    assert times[-1] - provider.finish_at["up-1"] <= CAP + 1e-6
