"""Read-only reports for the console and operators: usage per day, a key's ledger, the
overview of the whole service. Aggregates run in the database, so they stay fast with
many tasks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.tables import LedgerEntry, Task

DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class DailyUsage:
    day: int  # the UTC midnight starting the day, in epoch seconds
    model: str
    tasks: int
    succeeded: int
    failed: int
    seconds: float
    amount_micros: int


class ReportStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, dialect: str) -> None:
        self._sessions = sessions
        self._dialect = dialect

    def _bucket(self, column: Any, size: int) -> Any:
        """``floor(column / size)``: PostgreSQL rounds a cast, SQLite truncates it (and
        timestamps are positive, so truncating is flooring)."""
        if self._dialect == "postgresql":
            return cast(func.floor(column / size), Integer)
        return cast(column / size, Integer)

    async def daily_usage(self, *, key_id: str | None, since: float) -> list[DailyUsage]:
        """Per UTC day and model: tasks created, succeeded, failed, seconds, amount charged."""
        day = self._bucket(Task.created_at, DAY)
        stmt = (
            select(
                day,
                Task.model,
                func.count(),
                func.sum((Task.status == "succeeded").cast(Integer)),
                func.sum(Task.status.in_(("failed", "expired")).cast(Integer)),
                func.coalesce(func.sum(Task.seconds), 0.0),
                func.coalesce(func.sum(Task.charged_micros), 0),
            )
            .where(Task.created_at >= since)
            .group_by(day, Task.model)
            .order_by(day, Task.model)
        )
        if key_id is not None:
            stmt = stmt.where(Task.key_id == key_id)
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [
            DailyUsage(
                int(d) * DAY, str(m), int(n), int(ok or 0), int(bad or 0), float(sec), int(amt)
            )
            for d, m, n, ok, bad, sec, amt in rows
        ]

    async def ledger(
        self, key_id: str, *, limit: int, before: int | None = None
    ) -> list[LedgerEntry]:
        """A key's money movements, newest first; ``before`` is an entry id (a cursor)."""
        stmt = select(LedgerEntry).where(LedgerEntry.key_id == key_id)
        if before is not None:
            stmt = stmt.where(LedgerEntry.id < before)
        stmt = stmt.order_by(LedgerEntry.id.desc()).limit(limit)
        async with self._sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def status_counts(self) -> dict[str, int]:
        """Every task by status, now."""
        stmt = select(Task.status, func.count()).group_by(Task.status)
        async with self._sessions() as s:
            return {str(st): int(n) for st, n in (await s.execute(stmt)).all()}

    async def finished_per_hour(self, since: float) -> list[tuple[int, str, int]]:
        """(hour start, status, count) of the tasks that finished since ``since``."""
        hour = self._bucket(Task.completed_at, HOUR)
        stmt = (
            select(hour, Task.status, func.count())
            .where(Task.completed_at >= since, Task.completed_at.is_not(None))
            .group_by(hour, Task.status)
            .order_by(hour)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [(int(h) * HOUR, str(st), int(n)) for h, st, n in rows]

    async def completion_times(self, since: float, limit: int = 10_000) -> list[float]:
        """Seconds from create to success of the tasks that succeeded since ``since``
        (the latest ``limit`` of them), ascending."""
        took = (Task.completed_at - Task.created_at).label("took")
        stmt = (
            select(took)
            .where(
                Task.status == "succeeded",
                Task.completed_at.is_not(None),
                Task.completed_at >= since,
            )
            .order_by(Task.completed_at.desc())
            .limit(limit)
        )
        async with self._sessions() as s:
            values = [float(v) for v in (await s.execute(stmt)).scalars() if v is not None]
        return sorted(values)
