"""A new task's write on PostgreSQL: one statement on the hot pool (``pg_fast.py``).

Through an ORM session a create was the hold's ``UPDATE``, the ORM insert of the task, the
ledger and outbox rows and the ``NOTIFY``, each a round trip with SQLAlchemy's statement
machinery around it, plus ``BEGIN`` and ``COMMIT``: ~4 ms of CPU per create here. Now:

- **a key without a cap**: one statement, its own transaction. Data-modifying ``WITH``
  clauses take the hold, insert the task, its ledger row and its outbox row. A key with no
  balance (``NULL``: unlimited) is not updated at all, so its creates do not queue on its
  row lock; a key with a balance is, and the ``UPDATE``'s re-check of the balance after
  the lock makes the hold exact however many creates race.
- **a key with a cap of unfinished tasks**: a transaction of two statements. The first
  takes the hold with an ``UPDATE`` of the key's row in every case, which locks it; the
  second counts the key's unfinished tasks and inserts only below the cap. The count must
  be a statement of its own: every part of one statement reads the snapshot taken when it
  started, before the lock was waited for, and would miss the task of the create that
  held it. As on the session path, concurrent creates of the key wait on the row, so the
  cap is exact across processes.

The workers are woken by a ``NOTIFY videogate_due`` sent right after the commit, one for
all the creates that committed while the previous one was on its way. Inside each
create's transaction it serialized every create: PostgreSQL takes a database-wide lock
for a notifying transaction's commit and holds it through the commit's WAL flush (~2 ms
here), so creates could not share a flush: at most ~500 a second. A notification lost
with the process between the commit and the NOTIFY costs what a lost one always did: the
workers' next periodic look (``worker_poll_interval``) finds the task.

A ``UNIQUE`` violation (the key's Idempotency-Key taken by a concurrent create) undoes the
whole write and is an :class:`~sqlalchemy.exc.IntegrityError` as before. A connection
found dead is replaced and the write tried once more; if the first try had committed
after all (its answer lost with the connection), the second finds the task's id taken and
the create counts as done.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from videogate.statuses import UNFINISHED
from videogate.store.due_signal import CHANNEL
from videogate.store.pg_fast import PgHotPool
from videogate.store.tables import Base, LedgerEntry, Task, TaskEvent

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_UNFINISHED = "(" + ", ".join(f"'{s}'" for s in UNFINISHED) + ")"
_TASK_PKEY = "tasks_pkey"
log = logging.getLogger("videogate.store")


class _Columns:
    """Every column of one ORM class but an autoincrement key: its attribute, its name,
    its Python-side default, and a typed placeholder from ``first`` on."""

    def __init__(self, cls: type[Base], first: int) -> None:
        self.attrs: list[str] = []
        self.defaults: list[tuple[int, Any]] = []
        names, marks = [], []
        for attr in inspect(cls).column_attrs:
            column = attr.columns[0]
            if column.primary_key and column.autoincrement is True:
                continue
            default = column.default.arg if column.default is not None else None
            if callable(default):
                raise TypeError(f"{cls.__name__}.{attr.key}: callable defaults are not handled")
            if default is not None:
                self.defaults.append((len(self.attrs), default))
            # Explicit types: a parameter in a SELECT list has no column to infer one from.
            cast = column.type.compile(dialect=_DIALECT)
            marks.append(f"${first + len(self.attrs)}::{cast}")
            names.append(f'"{column.name}"')
            self.attrs.append(attr.key)
        self.names = ", ".join(names)
        self.marks = ", ".join(marks)

    def values(self, row: dict[str, Any]) -> list[Any]:
        out = [row.get(attr) for attr in self.attrs]
        for i, default in self.defaults:
            if out[i] is None:
                out[i] = default
        return out


_TASK = _Columns(Task, 1)
_N_TASK = len(_TASK.attrs)
_LEDGER = _Columns(LedgerEntry, _N_TASK + 1)
_N_LEDGER = len(_LEDGER.attrs)
_EVENT = _Columns(TaskEvent, _N_TASK + _N_LEDGER + 1)
_N_ROWS = _N_TASK + _N_LEDGER + len(_EVENT.attrs)
# After the rows' values: the key, whether to write the outbox row, and the hold (one
# statement) or the cap (capped keys' second statement).
_KEY, _WITH_EVENT, _MICROS = (f"${_N_ROWS + i}" for i in (1, 2, 3))
_CAP = _MICROS

# After the task: its ledger row and its outbox row (when asked).
_AFTER_TASK = f"""
  l AS (INSERT INTO ledger ({_LEDGER.names}) SELECT {_LEDGER.marks} FROM t),
  e AS (INSERT INTO task_events ({_EVENT.names}) SELECT {_EVENT.marks} FROM t
        WHERE {_WITH_EVENT}::boolean)"""

# Uncapped: the hold and the rows in one statement. ``k`` reads the key once; only a key
# with a balance is updated (and locked). A row back: created; none: the balance is short.
_CREATE = f"""
WITH k AS (SELECT balance_micros FROM api_keys WHERE id = {_KEY}::varchar),
  h AS (UPDATE api_keys SET balance_micros = balance_micros - {_MICROS}::bigint
        WHERE id = {_KEY}::varchar AND balance_micros >= {_MICROS}::bigint RETURNING id),
  ok AS (SELECT 1 FROM k WHERE balance_micros IS NULL UNION ALL SELECT 1 FROM h),
  t AS (INSERT INTO tasks ({_TASK.names}) SELECT {_TASK.marks} FROM ok RETURNING id),
{_AFTER_TASK}
SELECT t.id FROM t"""

# Capped, first statement: the hold, which locks the key's row whatever its balance.
_HOLD = """
UPDATE api_keys SET balance_micros = balance_micros - $2
WHERE id = $1 AND (balance_micros IS NULL OR balance_micros >= $2) RETURNING id"""

# Capped, second statement (after the lock, so its snapshot sees every earlier create):
# one row, the unfinished count before, and the new task's id (NULL: the cap was full).
_CREATE_BELOW_CAP = f"""
WITH c AS (SELECT count(*) AS n FROM tasks
           WHERE key_id = {_KEY}::varchar AND status IN {_UNFINISHED}),
  t AS (INSERT INTO tasks ({_TASK.names}) SELECT {_TASK.marks} FROM c
        WHERE c.n < {_CAP}::bigint RETURNING id),
{_AFTER_TASK}
SELECT c.n, t.id FROM c LEFT JOIN t ON true"""

# Workers wake on any notification (the payload is not read).
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', '')"


class PgTaskWriter:
    """Creates tasks on the hot pool (see the module doc); the same contract as the SQLite
    writer's :meth:`~videogate.store.fastwrite.SqliteTaskWriter.insert`."""

    def __init__(self, pool: PgHotPool) -> None:
        self._pool = pool
        self._notifying = False
        self._notify_again = False

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
        has n ≥ ``max_unfinished`` unfinished tasks. Raises ``IntegrityError`` when the
        task's id or its Idempotency-Key is taken."""
        rows = [*_TASK.values(task), *_LEDGER.values(hold), *_EVENT.values(event or {})]
        key, micros = task["key_id"], hold["amount_micros"]
        args = [*rows, key, event is not None]
        tries = 0

        async def write(conn: asyncpg.Connection) -> int | None:
            nonlocal tries
            tries += 1
            try:
                if max_unfinished is None:
                    return None if await conn.fetchrow(_CREATE, *args, micros) else -1
                async with conn.transaction():
                    if await conn.fetchval(_HOLD, key, micros) is None:
                        return -1
                    count, created = await conn.fetchrow(_CREATE_BELOW_CAP, *args, max_unfinished)
                    if created is None:
                        # Undo the hold: the transaction rolls back on the way out.
                        raise _CapReached(int(count))
                    return None
            except _CapReached as full:
                return full.unfinished
            except asyncpg.IntegrityConstraintViolationError as exc:
                if tries > 1 and exc.constraint_name == _TASK_PKEY:
                    return None  # the first try committed; its answer was lost
                raise IntegrityError(_CREATE, None, exc) from exc

        result: int | None = await self._pool.run(write, _CREATE, tuple(args))
        if result is None:
            self._wake_workers()
        return result

    def _wake_workers(self) -> None:
        """``NOTIFY videogate_due`` once the create has committed, for every create that
        committed while the previous one was on its way (see the module doc)."""
        if self._notifying:
            self._notify_again = True
        else:
            self._notifying = True
            self._pool.spawn(self._notify())

    async def _notify(self) -> None:
        try:
            while True:
                self._notify_again = False
                try:
                    await self._pool.fetchval(_NOTIFY)
                except Exception as exc:  # the workers' periodic look finds the tasks
                    log.warning("could not wake the workers (they look again soon): %s", exc)
                if not self._notify_again:
                    return
        finally:
            self._notifying = False


class _CapReached(Exception):
    def __init__(self, unfinished: int) -> None:
        super().__init__(unfinished)
        self.unfinished = unfinished
