"""The injected clock: the system one waits for real, the fake one when told to."""

from __future__ import annotations

import asyncio

import pytest

from clocks import FakeClock
from videogate.clock import SystemClock


async def test_system_clock_wait_says_whether_the_awaitable_finished() -> None:
    clock = SystemClock()
    done = asyncio.Event()
    done.set()
    assert await clock.wait(done.wait(), 5.0) is True
    assert await clock.wait(asyncio.Event().wait(), 0.01) is False


async def test_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(start=1_000.0)
    sleeper = asyncio.create_task(clock.sleep(10))
    await asyncio.sleep(0)
    assert clock.sleepers == 1 and clock.now() == 1_000.0
    clock.advance(9.5)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(0.5)
    await asyncio.sleep(0)
    assert sleeper.done() and clock.now() == 1_010.0 and clock.sleepers == 0


async def test_fake_clock_wait_ends_at_the_event_or_the_timeout() -> None:
    clock = FakeClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(event.wait(), 5))
    await asyncio.sleep(0)
    event.set()
    assert await waiting is True
    never = asyncio.Event()
    timing_out = asyncio.create_task(clock.wait(never.wait(), 5))
    await asyncio.sleep(0)
    clock.advance(5)
    assert await timing_out is False
    assert clock.sleepers == 0


async def test_fake_clock_wait_raises_what_the_awaitable_raised() -> None:
    async def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await FakeClock().wait(boom(), 5)
