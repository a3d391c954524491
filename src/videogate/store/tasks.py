"""Task queries: a task's creation, the reads, and what its owner does to it. The engine's
side (claims, leases, compare-and-set transitions) is ``leases.py``. Every query hands out
:class:`~videogate.store.records.TaskRecord` values, never ORM rows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import case, delete, event, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from videogate.clock import Clock, SystemClock
from videogate.errors import AlreadyExists, VideogateError
from videogate.statuses import TERMINAL, UNFINISHED
from videogate.store import ledger
from videogate.store.db import retry_if_disconnected
from videogate.store.due_hints import DueHints
from videogate.store.due_signal import notify_due
from videogate.store.fastread import SqliteTaskReader
from videogate.store.fastwrite import SqliteTaskWriter
from videogate.store.leases import TASK_COLUMNS, TaskLeases, record_status_change, task_record
from videogate.store.pg_fast import PgHotPool, PostgresTaskReader
from videogate.store.pg_fastwrite import PgTaskWriter
from videogate.store.records import TaskRecord
from videogate.store.tables import Task, TaskEvent

_TASK_TABLE = Task.__table__


_TASK_ID = re.compile(r"[a-z]+_[0-9a-z]{20,36}")


def search_condition(text: str) -> Any:
    """The task with this id, or the tasks whose prompt contains ``text`` (ASCII letters in
    any case on SQLite, every letter on PostgreSQL)."""
    if _TASK_ID.fullmatch(text):  # an id: the primary key finds it, no scan of prompts
        return Task.id == text
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    prompt = Task.request["prompt"].as_string()
    return prompt.ilike(f"%{escaped}%", escape="\\")


class UnfinishedCapReached(VideogateError):
    """A create was refused: the key already has ``unfinished`` ≥ ``cap`` unfinished tasks."""

    code = "rate_limited"

    def __init__(self, cap: int, unfinished: int) -> None:
        super().__init__(f"at most {cap} unfinished tasks for this key ({unfinished} now)")
        self.cap = cap
        self.unfinished = unfinished


def _count_unfinished(key_id: str) -> Any:
    return (
        select(func.count())
        .select_from(Task)
        .where(Task.key_id == key_id, Task.status.in_(UNFINISHED))
    )


def _outbox_values(task: TaskRecord) -> dict[str, Any]:
    """The webhook outbox row of a task's first status (attribute name → value)."""
    return {
        "task_id": task.id,
        "status": task.status,
        "created_at": task.created_at,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": task.created_at,
    }


