"""Submit attempts: recorded before the upstream call, finished right after it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.clock import Clock
from videogate.ids import new_id
from videogate.store.fastwrite import SqliteTaskWriter
from videogate.store.rows import detached
from videogate.store.submit_view import SubmitView, view_from_rows, view_params, view_sql
from videogate.store.tables import Attempt, Task

_ATTEMPT_COLUMNS = [c.name for c in Attempt.__table__.columns]
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(_ATTEMPT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _ATTEMPT_COLUMNS)})"
)

_LOCK_ROUTE = (
    "INSERT INTO route_state (name, consecutive_failures) VALUES (:name, 0)"
    " ON CONFLICT (name) DO UPDATE SET name = excluded.name"
)


class AttemptStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        writer: SqliteTaskWriter | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        # SQLite: the submit's writes run to their commit on the loop (store/fastwrite.py).
        self._writer = writer

    async def reserve(
        self,
        task_id: str,
        route: str,
        provider: str,
        max_in_flight: int,
        *,
        owner: str | None = None,
        now: float | None = None,
    ) -> Attempt | None:
        """Record that we are about to call the upstream (committed before the call), if
        the route has room; None when it is at ``max_in_flight``, or when ``owner`` no
        longer holds the queued task (its lease lapsed and another worker claimed it).

        The count and the insert are one transaction that first locks the route's
        ``route_state`` row (made if missing; on SQLite the database's write lock), so
        concurrent workers (any process) cannot both take the last slot. The holder check
        is in the same transaction: a worker whose lease lapsed (a database outage
        stopped its renewals) must not send a create while the task's new holder, seeing
        no attempt, sends its own — one task, two paid jobs. ``now`` is the engine's clock
        (the store's clock when not given).
        """
        created_at = self._clock.now() if now is None else now
        if self._writer is not None:
            # BEGIN IMMEDIATE holds SQLite's one write lock: every process waits for it.
            return await self._writer.transaction(
                lambda conn: _reserve(
                    conn, task_id, route, provider, max_in_flight, owner, created_at
                )
            )
        async with self._sessions.begin() as s:
            # A write first: on PostgreSQL a row lock, on SQLite the database write lock.
            # The route's row is made if missing, so there is always one to lock.
            await s.execute(text(_LOCK_ROUTE), {"name": route})
            if owner is not None:
                # Locks the task row too (PostgreSQL): a claim waits for, or skips, it.
                held = await s.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.lease_owner == owner, Task.status == "queued")
                    .values(lease_owner=owner)
                )
                if held.rowcount == 0:  # type: ignore[attr-defined]
                    return None
            running = await s.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.route == route, Task.status.in_(("running", "fetching")))
            )
            submitting = await s.scalar(
                select(func.count())
                .select_from(Attempt)
                .where(Attempt.route == route, Attempt.state == "submitting")
            )
            if (running or 0) + (submitting or 0) >= max_in_flight:
                return None
            row = Attempt(
                id=new_id("att"),
                task_id=task_id,
                route=route,
                provider=provider,
                state="submitting",
                created_at=created_at,
            )
            s.add(row)
        return row

    async def finish(
        self,
        attempt_id: str,
        state: str,
        *,
        upstream_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        http_status: int | None = None,
    ) -> bool:
        """Record the outcome of an attempt that is still ``submitting``; False (nothing
        changed) when someone else resolved it first."""
        if self._writer is not None and error_code is None and error_message is None:
            done = await self._writer.statement(
                "UPDATE attempts SET state = ?, upstream_id = ?, http_status = ?,"
                " finished_at = ? WHERE id = ? AND state = 'submitting' RETURNING id",
                (state, upstream_id, http_status, self._clock.now(), attempt_id),
            )
            return bool(done)
        stmt = (
            update(Attempt)
            .where(Attempt.id == attempt_id, Attempt.state == "submitting")
            .values(
                state=state,
                upstream_id=upstream_id,
                error_code=error_code,
                error_message=error_message,
                http_status=http_status,
                finished_at=self._clock.now(),
            )
        )
        async with self._sessions.begin() as s:
            return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def submit_view(self, task_id: str, key_id: str, routes: Sequence[str]) -> SubmitView:
        """What a submit of the task reads before choosing among ``routes``, in one
        statement (``store/submit_view.py``); SQLite: on the in-loop connection."""
        sql, params = view_sql(len(routes)), view_params(task_id, key_id, routes)
        if self._writer is not None:
            return view_from_rows(await self._writer.statement(sql, params))
        async with self._sessions() as s:
            return view_from_rows((await s.execute(text(sql), params)).all())

    async def stale(self, older_than: float, now: float, limit: int = 100) -> list[Attempt]:
        """Attempts still ``submitting`` since before ``older_than`` whose task nobody
        holds: their worker died (or the task ended) before the outcome was recorded."""
        stmt = (
            select(Attempt)
            .join(Task, Task.id == Attempt.task_id)
            .where(
                Attempt.state == "submitting",
                Attempt.created_at < older_than,
                or_(Task.lease_until.is_(None), Task.lease_until < now),
            )
            .order_by(Attempt.created_at)
            .limit(limit)
        )
        async with self._sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def for_task(self, task_id: str) -> list[Attempt]:
        stmt = select(Attempt).where(Attempt.task_id == task_id).order_by(Attempt.created_at)
        async with self._sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def pending(self, task_id: str) -> Attempt | None:
        """An attempt whose outcome was never recorded (the worker died mid-submit)."""
        stmt = select(Attempt).where(Attempt.task_id == task_id, Attempt.state == "submitting")
        async with self._sessions() as s:
            return (await s.execute(stmt)).scalars().first()

    async def known_upstream_ids(self, route: str, since: float) -> set[str]:
        """Upstream ids on ``route`` that already belong to a task."""
        by_attempt = select(Attempt.upstream_id).where(
            Attempt.route == route,
            Attempt.upstream_id.is_not(None),
            Attempt.created_at >= since - 3600,
        )
        by_task = select(Task.upstream_id).where(
            Task.route == route,
            Task.upstream_id.is_not(None),
            Task.created_at >= since - 3600,
        )
        async with self._sessions() as s:
            found = set((await s.execute(by_attempt)).scalars())
            found |= set((await s.execute(by_task)).scalars())
        return {str(x) for x in found if x}

    async def in_flight(self, routes: list[str]) -> dict[str, int]:
        """Unfinished upstream tasks per route (running or being fetched)."""
        if not routes:
            return {}
        stmt = (
            select(Task.route, func.count())
            .where(Task.route.in_(routes), Task.status.in_(("running", "fetching")))
            .group_by(Task.route)
        )
        async with self._sessions() as s:
            return {str(r): int(n) for r, n in (await s.execute(stmt)).all()}


def _reserve(
    conn: sqlite3.Connection,
    task_id: str,
    route: str,
    provider: str,
    max_in_flight: int,
    owner: str | None,
    created_at: float,
) -> Attempt | None:
    """``AttemptStore.reserve`` inside a ``BEGIN IMMEDIATE`` of the in-loop connection."""
    if owner is not None:
        held = conn.execute(
            "UPDATE tasks SET lease_owner = lease_owner"
            " WHERE id = ? AND lease_owner = ? AND status = 'queued'",
            (task_id, owner),
        )
        if held.rowcount == 0:
            return None
    (running,) = conn.execute(
        "SELECT count(*) FROM tasks WHERE route = ? AND status IN ('running', 'fetching')",
        (route,),
    ).fetchone()
    (submitting,) = conn.execute(
        "SELECT count(*) FROM attempts WHERE route = ? AND state = 'submitting'", (route,)
    ).fetchone()
    if running + submitting >= max_in_flight:
        return None
    values: dict[str, Any] = dict.fromkeys(_ATTEMPT_COLUMNS)
    values.update(
        id=new_id("att"),
        task_id=task_id,
        route=route,
        provider=provider,
        state="submitting",
        created_at=created_at,
    )
    conn.execute(_INSERT_ATTEMPT, [values[c] for c in _ATTEMPT_COLUMNS])
    return detached(Attempt, values)
