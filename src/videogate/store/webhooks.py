"""Webhook outbox queries: claim due ``task_events`` with a lease, record delivery attempts.

Events of one task are delivered in order: an event is not due while an earlier event of
the same task is still ``pending``. A claim sets ``lease_until`` (and counts the attempt);
the value doubles as the claim's token, so a deliverer whose lease lapsed (and whose event
another deliverer took over) cannot reschedule or give up the event behind its back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from videogate.store.tables import TaskEvent, WebhookAttempt

PENDING = "pending"
DELIVERED = "delivered"
#: Gave up: the retries ran out, or the URL was refused.
FAILED = "failed"
#: Not sent: the client already has this status (e.g. running → fetching, both in_progress).
SKIPPED = "skipped"


@dataclass(frozen=True)
class LoggedAttempt:
    """A row of ``videogate webhooks``: one attempt with its event."""

    attempt: WebhookAttempt
    event_status: str
    event_state: str


class WebhookStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    async def claim_due(self, now: float, limit: int, lease: float) -> list[TaskEvent]:
        """Take up to ``limit`` due pending events whose task has no earlier pending event
        and that nobody holds (or whose holder's lease lapsed); counts one attempt each."""
        earlier = aliased(TaskEvent)
        blocked = exists().where(
            earlier.task_id == TaskEvent.task_id,
            earlier.id < TaskEvent.id,
            earlier.state == PENDING,
        )
        due = (
            select(TaskEvent.id)
            .where(
                TaskEvent.state == PENDING,
                TaskEvent.next_attempt_at <= now,
                or_(TaskEvent.lease_until.is_(None), TaskEvent.lease_until < now),
                ~blocked,
            )
            .order_by(TaskEvent.next_attempt_at, TaskEvent.id)
            .limit(limit)
        )
        # A plain read first: an idle poll then takes no write lock (SQLite) at all.
        async with self._sessions() as s:
            if (await s.execute(due.limit(1))).first() is None:
                return []
        if self._dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(TaskEvent)
            .where(TaskEvent.id.in_(due.scalar_subquery()), TaskEvent.state == PENDING)
            .values(lease_until=now + lease, attempts=TaskEvent.attempts + 1)
            .returning(TaskEvent)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as s:
            rows = list((await s.execute(stmt)).scalars())
        return sorted(rows, key=lambda e: e.id)

    async def last_delivered_status(self, task_id: str, before_id: int) -> str | None:
        """The internal status of the task's latest delivered event before ``before_id``."""
        stmt = (
            select(TaskEvent.status)
            .where(
                TaskEvent.task_id == task_id,
                TaskEvent.id < before_id,
                TaskEvent.state == DELIVERED,
            )
            .order_by(TaskEvent.id.desc())
            .limit(1)
        )
        async with self._sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def finish(
        self,
        event_id: int,
        lease_token: float,
        *,
        state: str,
        next_attempt_at: float | None = None,
        attempt: WebhookAttempt | None = None,
    ) -> bool:
        """Record ``attempt`` and move the event on: ``delivered``, ``failed``, ``skipped``,
        or back to ``pending`` at ``next_attempt_at``. One transaction.

        ``delivered`` sticks even if the lease lapsed meanwhile (the receiver has it); any
        other outcome needs the claim's ``lease_token`` still to be the event's lease.
        False if the event was not changed (the attempt is logged all the same).
        """
        stmt = update(TaskEvent).where(TaskEvent.id == event_id, TaskEvent.state == PENDING)
        if state != DELIVERED:
            stmt = stmt.where(TaskEvent.lease_until == lease_token)
        stmt = stmt.values(
            state=state,
            lease_until=None,
            next_attempt_at=next_attempt_at if state == PENDING else None,
        )
        try:
            async with self._sessions.begin() as s:
                if attempt is not None:
                    s.add(attempt)
                changed = (await s.execute(stmt)).rowcount  # type: ignore[attr-defined]
        except IntegrityError:  # the task (and with it the event) was deleted meanwhile
            return False
        return bool(changed)

    async def events(self, task_id: str) -> list[TaskEvent]:
        """A task's events, oldest first."""
        stmt = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
        async with self._sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def attempts(self, *, task_id: str | None = None, limit: int = 50) -> list[LoggedAttempt]:
        """Delivery attempts, newest first, with their event's status and state."""
        stmt = select(WebhookAttempt, TaskEvent.status, TaskEvent.state).join(
            TaskEvent, TaskEvent.id == WebhookAttempt.event_id
        )
        if task_id is not None:
            stmt = stmt.where(WebhookAttempt.task_id == task_id)
        stmt = stmt.order_by(WebhookAttempt.created_at.desc(), WebhookAttempt.id.desc()).limit(
            limit
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [LoggedAttempt(a, status, state) for a, status, state in rows]

    async def resend(self, event_id: int, now: float) -> TaskEvent | None:
        """Queue a delivered or given-up event for delivery again, with a fresh retry
        budget; a pending one is made due now. None if there is no such event."""
        stmt = (
            update(TaskEvent)
            .where(TaskEvent.id == event_id)
            .values(state=PENDING, attempts=0, next_attempt_at=now, lease_until=None)
            .returning(TaskEvent)
        )
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).scalar_one_or_none()
