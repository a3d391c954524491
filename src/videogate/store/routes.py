"""Route health shared by every process: the circuit breaker's memory."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.fastwrite import SqliteTaskWriter
from videogate.store.tables import RouteState


def is_benched(state: RouteState | None, now: float) -> bool:
    """Whether the circuit breaker keeps the route out of rotation at ``now``: the one test
    the engine's route choice, ``videogate routes`` and the metrics gauge all use."""
    return state is not None and is_benched_until(state.benched_until, now)


def is_benched_until(benched_until: float | None, now: float) -> bool:
    """:func:`is_benched` from the end of the route's bench alone."""
    return benched_until is not None and benched_until > now


class RouteStateStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], writer: SqliteTaskWriter | None = None
    ) -> None:
        self._sessions = sessions
        self._writer = writer  # SQLite: one short statement per success (store/fastwrite.py)

    async def all(self) -> dict[str, RouteState]:
        async with self._sessions() as s:
            return {r.name: r for r in (await s.execute(select(RouteState))).scalars()}

    async def ensure(self, name: str) -> None:
        async with self._sessions() as s:
            if await s.get(RouteState, name) is not None:
                return
        # A separate write transaction: on SQLite a read transaction that turns into a
        # write fails at once with "database is locked" instead of waiting.
        try:
            async with self._sessions.begin() as s:
                s.add(RouteState(name=name, consecutive_failures=0))
        except IntegrityError:
            pass  # created concurrently

    async def success(self, name: str, now: float) -> None:
        if self._writer is not None and await self._writer.statement(
            "UPDATE route_state SET consecutive_failures = 0, benched_until = NULL,"
            " last_success_at = ? WHERE name = ? RETURNING name",
            (now, name),
        ):
            return
        await self.ensure(name)
        stmt = (
            update(RouteState)
            .where(RouteState.name == name)
            .values(consecutive_failures=0, benched_until=None, last_success_at=now)
        )
        async with self._sessions.begin() as s:
            await s.execute(stmt)

    async def failure(
        self,
        name: str,
        error: str,
        now: float,
        *,
        threshold: int,
        cooldown: float,
        retry_after: float | None = None,
    ) -> bool:
        """Count a failure; bench the route once ``threshold`` are in a row, and at least
        ``retry_after`` seconds when the upstream asked for that. True if benched."""
        await self.ensure(name)
        async with self._sessions.begin() as s:
            await s.execute(
                update(RouteState)
                .where(RouteState.name == name)
                .values(
                    consecutive_failures=RouteState.consecutive_failures + 1,
                    last_error=error[:1000],
                    last_failure_at=now,
                )
            )
            state = await s.get(RouteState, name)
            assert state is not None
            if state.consecutive_failures >= threshold:
                state.benched_until = now + cooldown
                # Half-open after the cool-down: one more failure benches it again.
                state.consecutive_failures = threshold - 1
                benched = True
            else:
                benched = False
            if retry_after:
                until = now + retry_after
                if state.benched_until is None or state.benched_until < until:
                    state.benched_until = until
                    benched = True
            return benched
