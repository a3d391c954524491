"""How the engine waits after errors: bounded exponential backoff, and the poll-failure
window after which a running task is given up (docs/reliability.md)."""

from __future__ import annotations

from videogate.store.db import is_infrastructure

__all__ = ["backoff", "describe", "gives_up", "is_infrastructure", "poll_delay", "retry_delay"]

INFRA_RETRY_SECONDS = 2.0  # a step that hit a database/storage error is tried again then
MAX_RETRY_DELAY = 60.0  # the longest wait between two polls of a failing upstream
MAX_POLL_DELAY = 10.0  # the longest wait between two polls of a healthy upstream


def poll_delay(polls: int) -> float:
    """Quick at first, slower later: 1 s, 1.5 s, 2.25 s … capped at 10 s.

    Upstream callbacks, when configured, cut the wait short (see ``worker/callbacks.py``).
    """
    return float(min(1.0 * 1.5 ** max(polls, 0), MAX_POLL_DELAY))


def backoff(failures: int, cap: float) -> float:
    """0.5 s, 1 s, 2 s … capped at ``cap``: the worker loop's wait after its n-th failure."""
    return float(min(0.5 * 2 ** max(failures - 1, 0), cap))


def retry_delay(errors: int) -> float:
    """2 s, 4 s, 8 s … capped at 60 s: the wait after the n-th failed poll in a row."""
    return float(min(2.0 * 2 ** max(errors - 1, 0), MAX_RETRY_DELAY))


def gives_up(errors: int, window: float) -> bool:
    """True once ``errors`` failures in a row span ``window`` seconds of backing off.

    Each retry waits at least ``retry_delay`` after the previous failure, so when the n-th
    failure arrives, at least the sum of the first n-1 delays has passed since the first:
    a task is never failed for an upstream blip shorter than the window.
    """
    return sum(retry_delay(n) for n in range(1, errors)) >= window


def describe(exc: BaseException) -> str:
    """One line for a log or ``/readyz``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
