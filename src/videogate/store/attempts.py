"""Submit attempts: recorded before the upstream call, finished right after it."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.ids import new_id
from videogate.store.tables import Attempt, Task


class AttemptStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def begin(self, task_id: str, route: str, provider: str) -> Attempt:
        """Record that we are about to call the upstream (committed before the call)."""
        row = Attempt(
            id=new_id("att"),
            task_id=task_id,
            route=route,
            provider=provider,
            state="submitting",
            created_at=time.time(),
        )
        async with self._sessions.begin() as s:
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
    ) -> None:
        stmt = (
            update(Attempt)
            .where(Attempt.id == attempt_id)
            .values(
                state=state,
                upstream_id=upstream_id,
                error_code=error_code,
                error_message=error_message,
                http_status=http_status,
                finished_at=time.time(),
            )
        )
        async with self._sessions.begin() as s:
            await s.execute(stmt)

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
        stmt = select(Attempt.upstream_id).where(
            Attempt.route == route,
            Attempt.upstream_id.is_not(None),
            Attempt.created_at >= since - 3600,
        )
        async with self._sessions() as s:
            return {str(x) for x in (await s.execute(stmt)).scalars()}

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
