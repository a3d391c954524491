"""The engine's side of the task queries: claims, leases and compare-and-set transitions.

Every write by the engine is a compare-and-set on (status, lease owner), so a step that
lost its lease, or a task cancelled meanwhile, changes nothing. A change of status records
its money and its webhook event in the same transaction, so neither is lost or done twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.clock import Clock
from videogate.statuses import TERMINAL, UNFINISHED
from videogate.store import ledger
from videogate.store.due_hints import DueHints
from videogate.store.due_signal import notify_due
from videogate.store.fastwrite import SqliteTaskWriter
from videogate.store.records import TASK_FIELDS, TaskChange, TaskRecord
from videogate.store.tables import Task, TaskEvent

_TASK_TABLE = Task.__table__
#: Every column of ``tasks``, in the record's field order (attribute = column name here).
TASK_COLUMNS = tuple(_TASK_TABLE.c[name] for name in TASK_FIELDS)
_ANY = object()
# The statements of ``TaskLeases.adopt`` (named parameters: sqlite3 and text() alike).
_ROUTE_SUCCESS = (
    "INSERT INTO route_state (name, consecutive_failures, last_success_at)"
    " VALUES (:route, 0, :now) ON CONFLICT (name) DO UPDATE"
    " SET consecutive_failures = 0, benched_until = NULL, last_success_at = :now"
)
_ORPHANED_SUBMIT = (
    "UPDATE tasks SET route = :route, upstream_id = :upstream_id, next_run_at = :now"
    " WHERE id = :task AND upstream_id IS NULL AND status IN ("
    + ", ".join(f"'{status}'" for status in sorted(TERMINAL))
    + ")"
)
_ATTEMPT_SUBMITTED = (
    "UPDATE attempts SET state = 'submitted', upstream_id = :upstream_id, finished_at = :now"
    " WHERE id = :attempt AND state = 'submitting'"
)


def task_record(row: Row[Any] | Sequence[Any]) -> TaskRecord:
    """The record of a row selected as :data:`TASK_COLUMNS`."""
    return TaskRecord(*row)


async def record_status_change(
    s: AsyncSession,
    task_id: str,
    status: str,
    row: Any,
    *,
    charged: int | None,
    now: float,
) -> None:
    """Money and webhook bookkeeping of a status change, in the change's transaction.
    ``row`` is the task's (key_id, hold_micros, currency, callback_url)."""
    key_id, held, currency, callback_url = row
    if status in TERMINAL:
        values = await ledger.settle(
            s,
            key_id=key_id,
            task_id=task_id,
            held=held or 0,
            charged=charged,
            currency=currency or "USD",
            now=now,
        )
        await s.execute(update(Task).where(Task.id == task_id).values(**values))
    if callback_url:
        s.add(
            TaskEvent(
                task_id=task_id,
                status=status,
                created_at=now,
                state="pending",
                attempts=0,
                next_attempt_at=now,
            )
        )


