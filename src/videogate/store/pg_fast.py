"""PostgreSQL's hot path: a few asyncpg connections of the store's own, beside SQLAlchemy's.

The poll's read is a SELECT by primary key. Through SQLAlchemy's pool each one paid a
checkout and a return (two greenlet hand-offs, the pool's bookkeeping), and 200 concurrent
polls queued for the 5 connections that every other query of the process shares. Here
the statement goes straight to an ``asyncpg`` pool kept for the hot statements alone
(these reads, and creates: ``pg_fastwrite.py``): one round trip, a prepared statement (or
an unnamed one with a statement cache size of 0, as PgBouncer in transaction mode needs),
no reset query on release (a single statement outside a transaction leaves no session
state behind), and reads that arrive together share one statement.

A connection the server dropped (a restart, an idle timeout, a failover) is thrown away
and the statement tried once more on another; a failure after that, or a server that
cannot be reached, is an :class:`~sqlalchemy.exc.OperationalError` like any other database
trouble of the store (a 503 for the API, "try again" for the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from videogate.store.fastread import TASK_COLUMNS_SQL
from videogate.store.records import TaskRecord

# SQLSTATE classes of a connection that is gone: 08 connection exception, 57 operator
# intervention (a terminated backend, a server shutting down).
_CONNECTION_GONE = ("08", "57")
_BY_IDS = f"SELECT {TASK_COLUMNS_SQL} FROM tasks WHERE id = ANY($1::varchar[])"
# SQLAlchemy's pool waits this long for a connection before it gives up (its default).
_ACQUIRE_TIMEOUT = 30.0
# Keyword arguments of SQLAlchemy's asyncpg adapter that asyncpg.connect does not take.
_ADAPTER_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


class PgHotPool:
    """An ``asyncpg`` pool of at most ``size`` connections, opened on first use.

    ``connect_kwargs`` are what SQLAlchemy's dialect passes to ``asyncpg.connect`` for the
    engine's URL (host, credentials, ``ssl`` …), so both pools reach the same server the
    same way. JSON columns decode with ``json.loads`` and encode with ``json.dumps``, as
    SQLAlchemy's codecs do on its own connections.
    """

    def __init__(
        self, connect_kwargs: dict[str, Any], *, size: int, statement_cache_size: int
    ) -> None:
        self._connect_kwargs = {k: v for k, v in connect_kwargs.items() if k not in _ADAPTER_ONLY}
        self._size = size
        self._statement_cache_size = statement_cache_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def for_engine(cls, engine: AsyncEngine, *, size: int, statement_cache_size: int) -> PgHotPool:
        """The hot pool of a PostgreSQL engine: same server, same credentials."""
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        return cls(dict(kwargs), size=size, statement_cache_size=statement_cache_size)

    @property
    def size(self) -> int:
        """At most this many connections."""
        return self._size

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """Every row of one statement (run in a transaction of its own)."""
        rows: list[asyncpg.Record] = await self.run(lambda conn: conn.fetch(sql, *args), sql, args)
        return rows

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        """The first row of one statement (run in a transaction of its own)."""
        return await self.run(lambda conn: conn.fetchrow(sql, *args), sql, args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        """The first column of the first row of one statement."""
        return await self.run(lambda conn: conn.fetchval(sql, *args), sql, args)

    def spawn(self, statements: Coroutine[Any, Any, None]) -> None:
        """Run ``statements`` in the background; :meth:`close` waits for them."""
        task = asyncio.ensure_future(statements)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def run(
        self,
        call: Callable[[asyncpg.Connection], Awaitable[Any]],
        sql: str,
        args: tuple[object, ...],
    ) -> Any:
        """``call(connection)``, and once more on another connection if this one turned
        out dead; ``sql`` and ``args`` describe it in the error. Errors other than the
        connection's own propagate as ``call`` raised them (a ``PostgresError`` as a
        ``DatabaseError``); a connection that stays dead is an ``OperationalError``."""
        try:
            return await self._once(call, sql, args)
        except _Disconnected:
            try:
                return await self._once(call, sql, args)
            except _Disconnected as again:
                raise again.error from again.error.orig

    async def _once(
        self,
        call: Callable[[asyncpg.Connection], Awaitable[Any]],
        sql: str,
        args: tuple[object, ...],
    ) -> Any:
        pool = self._pool or await self._open()
        try:
            async with pool.acquire(timeout=_ACQUIRE_TIMEOUT) as conn:
                try:
                    return await call(conn)
                except BaseException as exc:
                    if _is_gone(exc) or not isinstance(exc, Exception):
                        # Dead, or cancelled mid-statement (its protocol state unknown):
                        # the pool opens a fresh connection next time. (A connection the
                        # transport closed was handed back to the pool already.)
                        with contextlib.suppress(asyncpg.InterfaceError):
                            conn.terminate()
                    raise
        except TimeoutError as exc:  # no connection came free in time, or none opened
            raise OperationalError(sql, args, exc) from exc
        except (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # The server cannot be reached, the transport broke (or the server's goodbye
            # to a terminated backend arrived while the connection sat idle and left its
            # protocol mid-error).
            raise await self._gone(pool, OperationalError(sql, args, exc)) from exc
        except asyncpg.PostgresError as exc:
            if _is_gone(exc):
                raise await self._gone(pool, OperationalError(sql, args, exc)) from exc
            # The statement's own trouble, classified by its SQLSTATE as SQLAlchemy's
            # errors are (``db.is_infrastructure``: a deadlock or a full disk is a 503).
            raise DatabaseError(sql, args, exc) from exc

    @staticmethod
    async def _gone(pool: asyncpg.Pool, error: OperationalError) -> _Disconnected:
        """As SQLAlchemy's pool does after a disconnect: the other connections were most
        likely dropped too (a restart, a failover), so each is replaced when next taken."""
        await pool.expire_connections()
        return _Disconnected(error)

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                if self._closed:
                    raise OperationalError("", (), asyncpg.InterfaceError("the store is closed"))
                self._pool = await asyncpg.create_pool(
                    min_size=0,  # connections open on first use: a quiet process holds none
                    max_size=self._size,
                    # Never closed for idleness: the timer it re-arms costs ~10-20 µs per
                    # release. A connection the server closes meanwhile is retried once.
                    max_inactive_connection_lifetime=0,
                    statement_cache_size=self._statement_cache_size,
                    init=_json_codecs,
                    reset=_no_reset,
                    **self._connect_kwargs,
                )
            return self._pool


def _is_gone(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and sqlstate[:2] in _CONNECTION_GONE


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Nothing to reset: each use is one statement outside a transaction (asyncpg still
    rolls back a transaction left open). The default costs a round trip per release."""


