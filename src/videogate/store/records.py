"""What the store hands out and takes in: frozen, typed values, never ORM rows.

A caller reads a task as a :class:`TaskRecord`: what the task was when it was read. It
changes a task only through the store, a compare-and-set ``TaskStore.transition`` with a
:class:`TaskChange` naming the fields it sets (a misspelt field is a type error, not a
silently written column). ``dataclasses.replace`` gives an edited copy of a record (the
task as of an earlier status, the worker's own picture after a step).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One row of ``tasks`` (``store/tables.py``): a field per column, in the table's
    order (the store builds records positionally from rows)."""

    id: str
    key_id: str
    model: str
    status: str
    request: dict[str, Any]
    progress: int
    error_code: str | None
    error_message: str | None
    route: str | None
    provider: str | None
    upstream_id: str | None
    # Where the finished result is before we copy it (never shown to clients).
    upstream_result: dict[str, Any] | None
    video_key: str | None
    thumbnail_key: str | None
    last_frame_key: str | None
    media_deleted: bool
    width: int | None
    height: int | None
    seconds: float | None
    seed: int | None
    completion_tokens: int | None
    created_at: float
    updated_at: float
    started_at: float | None
    completed_at: float | None
    deleted_at: float | None
    deadline_at: float
    next_run_at: float | None
    lease_owner: str | None
    lease_until: float | None
    steps: int
    errors_in_a_row: int  # failed tries in a row at the current step (tables.py)
    idempotency_key: str | None
    request_hash: str | None
    callback_url: str | None
    # The X-Request-Id of the create: bound to the engine's log lines about the task.
    request_id: str | None
    currency: str
    hold_micros: int
    charged_micros: int | None
    refunded_micros: int | None
    billing_state: str
    price: dict[str, Any] | None

    def values(self) -> dict[str, Any]:
        """Field name → value. Shallow, unlike ``dataclasses.asdict``, which deep-copies
        the JSON fields for nothing on every write."""
        return {name: getattr(self, name) for name in TASK_FIELDS}


#: The record's field names: the ``tasks`` columns in their order.
TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TaskRecord))


def new_task(
    *,
    id: str,
    key_id: str,
    model: str,
    request: dict[str, Any],
    created_at: float,
    deadline_at: float,
    status: str = "queued",
    updated_at: float | None = None,
    next_run_at: float | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    completed_at: float | None = None,
    seed: int | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    callback_url: str | None = None,
    request_id: str | None = None,
    currency: str = "USD",
    hold_micros: int = 0,
    price: dict[str, Any] | None = None,
) -> TaskRecord:
    """A task about to be inserted: what a create decides, every other field as the
    table's default for a new row."""
    return TaskRecord(
        id=id,
        key_id=key_id,
        model=model,
        status=status,
        request=request,
        progress=0,
        error_code=error_code,
        error_message=error_message,
        route=None,
        provider=None,
        upstream_id=None,
        upstream_result=None,
        video_key=None,
        thumbnail_key=None,
        last_frame_key=None,
        media_deleted=False,
        width=None,
        height=None,
        seconds=None,
        seed=seed,
        completion_tokens=None,
        created_at=created_at,
        updated_at=created_at if updated_at is None else updated_at,
        started_at=None,
        completed_at=completed_at,
        deleted_at=None,
        deadline_at=deadline_at,
        next_run_at=next_run_at,
        lease_owner=None,
        lease_until=None,
        steps=0,
        errors_in_a_row=0,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        callback_url=callback_url,
        request_id=request_id,
        currency=currency,
        hold_micros=hold_micros,
        charged_micros=None,
        refunded_micros=None,
        billing_state="held",
        price=price,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """One row of ``api_keys``. ``webhook_secret`` is as stored: sealed (open it with
    ``KeyStore.webhook_secret``); a new key's may be given in clear, the store seals it."""

    id: str
    key_hash: str
    key_prefix: str
    webhook_secret: str
    created_at: float
    name: str = ""
    group: str = "default"
    # Money is kept in millionths of the currency unit; None: no balance kept (unlimited).
    balance_micros: int | None = None
    revoked_at: float | None = None
    # Per-key limits; None falls back to the group's, then to no limit.
    requests_per_minute: int | None = None
    max_unfinished_tasks: int | None = None


#: The record's field names (the ``ApiKey`` attributes they come from).
KEY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(KeyRecord))


class _Keep(enum.Enum):
    KEEP = "keep"


#: "Leave this field as it is" in a :class:`TaskChange` (None is a value: it clears).
KEEP = _Keep.KEEP


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskChange:
    """The fields one step of the engine sets on a task; the rest stay as they are.

    Only what a step may change is here: the identity, the request, the owner's fields
    and the money (settled by the store itself with a terminal status) are not.
    """

    status: str | _Keep = KEEP
    progress: int | _Keep = KEEP
    error_code: str | _Keep | None = KEEP
    error_message: str | _Keep | None = KEEP
    route: str | _Keep | None = KEEP
    provider: str | _Keep | None = KEEP
    upstream_id: str | _Keep | None = KEEP
    upstream_result: dict[str, Any] | _Keep | None = KEEP
    video_key: str | _Keep | None = KEEP
    thumbnail_key: str | _Keep | None = KEEP
    last_frame_key: str | _Keep | None = KEEP
    width: int | _Keep | None = KEEP
    height: int | _Keep | None = KEEP
    seconds: float | _Keep | None = KEEP
    seed: int | _Keep | None = KEEP
    completion_tokens: int | _Keep | None = KEEP
    updated_at: float | _Keep = KEEP
    started_at: float | _Keep | None = KEEP
    completed_at: float | _Keep | None = KEEP
    next_run_at: float | _Keep | None = KEEP
    errors_in_a_row: int | _Keep = KEEP

    def values(self) -> dict[str, Any]:
        """Column → new value, for the fields this change sets."""
        out: dict[str, Any] = {}
        for name in CHANGE_FIELDS:
            value = getattr(self, name)
            if value is not KEEP:
                out[name] = value
        return out

    def applied_to(self, task: TaskRecord) -> TaskRecord:
        """``task`` as this change leaves it (the caller's picture after the write)."""
        return replace(task, **self.values())


CHANGE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TaskChange))
