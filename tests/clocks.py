"""A fake clock for engine tests: time moves only when the test advances it.

Pass it to ``open_context(settings, clock=...)`` or ``create_app(settings, clock=...)``;
then a lease lapses, a backoff ends or a breaker window closes on ``clock.advance(s)``
instead of a real sleep. Real I/O (a fake upstream's HTTP server, the database) still
takes real time: tests wait for it by polling, never by sleeping a guessed amount.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from videogate.clock import Clock


class FakeClock:
    """A :class:`videogate.clock.Clock` that stands still until :meth:`advance`."""

    def __init__(self, start: float | None = None) -> None:
        # Near the real time by default: the fake upstreams and the URL signer read the
        # real clock, and stored times stay plausible.
        self._now = time.time() if start is None else start
        self._mono = 1_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    @property
    def sleepers(self) -> int:
        """How many sleeps and timed waits are pending (to see that a loop is waiting)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleep and timed wait that ends by then.

        The woken tasks run at the caller's next ``await``."""
        assert seconds >= 0, "time only moves forward"
        self._now += seconds
        self._mono += seconds
        due = [(at, f) for at, f in self._sleepers if at <= self._mono]
        self._sleepers = [(at, f) for at, f in self._sleepers if at > self._mono]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        """A future that ``advance`` resolves once ``seconds`` have passed from now
        (registered at once, so an advance right after the call counts)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            future.set_result(None)
        else:
            self._sleepers.append((self._mono + seconds, future))
        return future

    def _forget(self, future: asyncio.Future[None]) -> None:
        self._sleepers = [(at, f) for at, f in self._sleepers if f is not future]

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # still a point where other tasks run, like asyncio's
            return
        timer = self._timer(seconds)
        try:
            await timer
        finally:
            self._forget(timer)

    async def wait(self, aw: Awaitable[Any], timeout: float) -> bool:
        timer = self._timer(timeout)
        job = asyncio.ensure_future(aw)
        try:
            await asyncio.wait({job, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._forget(timer)
            timer.cancel()
            if not job.done():
                job.cancel()
            await asyncio.gather(job, return_exceptions=True)
        if job.cancelled():
            return False
        job.result()  # raises what the awaited raised, like asyncio.wait_for
        return True


def _check(clock: FakeClock) -> Clock:
    return clock  # mypy: the fake keeps the protocol
