"""The poll's read path, beside SQLAlchemy's statement layer.

SQLite: a plain ``sqlite3`` lookup on the event loop thread. A primary-key lookup takes
~12 µs in-thread, while the async driver spends ~800 µs on thread hand-offs and the
transaction around it. In WAL mode a reader never waits for a writer, so doing it inline
does not stall the loop.

PostgreSQL: the same SELECT straight on the asyncpg connection of a pooled connection.
Through SQLAlchemy a read is three round trips (``BEGIN``, the query, the pool's
``ROLLBACK`` on return) plus statement compilation and result adaptation: ~2 ms of CPU per
poll here. Alone, a SELECT is its own transaction: one round trip, a prepared statement.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from videogate.store.records import TASK_FIELDS, TaskRecord

# The record's fields are the table's column names, in its order.
_JSON = tuple(TASK_FIELDS.index(name) for name in ("request", "upstream_result", "price"))
_BOOL = TASK_FIELDS.index("media_deleted")
#: Every column of ``tasks``, in the order :func:`task_from_row` reads them.
TASK_COLUMNS_SQL = ", ".join(TASK_FIELDS)
_SQL_BY_ID = f"SELECT {TASK_COLUMNS_SQL} FROM tasks WHERE id = ?"
# A key's own reads never see a task it deleted (OpenAI's DELETE).
_SQL_BY_ID_AND_KEY = _SQL_BY_ID + " AND key_id = ? AND deleted_at IS NULL"
_PG_BY_ID = _SQL_BY_ID.replace("?", "$1")
# SQLSTATE classes of a connection that is gone: 08 connection exception, 57 operator
# intervention (a terminated backend, a server shutting down).
_CONNECTION_GONE = ("08", "57")
_PG_BY_ID_AND_KEY = _PG_BY_ID + " AND key_id = $2 AND deleted_at IS NULL"


class SqliteTaskReader:
    """Read-only, autocommit connection: each SELECT sees the latest committed state."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._conn.execute("PRAGMA query_only=1")

    def get(self, task_id: str, key_id: str | None) -> TaskRecord | None:
        if key_id is None:
            row = self._conn.execute(_SQL_BY_ID, (task_id,)).fetchone()
        else:
            row = self._conn.execute(_SQL_BY_ID_AND_KEY, (task_id, key_id)).fetchone()
        return None if row is None else task_from_row(row)

    def data_version(self) -> int:
        """Changes whenever another connection (any process) commits to the file."""
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def close(self) -> None:
        self._conn.close()


def task_from_row(row: Sequence[Any]) -> TaskRecord:
    """The record of a plain ``sqlite3`` row of :data:`TASK_COLUMNS_SQL` (JSON as text,
    booleans as integers)."""
    values = list(row)
    for i in _JSON:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    values[_BOOL] = bool(values[_BOOL])
    return TaskRecord(*values)


class PostgresTaskReader:
    """One SELECT on the driver connection of a pooled connection (see the module doc).

    The pool's connections have SQLAlchemy's JSON codecs, so ``request`` arrives decoded.
    A connection the server dropped (a restart, an idle timeout) is thrown away and the
    read tried once more on another, as ``db.retry_if_disconnected`` does for the others;
    a failure after that is a ``DBAPIError`` like any other database trouble (a 503).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, task_id: str, key_id: str | None) -> TaskRecord | None:
        sql, args = (
            (_PG_BY_ID, (task_id,)) if key_id is None else (_PG_BY_ID_AND_KEY, (task_id, key_id))
        )
        try:
            row = await self._fetch(sql, args)
        except _Disconnected:
            try:
                row = await self._fetch(sql, args)
            except _Disconnected as again:
                raise again.error from again.error.orig
        if row is None:
            return None
        return TaskRecord(*row)

    async def _fetch(self, sql: str, args: tuple[str, ...]) -> Any:
        pooled = await self._engine.raw_connection()
        driver: asyncpg.Connection = pooled.driver_connection
        try:
            row = await driver.fetchrow(sql, *args)
        except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # The transport broke, or the server's goodbye (a terminated backend) arrived
            # while the connection sat idle in the pool and left its protocol mid-error.
            driver.terminate()  # closed now, never waited on
            await greenlet_spawn(pooled.invalidate, exc)
            raise _Disconnected(OperationalError(sql, args, exc)) from exc
        except asyncpg.PostgresError as exc:
            dead = driver.is_closed() or (exc.sqlstate or "")[:2] in _CONNECTION_GONE
            if dead:
                driver.terminate()
                await greenlet_spawn(pooled.invalidate, exc)
            else:
                await greenlet_spawn(pooled.close)
            error = OperationalError(sql, args, exc)
            if dead:
                raise _Disconnected(error) from exc
            raise error from exc
        except BaseException:
            # Cancelled mid-query: the connection's protocol state is unknown; drop it.
            driver.terminate()
            await greenlet_spawn(pooled.invalidate)
            raise
        await greenlet_spawn(pooled.close)
        return row


class _Disconnected(Exception):
    """The pooled connection was dead (and is discarded): the read may be tried again."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error
