"""A new task's write transaction on SQLite: a plain ``sqlite3`` connection on the loop.

Through the async driver each statement of a create is a hand-off to aiosqlite's thread
and back (~0.2 ms each, more under load); here the whole transaction (take the hold,
count the key's unfinished tasks, insert the task, its ledger row and webhook outbox row)
runs in-thread in well under a millisecond.

Creates are **group-committed**: every create that reaches :meth:`SqliteTaskWriter.insert`
in one turn of the loop joins one transaction, each inside its own savepoint (so one that
is refused or collides is undone alone). A commit writes every page it touched to the WAL
(the task, its five indexes, the ledger and its two, the key: ~200 µs of ``write`` calls
here); one commit for a batch is most of the create's database cost saved under load,
and adds no wait when creates come one at a time (the batch is written on the loop's next
turn).

``BEGIN IMMEDIATE`` takes SQLite's single write lock up front, so the unfinished-task
count and the insert it allows are exact across every process on the file. The lock is
never waited for on the loop: with a zero busy timeout a held lock answers at once and
we yield to the loop and try again (a writer in this same process, on aiosqlite's
thread, may need the loop to finish its own transaction).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ClauseElement

from videogate.errors import ServiceUnavailable
from videogate.statuses import TERMINAL, UNFINISHED
from videogate.store.fastread import TASK_COLUMNS_SQL, task_from_row
from videogate.store.ledger import settlement
from videogate.store.records import TaskRecord
from videogate.store.tables import Base, LedgerEntry, Task, TaskEvent

UNFINISHED_SQL = "(" + ", ".join(f"'{s}'" for s in UNFINISHED) + ")"
LOCK_WAIT_SECONDS = 30.0
T = TypeVar("T")


class _Insert:
    """``INSERT`` of every column of one ORM class, with its Python-side defaults."""

    def __init__(self, cls: type[Base]) -> None:
        self.columns: list[tuple[str, str, Any, bool]] = []  # (attr, column, default, json)
        for attr in inspect(cls).column_attrs:
            column = attr.columns[0]
            if column.primary_key and column.autoincrement is True:
                continue
            default = column.default.arg if column.default is not None else None
            if callable(default):
                raise TypeError(f"{cls.__name__}.{attr.key}: callable defaults are not handled")
            is_json = column.type.__class__.__name__ == "JSON"
            self.columns.append((attr.key, column.name, default, is_json))
        # Per-row work is precomputed: which positions have a default, which are JSON.
        self.attrs = [attr for attr, _, _, _ in self.columns]
        self.defaults = [(i, c[2]) for i, c in enumerate(self.columns) if c[2] is not None]
        self.json_at = [i for i, c in enumerate(self.columns) if c[3]]
        names = ", ".join(f'"{name}"' for _, name, _, _ in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        self.sql = f"INSERT INTO {cls.__tablename__} ({names}) VALUES ({marks})"

    def values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        out = [row.get(attr) for attr in self.attrs]
        for i, default in self.defaults:
            if out[i] is None:
                out[i] = default
        for i in self.json_at:
            if out[i] is not None:
                out[i] = json.dumps(out[i])
        return tuple(out)


@dataclass
class _Pending:
    """A create waiting for the next group commit."""

    task: dict[str, Any]
    hold: dict[str, Any]
    event: dict[str, Any] | None
    max_unfinished: int | None
    done: asyncio.Future[int | None]


class SqliteTaskWriter:
    """Creates tasks in one short ``BEGIN IMMEDIATE`` transaction (see the module doc)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._open: sqlite3.Connection | None = None
        self._task = _Insert(Task)
        self._ledger = _Insert(LedgerEntry)
        self._event = _Insert(TaskEvent)
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Future[None] | None = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._open is None:
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._open = conn
        return self._open

    def reset(self) -> None:
        """Close the connection; the next create opens a new one (as the engine's pool
        does when it is disposed, e.g. after the database file was replaced or the disk
        went read-only)."""
        if self._open is not None:
            self._open.close()
            self._open = None

    async def _begin(self) -> None:
        await self._when_unlocked(lambda: self._conn.execute("BEGIN IMMEDIATE"))

    async def _when_unlocked(self, run: Callable[[], T]) -> T:
        """``run()``, tried again while another connection holds the write lock (this
        connection's busy timeout is 0: waiting in SQLite would block the event loop)."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.0005
        while True:
            try:
                return run()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise ServiceUnavailable(
                        f"the database stayed locked for {LOCK_WAIT_SECONDS:.0f} s; retry shortly",
                        retry_after=1,
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def insert(
        self,
        task: dict[str, Any],
        hold: dict[str, Any],
        event: dict[str, Any] | None,
        max_unfinished: int | None,
    ) -> int | None:
        """Insert the ``task`` row with its hold and outbox rows (attribute name → value),
        taking the hold from the key's balance. Returns None when done; else nothing is
        written and the result says why: -1 the balance is short, n ≥ 0 the key already
        has n ≥ ``max_unfinished`` unfinished tasks."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(task, hold, event, max_unfinished, done))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())
        return await done

    async def _flush(self) -> None:
        """Write what is queued, one transaction per turn, until nothing is left."""
        try:
            while self._queue:
                await self._begin()
                # Taken once the lock is held: creates queued while it was busy join too.
                batch, self._queue = self._queue, []
                self._write(batch)
        except BaseException as exc:
            batch, self._queue = self._queue, []
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flusher = None

    def _write(self, batch: list[_Pending]) -> None:
        conn = self._conn
        outcomes: list[int | BaseException | None] = []
        try:
            for item in batch:
                conn.execute("SAVEPOINT one_create")
                outcome: int | BaseException | None
                try:
                    outcome = self._one(conn, item)
                except sqlite3.IntegrityError as exc:
                    # A concurrent retry with the same Idempotency-Key won the race.
                    outcome = IntegrityError(self._task.sql, None, exc)
                if outcome is not None:
                    conn.execute("ROLLBACK TO one_create")
                conn.execute("RELEASE one_create")
                outcomes.append(outcome)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, result in zip(batch, outcomes, strict=True):
            if item.done.done():  # its request was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                item.done.set_exception(result)
            else:
                item.done.set_result(result)

    def _one(self, conn: sqlite3.Connection, item: _Pending) -> int | None:
        """One create inside the open transaction; None when written (see :meth:`insert`)."""
        task, hold = item.task, item.hold
        taken = conn.execute(
            "UPDATE api_keys SET balance_micros = balance_micros - ?"
            " WHERE id = ? AND (balance_micros IS NULL OR balance_micros >= ?)",
            (hold["amount_micros"], task["key_id"], hold["amount_micros"]),
        )
        if taken.rowcount == 0:
            return -1
        if item.max_unfinished is not None:
            # Counts the creates written earlier in this same transaction too: exact.
            (unfinished,) = conn.execute(
                f"SELECT count(*) FROM tasks WHERE key_id = ? AND status IN {UNFINISHED_SQL}",
                (task["key_id"],),
            ).fetchone()
            if unfinished >= item.max_unfinished:
                return int(unfinished)
        conn.execute(self._task.sql, self._task.values(task))
        conn.execute(self._ledger.sql, self._ledger.values(hold))
        if item.event is not None:
            conn.execute(self._event.sql, self._event.values(item.event))
        return None

    # The engine's hot writes ----------------------------------------------------------
    # Through the async driver a write transaction holds SQLite's one write lock from its
    # first statement to its COMMIT, across hand-offs to the event loop; on a busy loop
    # that is milliseconds, and every other writer sleeps in SQLite's busy handler (up to
    # 100 ms a try). Here the statement runs to its commit in one go: the lock is held
    # for microseconds.

    async def statement(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        """One statement in its own (autocommit) transaction; its rows (a SELECT's, or
        an UPDATE's RETURNING)."""
        return await self._when_unlocked(lambda: self._conn.execute(sql, params).fetchall())

    async def claim(self, owner: str, limit: int, now: float, lease: float) -> list[TaskRecord]:
        """``TaskStore.claim_due`` in one statement."""
        rows = await self.statement(_CLAIM_SQL, (owner, now + lease, now, now, limit))
        return [task_from_row(r) for r in rows]

    async def update_held(
        self,
        task_id: str,
        owner: str,
        expected_status: str,
        values: dict[str, Any],
        if_next_run_at: Any,
        check_next_run_at: bool,
        event_at: float,
        charged: int | None = None,
    ) -> bool:
        """``TaskStore.transition``: the update and, on a change of status, its money (a
        terminal status settles the hold, ``charged`` on success) and, for a task with a
        webhook, its outbox row."""
        if values.get("status", expected_status) == expected_status:
            sql, params = _held_update(
                task_id, owner, expected_status, values, if_next_run_at, check_next_run_at
            )
            return bool(await self.statement(sql + " RETURNING id", params))
        return await self.transaction(
            lambda conn: self.change_held(
                conn,
                task_id,
                owner,
                expected_status,
                values,
                event_at,
                if_next_run_at=if_next_run_at,
                check_next_run_at=check_next_run_at,
                charged=charged,
            )
        )

    def change_held(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        owner: str,
        expected_status: str,
        values: dict[str, Any],
        event_at: float,
        *,
        if_next_run_at: Any = None,
        check_next_run_at: bool = False,
        charged: int | None = None,
    ) -> bool:
        """:meth:`update_held` inside an open transaction of ``conn`` (this writer's)."""
        sql, params = _held_update(
            task_id, owner, expected_status, values, if_next_run_at, check_next_run_at
        )
        sql += " RETURNING key_id, hold_micros, currency, callback_url"
        row = conn.execute(sql, params).fetchone()
        if row is None:
            return False
        status = values.get("status", expected_status)
        if status == expected_status:
            return True
        key_id, held, currency, callback_url = row
        if status in TERMINAL:
            self._settle(conn, task_id, key_id, held or 0, charged, currency or "USD", event_at)
        if callback_url:
            event = {"task_id": task_id, "status": status, "created_at": event_at}
            event.update(state="pending", attempts=0, next_attempt_at=event_at)
            conn.execute(self._event.sql, self._event.values(event))
        return True

    def _settle(
        self,
        conn: sqlite3.Connection,
        task_id: str,
        key_id: str,
        held: int,
        charged: int | None,
        currency: str,
        now: float,
    ) -> None:
        """``ledger.settle`` in the transaction: the ledger is unique per (task, kind),
        so a second settlement fails the whole transition (nothing is paid twice)."""
        rows, refund, task_values = settlement(
            key_id=key_id, task_id=task_id, held=held, charged=charged, currency=currency, now=now
        )
        try:
            for entry in rows:
                conn.execute(self._ledger.sql, self._ledger.values(entry))
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(self._ledger.sql, None, exc) from exc
        if refund:
            conn.execute(
                "UPDATE api_keys SET balance_micros = balance_micros + ?"
                " WHERE id = ? AND balance_micros IS NOT NULL",
                (refund, key_id),
            )
        conn.execute(
            "UPDATE tasks SET charged_micros = ?, refunded_micros = ?, billing_state = ?"
            " WHERE id = ?",
            (
                task_values["charged_micros"],
                task_values["refunded_micros"],
                task_values["billing_state"],
                task_id,
            ),
        )

    async def transaction(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """``write(conn)`` in one ``BEGIN IMMEDIATE`` transaction, run to its commit
        without yielding to the loop (so no other write on this connection interleaves)."""
        await self._begin()
        conn = self._conn
        try:
            result = write(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def close(self) -> None:
        self.reset()


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    """Every create of ``batch`` still waiting gets ``exc`` (nothing of it was written)."""
    for item in batch:
        if item.done.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            item.done.cancel()
        else:
            item.done.set_exception(exc)


_COLUMN_NAMES = {c.name for c in Task.__table__.columns}
_JSON_COLUMNS = {c.name for c in Task.__table__.columns if c.type.__class__.__name__ == "JSON"}
# Oldest due first; a task whose holder's lease lapsed is due again.
_CLAIM_SQL = (
    "UPDATE tasks SET lease_owner = ?, lease_until = ?, steps = steps + 1 WHERE id IN"
    " (SELECT id FROM tasks WHERE next_run_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
    f" ORDER BY next_run_at LIMIT ?) RETURNING {TASK_COLUMNS_SQL}"
)


def _held_update(
    task_id: str,
    owner: str,
    expected_status: str,
    values: dict[str, Any],
    if_next_run_at: Any,
    check_next_run_at: bool,
) -> tuple[str, list[Any]]:
    """The compare-and-set ``UPDATE`` of a held task (no ``RETURNING``) and its parameters."""
    names = list(values)
    params: list[Any] = [_encode(n, values[n]) for n in names]
    sql = f"UPDATE tasks SET {', '.join(f'{_quoted(n)} = ?' for n in names)}"
    sql += " WHERE id = ? AND lease_owner = ? AND status = ?"
    params += [task_id, owner, expected_status]
    if check_next_run_at:  # IS: also true for NULL = NULL
        sql += " AND next_run_at IS ?"
        params.append(if_next_run_at)
    return sql, params


def _quoted(name: str) -> str:
    if name not in _COLUMN_NAMES:  # never a caller's text in the SQL
        raise ValueError(f"tasks has no column {name!r}")
    return f'"{name}"'


def _encode(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS and value is not None:
        return json.dumps(value)
    return value


def plain(values: dict[str, Any]) -> bool:
    """True when every value is a plain Python value (no SQL expression)."""
    return not any(isinstance(v, ClauseElement) for v in values.values())