class _Disconnected(Exception):
    """The connection was dead (and is discarded): the statement may be tried again."""

    def __init__(self, error: OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


class PostgresTaskReader:
    """The poll's read, batched: the reads that arrive while the hot pool is busy share
    one ``SELECT … WHERE id = ANY($1)``.

    At most as many statements are in flight as the pool has connections. The first read
    of a quiet moment goes out on the loop's next turn, alone; under load, the reads that
    arrive while every connection is busy wait for the next free one and go together: one
    round trip, one statement for PostgreSQL to run, instead of one each. (At 200
    concurrent polls each read used to queue for a connection anyway.) The owner and
    "deleted" checks of a key's read are made on the row here.
    """

    def __init__(self, pool: PgHotPool) -> None:
        self._pool = pool
        self._waiting: dict[str, list[asyncio.Future[TaskRecord | None]]] = {}
        self._readers: set[asyncio.Task[None]] = set()
        self._starting = False

    async def get(self, task_id: str, key_id: str | None) -> TaskRecord | None:
        done: asyncio.Future[TaskRecord | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(task_id, []).append(done)
        if not self._starting and len(self._readers) < self._pool.size:
            self._starting = True
            reader = asyncio.ensure_future(self._read())
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)
        task = await done
        if task is None or (
            key_id is not None and (task.key_id != key_id or task.deleted_at is not None)
        ):
            return None
        return task

    async def _read(self) -> None:
        """Read what is waiting, batch after batch, until nothing is."""
        self._starting = False
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            try:
                rows = await self._pool.fetch(_BY_IDS, list(batch))
            except BaseException as exc:
                for waiters in batch.values():
                    for done in waiters:
                        if done.done():
                            continue
                        if isinstance(exc, Exception):
                            done.set_exception(exc)
                        else:
                            done.cancel()
                if not isinstance(exc, Exception):
                    raise
                continue
            found = {row[0]: TaskRecord(*row) for row in rows}
            for task_id, waiters in batch.items():
                task = found.get(task_id)
                for done in waiters:
                    if not done.done():
                        done.set_result(task)