class TaskStore(TaskLeases):
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        clock: Clock | None = None,
        hot: PgHotPool | None = None,
    ) -> None:
        """``hot``: on PostgreSQL, the connections of the poll's read (``pg_fast.py``)."""
        super().__init__(sessions, dialect=dialect, clock=clock or SystemClock())
        self._engine = engine
        self._fast: SqliteTaskReader | None = None
        self._writer: SqliteTaskWriter | None = None
        self._pg_fast = PostgresTaskReader(hot) if hot is not None else None
        self._pg_writer = PgTaskWriter(hot) if hot is not None else None
        database = engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            self._fast = SqliteTaskReader(database)
            self._writer = SqliteTaskWriter(database)
            self._hints = DueHints(self._writer)
            # Disposing the engine (reconnect everything) applies to this connection too.
            event.listen(engine.sync_engine, "engine_disposed", lambda _: self._writer_reset())

    @property
    def writer(self) -> SqliteTaskWriter | None:
        """The in-loop SQLite connection for short writes (None on PostgreSQL, in memory)."""
        return self._writer

    def _writer_reset(self) -> None:
        if self._writer is not None:
            self._writer.reset()

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if self._writer is not None:
            self._writer.close()

    async def insert(
        self, task: TaskRecord, *, max_unfinished: int | None = None
    ) -> TaskRecord | None:
        """Insert a new task and take its hold (``task.hold_micros``) from the key's
        balance, in one transaction; the task as stored (a task created failed is settled
        at once), or None, with nothing written, if the balance is short.

        With ``max_unfinished``, the same transaction counts the key's unfinished tasks
        first (after locking the key's row) and raises :class:`UnfinishedCapReached` when
        there is no room: exact however many creates race, in however many processes.
        :class:`~videogate.errors.AlreadyExists` when the key has a task with this
        idempotency key already (a concurrent create won).
        """
        try:
            return await self._insert(task, max_unfinished)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"task {task.id} or its idempotency key is already stored", param="id"
            ) from exc

    async def _insert(self, task: TaskRecord, max_unfinished: int | None) -> TaskRecord | None:
        event = _outbox_values(task) if task.callback_url else None
        writer = self._writer or self._pg_writer
        if writer is not None and task.status not in TERMINAL:
            outcome = await writer.insert(
                task.values(),
                ledger.hold_values(task),
                event,
                max_unfinished,
            )
            if outcome is not None and outcome >= 0:
                raise UnfinishedCapReached(max_unfinished or 0, outcome)
            return task if outcome is None else None
        async with self._sessions.begin() as s:
            if not await ledger.hold(
                s,
                key_id=task.key_id,
                task_id=task.id,
                micros=task.hold_micros or 0,
                currency=task.currency or "USD",
                now=task.created_at,
            ):
                return None
            if max_unfinished is not None:
                # The hold's UPDATE locked the key's row: concurrent creates of this key
                # wait here, so the count below cannot go stale before the insert.
                unfinished = await s.scalar(_count_unfinished(task.key_id))
                if (unfinished or 0) >= max_unfinished:
                    raise UnfinishedCapReached(max_unfinished, int(unfinished or 0))
            tracked = Task(**task.values())
            s.add(tracked)
            if self._dialect == "postgresql" and task.status not in TERMINAL:
                await s.execute(notify_due(task.id))
            if event is not None:
                s.add(TaskEvent(**event))
            if task.status in TERMINAL:  # created failed (a reference was unreachable)
                await s.flush()
                task_values = await ledger.settle(
                    s,
                    key_id=task.key_id,
                    task_id=task.id,
                    held=task.hold_micros or 0,
                    charged=None,
                    currency=task.currency or "USD",
                    now=task.created_at,
                )
                for name, value in task_values.items():
                    setattr(tracked, name, value)
                task = replace(task, **task_values)
        return task

    async def in_flight_by_status(self) -> dict[str, int]:
        """Tasks not yet finished, by status (for the metrics)."""
        stmt = (
            select(Task.status, func.count())
            # Unfinished tasks are the scheduled ones: the ix_tasks_due index finds them.
            .where(Task.next_run_at.is_not(None))
            .where(Task.status.in_(("queued", "running", "fetching")))
            .group_by(Task.status)
        )
        async with self._sessions() as s:
            return {str(k): int(n) for k, n in (await s.execute(stmt)).all()}

    async def get(self, task_id: str, key_id: str | None = None) -> TaskRecord | None:
        """The task, or None; with ``key_id`` only if that key owns it (and has not deleted it).

        This is the poll's hot path: no ORM session, and the record built straight from
        the row (on SQLite, see ``fastread``; on PostgreSQL, ``pg_fast``).
        """
        if self._fast is not None:
            return self._fast.get(task_id, key_id)
        if self._pg_fast is not None:
            return await self._pg_fast.get(task_id, key_id)
        stmt = select(*TASK_COLUMNS).where(_TASK_TABLE.c.id == task_id)
        if key_id is not None:
            stmt = stmt.where(_TASK_TABLE.c.key_id == key_id, _TASK_TABLE.c.deleted_at.is_(None))

        async def read() -> Any:
            async with self._engine.connect() as conn:
                return (await conn.execute(stmt)).first()

        row = await retry_if_disconnected(read)
        return None if row is None else task_record(row)

    async def by_idempotency(self, key_id: str, idempotency_key: str) -> TaskRecord | None:
        stmt = select(*TASK_COLUMNS).where(
            Task.key_id == key_id, Task.idempotency_key == idempotency_key
        )
        async with self._sessions() as s:
            row = (await s.execute(stmt)).one_or_none()
        return None if row is None else task_record(row)

    async def page(
        self,
        key_id: str | None,
        *,
        limit: int,
        after: str | None = None,
        order: str = "desc",
        statuses: Sequence[str] | None = None,
        model: str | None = None,
        ids: Sequence[str] | None = None,
        offset: int = 0,
        search: str | None = None,
    ) -> list[TaskRecord]:
        """Tasks newest first (``desc``) or oldest first; ``after`` is a cursor task id;
        ``search`` matches a task id exactly or a part of the prompt (ASCII letters in any
        case).

        Deleted tasks are left out. A cursor that no longer exists at all gives an empty
        page, never page one again (the caller checks cursors before paging).
        """
        stmt = select(*TASK_COLUMNS).where(Task.deleted_at.is_(None))
        if search:
            stmt = stmt.where(search_condition(search))
        if key_id is not None:
            stmt = stmt.where(Task.key_id == key_id)
        if statuses:
            stmt = stmt.where(Task.status.in_(list(statuses)))
        if model:
            stmt = stmt.where(Task.model == model)
        if ids:
            stmt = stmt.where(Task.id.in_(list(ids)))
        async with self._sessions() as s:
            if after:
                cursor = (
                    await s.execute(select(Task.created_at, Task.id).where(Task.id == after))
                ).one_or_none()
                if cursor is None:
                    return []
                created, cid = cursor
                # A row-value comparison: both databases walk the (key, created, id)
                # index from the cursor instead of filtering from the top.
                position = tuple_(Task.created_at, Task.id)
                if order == "desc":
                    stmt = stmt.where(position < tuple_(created, cid))
                else:
                    stmt = stmt.where(position > tuple_(created, cid))
            if order == "desc":
                stmt = stmt.order_by(Task.created_at.desc(), Task.id.desc())
            else:
                stmt = stmt.order_by(Task.created_at.asc(), Task.id.asc())
            stmt = stmt.offset(offset).limit(limit)
            return [task_record(row) for row in await s.execute(stmt)]

    async def count(
        self,
        key_id: str | None,
        *,
        statuses: Sequence[str] | None = None,
        model: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        stmt = select(func.count()).select_from(Task).where(Task.deleted_at.is_(None))
        if key_id is not None:
            stmt = stmt.where(Task.key_id == key_id)
        if statuses:
            stmt = stmt.where(Task.status.in_(list(statuses)))
        if model:
            stmt = stmt.where(Task.model == model)
        if ids:
            stmt = stmt.where(Task.id.in_(list(ids)))
        async with self._sessions() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def count_unfinished(self, key_id: str) -> int:
        """The key's tasks that are queued, running or fetching (its concurrency)."""
        async with self._sessions() as s:
            return int((await s.execute(_count_unfinished(key_id))).scalar_one())

    async def cancel(
        self, task_id: str, key_id: str, now: float, *, only_statuses: Sequence[str] = UNFINISHED
    ) -> bool:
        """Cancel an unfinished task and refund its hold; False if it was already finished
        (or not this key's)."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.key_id == key_id, Task.status.in_(list(only_statuses)))
            .returning(Task.key_id, Task.hold_micros, Task.currency, Task.callback_url)
            .values(
                status="cancelled",
                error_code="cancelled",
                error_message="the task was cancelled by its owner",
                updated_at=now,
                completed_at=now,
                # a worker tells the upstream, if one has the job
                next_run_at=case((Task.upstream_id.is_not(None), now), else_=None),
            )
        )
        async with self._sessions.begin() as s:
            row = (await s.execute(stmt)).first()
            if row is None:
                return False
            await record_status_change(s, task_id, "cancelled", row, charged=None, now=now)
            return True

    async def mark_media_deleted(self, task_id: str, now: float) -> None:
        stmt = update(Task).where(Task.id == task_id).values(media_deleted=True, updated_at=now)
        async with self._sessions.begin() as s:
            await s.execute(stmt)

    async def mark_deleted(self, task_id: str, now: float) -> bool:
        """Hide the task from its owner for good (OpenAI's DELETE); False if already hidden."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, Task.deleted_at.is_(None))
            .values(deleted_at=now, media_deleted=True, updated_at=now)
        )
        async with self._sessions.begin() as s:
            return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def delete(self, task_id: str) -> None:
        async with self._sessions.begin() as s:
            await s.execute(delete(Task).where(Task.id == task_id))

    def hinted_due(self) -> bool:
        """On a SQLite file: whether a task made due by a callback waits unclaimed (a
        read on this process's reader, no write). Elsewhere False: PostgreSQL's callbacks
        wake the worker through ``NOTIFY``, in-process ones through its wake-up event."""
        return self._fast is not None and self._fast.hinted_due(self._clock.now())

    def next_due_at(self) -> float | None:
        """On a SQLite file: when the next scheduled step is due (a read on this
        process's reader); None when none is, and elsewhere (a worker then looks every
        ``worker_poll_interval``)."""
        return None if self._fast is None else self._fast.next_due_at(self._clock.now())

    async def committed_elsewhere(self, interval: float = 0.02) -> None:
        """Returns once another connection commits to the SQLite file (a create or a
        callback in an API process, say): the cross-process wake-up SQLite has, at the
        cost of reading a counter in shared memory every ``interval``. On PostgreSQL (its
        NOTIFY does this) and in memory it never returns."""
        if self._fast is None:
            await asyncio.Event().wait()
            return
        seen = self._fast.data_version()
        while self._fast.data_version() == seen:
            await self._clock.sleep(interval)