class TaskLeases:
    """Claims and holds tasks for one worker at a time, and moves them on."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, dialect: str, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._dialect = dialect
        self._clock = clock
        # On a SQLite file: the in-loop writer (``fastwrite``), set by ``TaskStore``.
        self._writer: SqliteTaskWriter | None = None
        # Its callback hints, written in a batch after the callback's answer (``due_hints``).
        self._hints: DueHints | None = None

    async def claim_due(self, owner: str, limit: int, now: float, lease: float) -> list[TaskRecord]:
        """Take up to ``limit`` due tasks that nobody holds (or whose holder's lease lapsed)."""
        if self._writer is not None:
            return await self._writer.claim(owner, limit, now, lease)
        due = (
            select(Task.id)
            .where(Task.next_run_at <= now, or_(Task.lease_until.is_(None), Task.lease_until < now))
            .order_by(Task.next_run_at)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(Task)
            .where(Task.id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_until=now + lease, steps=Task.steps + 1)
            .returning(*TASK_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as s:
            return [task_record(row) for row in await s.execute(stmt)]

    async def renew(self, owner: str, task_ids: Sequence[str], until: float) -> int:
        if not task_ids:
            return 0
        stmt = (
            update(Task)
            .where(Task.id.in_(list(task_ids)), Task.lease_owner == owner)
            .values(lease_until=until)
        )
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).rowcount  # type: ignore[attr-defined,no-any-return]

    async def transition(
        self,
        task_id: str,
        owner: str,
        expected_status: str,
        change: TaskChange,
        *,
        release: bool = True,
        charged_micros: int | None = None,
        if_next_run_at: float | object | None = _ANY,
    ) -> bool:
        """Apply ``change`` if the task is still ``expected_status`` and held by ``owner``
        (and, with ``if_next_run_at``, only if nobody rescheduled it meanwhile); with
        ``release`` the lease is given back in the same write.

        A change of ``status`` also records, in the same transaction, its money (a terminal
        status settles the hold: ``charged_micros`` on success, a full refund otherwise)
        and its webhook event, so neither can be lost or done twice.
        """
        values = change.values()
        if release:
            values["lease_owner"] = None
            values["lease_until"] = None
        if self._writer is not None:
            # SQLite: the update, its money and its outbox row run to their commit on the
            # in-loop connection.
            return await self._writer.update_held(
                task_id,
                owner,
                expected_status,
                values,
                if_next_run_at,
                if_next_run_at is not _ANY,
                float(values.get("updated_at") or self._clock.now()),
                (charged_micros or 0) if values.get("status") == "succeeded" else None,
            )
        async with self._sessions.begin() as s:
            return await self._transition_in(
                s, task_id, owner, expected_status, values, charged_micros, if_next_run_at
            )

    async def _transition_in(
        self,
        s: AsyncSession,
        task_id: str,
        owner: str,
        expected_status: str,
        values: dict[str, Any],
        charged_micros: int | None,
        if_next_run_at: float | object | None = _ANY,
    ) -> bool:
        """:meth:`transition` (``values`` with the lease's) in the session's transaction."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.lease_owner == owner, Task.status == expected_status)
            .values(**values)
            .returning(Task.key_id, Task.hold_micros, Task.currency, Task.callback_url)
        )
        if if_next_run_at is not _ANY:  # only if nobody rescheduled it meanwhile
            stmt = stmt.where(Task.next_run_at == if_next_run_at)
        row = (await s.execute(stmt)).first()
        if row is None:
            return False
        new_status = values.get("status")
        if new_status is not None and new_status != expected_status:
            charged = (charged_micros or 0) if new_status == "succeeded" else None
            await record_status_change(
                s,
                task_id,
                new_status,
                row,
                charged=charged,
                now=float(values.get("updated_at") or self._clock.now()),
            )
        return True

    async def adopt(
        self,
        task_id: str,
        owner: str,
        change: TaskChange,
        *,
        route: str,
        upstream_id: str,
        attempt_id: str | None,
        now: float,
    ) -> bool:
        """Hand a queued task its upstream job: ``queued`` → ``change`` (running on
        ``route`` as ``upstream_id``), in one transaction with the route's success (its
        breaker starts over) and attempt ``attempt_id`` marked ``submitted``. A task no
        longer queued under ``owner`` (cancelled meanwhile) keeps the job's id for a
        worker to stop it upstream, or it would run, and be billed, with nobody watching.
        True when the task moved."""
        values = change.values() | {"lease_owner": None, "lease_until": None}
        params = {"task": task_id, "route": route, "upstream_id": upstream_id, "now": now}
        params["attempt"] = attempt_id
        if self._writer is not None:
            writer = self._writer

            def write(conn: sqlite3.Connection) -> bool:
                conn.execute(_ROUTE_SUCCESS, params)
                moved = writer.change_held(conn, task_id, owner, "queued", values, now)
                if not moved:
                    conn.execute(_ORPHANED_SUBMIT, params)
                if attempt_id is not None:
                    conn.execute(_ATTEMPT_SUBMITTED, params)
                return moved

            return await writer.transaction(write)
        async with self._sessions.begin() as s:
            # The route's row first, as the reservation locks it (PostgreSQL row locks
            # taken in one order everywhere cannot deadlock).
            await s.execute(text(_ROUTE_SUCCESS), params)
            moved = await self._transition_in(s, task_id, owner, "queued", values, None)
            if not moved:
                await s.execute(text(_ORPHANED_SUBMIT), params)
            if attempt_id is not None:
                await s.execute(text(_ATTEMPT_SUBMITTED), params)
            return moved

    async def orphaned_submit(self, task_id: str, route: str, upstream_id: str, now: float) -> None:
        """Record the upstream job of a task that ended (cancelled, expired) mid-submit, so a
        worker stops it or follows it to its end (worker/aftercare.py)."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.status.in_(TERMINAL), Task.upstream_id.is_(None))
            .values(route=route, upstream_id=upstream_id, next_run_at=now)
        )
        async with self._sessions.begin() as s:
            await s.execute(stmt)

    async def poll_now(self, task_id: str, then: Callable[[], None] | None = None) -> None:
        """Make a running task due at once (an upstream callback said it changed), then
        ``then()``. On SQLite this only queues the write and returns (``due_hints``: it
        never waits for the write lock); on PostgreSQL it is written and ``NOTIFY``'d."""
        if self._hints is not None:
            self._hints.add(task_id, then)
            return
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.status == "running")
            # 0, not now: due before every regular poll, so it jumps the queue.
            .values(next_run_at=0.0)
        )
        async with self._sessions.begin() as s:
            await s.execute(stmt)
            if self._dialect == "postgresql":  # wake a worker in whichever process
                await s.execute(notify_due(task_id))
        if then is not None:
            then()

    async def hints_written(self) -> None:
        """Returns once every callback hint queued so far is written (SQLite; at once
        elsewhere): for an orderly stop, and for tests."""
        if self._hints is not None:
            await self._hints.drain()

    async def make_due(self, task_id: str, now: float) -> None:
        """Step an unfinished task nobody holds at once (a stale attempt to resolve)."""
        stmt = (
            update(Task)
            .where(
                Task.id == task_id,
                Task.status.in_(UNFINISHED),
                or_(Task.lease_until.is_(None), Task.lease_until < now),
                or_(Task.next_run_at.is_(None), Task.next_run_at > now),
            )
            .values(next_run_at=now)
        )
        async with self._sessions.begin() as s:
            await s.execute(stmt)

    async def set_progress(self, task_id: str, owner: str, progress: int, now: float) -> bool:
        """Record progress; False when the task is no longer running under ``owner``
        (cancelled, or taken over), so the work can stop."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.lease_owner == owner, Task.status == "running")
            .values(progress=progress, updated_at=now)
        )
        async with self._sessions.begin() as s:
            return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def release(
        self,
        task_id: str,
        owner: str,
        next_run_at: float | None = None,
        *,
        keep_schedule: bool = False,
    ) -> None:
        """Give the task back without changing its state (e.g. after a retryable error);
        ``keep_schedule`` leaves ``next_run_at`` as it is."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if not keep_schedule:
            values["next_run_at"] = next_run_at
        stmt = update(Task).where(Task.id == task_id, Task.lease_owner == owner).values(**values)
        async with self._sessions.begin() as s:
            await s.execute(stmt)
