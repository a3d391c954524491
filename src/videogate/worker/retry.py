"""How the engine waits: the poll cadence, bounded exponential backoff after errors, the
upstream's ``Retry-After``, and the poll-failure window after which a running task is given
up (docs/reliability.md). The one retry policy: every wait after an error comes from here."""

from __future__ import annotations

from videogate.errors import Disposition, UpstreamError
from videogate.store.db import is_infrastructure

__all__ = [
    "asks_again",
    "backoff",
    "describe",
    "gives_up",
    "honoured_retry_after",
    "is_infrastructure",
    "poll_delay",
    "resubmit_delay",
    "retry_delay",
]

INFRA_RETRY_SECONDS = 2.0  # a step that hit a database/storage error is tried again then
MAX_RETRY_DELAY = 60.0  # the longest backoff between two polls of a failing upstream
MAX_POLL_DELAY = 10.0  # the longest wait between resubmit rounds of a queued task
# The pace of polls around a job's expected finish: a completion there is seen within it.
NEAR_FINISH_POLL_INTERVAL = 1.0
# The longest upstream ``Retry-After`` obeyed: a longer one (a misconfigured upstream, an
# hour-long quota window) is cut to this, so a task is never parked past what its poll
# window and deadline can absorb.
MAX_RETRY_AFTER = 300.0


def asks_again(exc: UpstreamError) -> bool:
    """Whether asking the same upstream again later may help: ``RETRY``, and
    ``MAYBE_SUBMITTED`` outside a create (a read whose answer was lost)."""
    return exc.disposition in (Disposition.RETRY, Disposition.MAYBE_SUBMITTED)


def honoured_retry_after(exc: BaseException) -> float | None:
    """The upstream's ``Retry-After`` for this error, cut to :data:`MAX_RETRY_AFTER`."""
    after = exc.retry_after if isinstance(exc, UpstreamError) else None
    return None if after is None else min(after, MAX_RETRY_AFTER)


def poll_delay(
    polls: int,
    *,
    elapsed: float | None = None,
    expected: float | None = None,
    spread: float = 0.0,
    cap: float = MAX_POLL_DELAY,
) -> float:
    """The wait before the next poll of a running job: 1 s, 1.5 s, 2.25 s … capped at ``cap``
    (``poll_max_interval_seconds``), so polling alone sees a completion within ``cap``.

    With an ``expected`` run time (and its typical ``spread``) and the time ``elapsed``
    since submit, polls are timed near the expected finish: the backoff never overshoots
    the start of the window ``expected ± max(spread, 5 %)`` (at least 1 s, at most ``cap``
    either side), inside it polls come every :data:`NEAR_FINISH_POLL_INTERVAL`, and past it
    the wait grows again with the overrun, never beyond ``cap``. Early in the job the
    backoff still applies: few more polls than without an estimate, most where jobs end.
    Upstream callbacks, when configured, cut the wait short (see ``worker/callbacks.py``).
    """
    fast = min(NEAR_FINISH_POLL_INTERVAL, cap)
    base = float(min(1.0 * 1.5 ** max(polls, 0), cap))
    if elapsed is None or expected is None or expected <= 0:
        return base
    half = min(max(spread, 0.05 * expected, fast), cap)
    start, end = expected - half, expected + half
    if elapsed < start:
        return max(fast, min(base, start - elapsed))
    if elapsed <= end:
        return fast
    # Running long: the later past the window, the less a finish right now is likely.
    return float(min(cap, max(fast, elapsed - end)))


def backoff(failures: int, cap: float) -> float:
    """0.5 s, 1 s, 2 s … capped at ``cap``: the worker loop's wait after its n-th failure."""
    return float(min(0.5 * 2 ** max(failures - 1, 0), cap))


def retry_delay(errors: int, retry_after: float | None = None) -> float:
    """2 s, 4 s, 8 s … capped at 60 s: the wait after the n-th failed poll in a row, and
    never shorter than the upstream asked (``retry_after``, see
    :func:`honoured_retry_after`)."""
    delay = float(min(2.0 * 2 ** max(errors - 1, 0), MAX_RETRY_DELAY))
    return delay if retry_after is None else max(delay, retry_after)


def resubmit_delay(rounds: int, retry_after: float | None = None) -> float:
    """The poll cadence (1.5 s, 2.25 s … capped at 10 s): the wait of a queued task after
    its n-th round in which every route failed (or its n-th failed step), and never
    shorter than the upstream asked."""
    delay = poll_delay(rounds, cap=MAX_POLL_DELAY)
    return delay if retry_after is None else max(delay, retry_after)


def gives_up(errors: int, window: float) -> bool:
    """True once ``errors`` failures in a row span ``window`` seconds of backing off.

    Each retry waits at least ``retry_delay`` after the previous failure (a ``Retry-After``
    only lengthens it), so when the n-th failure arrives, at least the sum of the first
    n-1 delays has passed since the first: a task is never failed for an upstream blip
    shorter than the window.
    """
    return sum(retry_delay(n) for n in range(1, errors)) >= window


def describe(exc: BaseException) -> str:
    """One line for a log or ``/readyz``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
