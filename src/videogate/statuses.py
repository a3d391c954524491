"""A task's statuses in one place: the vocabulary, the state chart, and each surface's words.

::

              create            claim+submit          upstream done        result stored
    (none) ──────────► queued ───────────────► running ────────────► fetching ─────────► succeeded
                         │  no capacity: stays     │ poll / callback  ▲        │
                         │  queued, retried later  │                  └────────┤ result on another
                         │                         │                           │ worker's disk
                         │                         ├──────────────► failed ◄───┘ (fetch error)
                         └── cancel ─► cancelled   └── deadline ──► expired

Inside videogate a task is always in one of :class:`TaskStatus`. The surfaces show other
words: ``/v1/videos`` (relay and OpenAI) says ``queued``/``in_progress``/``completed``/
``failed`` (cancelled and expired tasks read ``failed`` with that ``error.code``), and the
Ark surface says ``queued``/``running``/``succeeded``/``failed``/``cancelled``/``expired``.
Those mappings live here and nowhere else.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """A task's status as stored (a ``str``: compares equal to the stored text)."""

    QUEUED = "queued"
    RUNNING = "running"
    FETCHING = "fetching"  # the upstream finished; we are copying the result
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


#: Still moving: a worker will step it again.
UNFINISHED: tuple[str, ...] = tuple(
    s.value for s in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.FETCHING)
)
#: Final: never changes again.
TERMINAL: tuple[str, ...] = tuple(
    s.value
    for s in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.EXPIRED)
)

#: Our statuses in the ``/v1/videos`` words (a create answers ``submitted`` instead of queued).
RELAY_STATUS: dict[str, str] = {
    TaskStatus.QUEUED.value: "queued",
    TaskStatus.RUNNING.value: "in_progress",
    TaskStatus.FETCHING.value: "in_progress",
    TaskStatus.SUCCEEDED.value: "completed",
    TaskStatus.FAILED.value: "failed",
    TaskStatus.CANCELLED.value: "failed",
    TaskStatus.EXPIRED.value: "failed",
}

#: Our statuses in Ark's words; copying the result is still ``running`` to Ark.
ARK_STATUS: dict[str, str] = {
    TaskStatus.QUEUED.value: "queued",
    TaskStatus.RUNNING.value: "running",
    TaskStatus.FETCHING.value: "running",
    TaskStatus.SUCCEEDED.value: "succeeded",
    TaskStatus.FAILED.value: "failed",
    TaskStatus.CANCELLED.value: "cancelled",
    TaskStatus.EXPIRED.value: "expired",
}
#: Every status Ark documents, in its order.
ARK_STATUSES: tuple[str, ...] = (
    "queued", "running", "succeeded", "failed", "cancelled", "expired",
)  # fmt: skip
#: Ark's status → the statuses of ours it covers (for ``filter.status``).
ARK_STATUSES_OF: dict[str, tuple[str, ...]] = {
    ark: tuple(ours for ours, shown in ARK_STATUS.items() if shown == ark) for ark in ARK_STATUSES
}
