"""Time, injected: the engine reads and waits on a ``Clock`` so tests can move it.

Production passes :class:`SystemClock` through the process context (``AppContext.clock``);
tests pass a fake that only moves when told (``tests/clocks.py``), so a lease, backoff or
breaker window is crossed by advancing the clock instead of sleeping through it.
Timeouts of real I/O (an HTTP call, a download) stay on the event loop's own clock: they
bound how long a socket may take, which a fake clock cannot speed up. So do the expiries
of signed URLs (``signing.py``): clients and object stores check them against their own
real clocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time in Unix seconds: what is stored and compared across processes."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: for measuring durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...

    async def wait(self, aw: Awaitable[Any], timeout: float) -> bool:
        """Wait for ``aw`` at most ``timeout`` seconds on this clock: True when it finished,
        False when the time ran out first (``aw`` is then cancelled)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, aw: Awaitable[Any], timeout: float) -> bool:
        try:
            await asyncio.wait_for(aw, timeout=timeout)
        except TimeoutError:
            return False
        return True
