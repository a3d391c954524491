"""Engine and session factory for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import NullPool

from videogate.errors import ServiceUnavailable
from videogate.settings import to_async_url

T = TypeVar("T")


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool of one process (see the settings ``db_pool_size`` and friends).

    ``statement_cache_size`` 0 turns prepared-statement caching off and names statements
    uniquely, as PgBouncer in transaction mode needs. ``hot_size``: the connections kept
    beside the pool for polls and creates (``store/pg_fast.py``), opened on first use.
    """

    size: int = 5
    max_overflow: int = 5
    statement_cache_size: int = 256
    hot_size: int = 3


def is_infrastructure(exc: BaseException) -> bool:
    """Our own dependencies failing (database down or restarting, disk full, lock timeout,
    storage unreachable): nothing a task or a request did, and worth trying again."""
    if isinstance(exc, ServiceUnavailable):  # e.g. the blob store cannot be reached
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or _sqlstate(exc)[:2] in _TRANSIENT_SQLSTATE_CLASSES
        )
    return isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError | OSError)


# PostgreSQL error classes that say "the server, not the statement": 08 connection, 40
# serialization/deadlock, 53 insufficient resources (disk full), 55 not in prerequisite
# state ("database is not currently accepting connections"), 57 operator intervention
# (shutdown, restart), 58 system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


def _sqlstate(exc: sa_exc.DBAPIError) -> str:
    """The SQLSTATE behind a driver error (asyncpg keeps it on the adapted error's cause)."""
    for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, pool: PoolOptions | None = None) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so several processes can share it."""
    url = to_async_url(url)
    pool = pool or PoolOptions()
    if is_sqlite(url):
        # A steady pool: overflow connections would be opened and closed (a thread each
        # with aiosqlite) under load. Writes serialize in SQLite anyway.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=max(pool.size, 10), max_overflow=2
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {"statement_cache_size": pool.statement_cache_size}
    if pool.statement_cache_size == 0:
        # PgBouncer (transaction mode) may hand each statement another server connection:
        # a name prepared on one must never be reused on another.
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    sa_url = make_url(url).update_query_dict(
        {"prepared_statement_cache_size": str(pool.statement_cache_size)}
    )
    # No pool_pre_ping: it costs a round trip on every checkout (~11% of a poll). A
    # connection found broken is invalidated instead, and the hot reads retry once
    # (``retry_if_disconnected``).
    return create_async_engine(
        sa_url, pool_size=pool.size, max_overflow=pool.max_overflow, connect_args=connect_args
    )


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


async def retry_if_disconnected(run: Callable[[], Awaitable[T]]) -> T:
    """``run()``, and once more if it failed on a connection the server had dropped (a
    restart, an idle timeout, a failover): the pool has thrown that connection away."""
    try:
        return await run()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await run()


def create_engine_nopool(url: str, *, immediate: bool = False) -> AsyncEngine:
    """An engine without pooling, for one-off CLI commands and migrations.

    ``immediate`` makes SQLite transactions take the write lock up front (waiting on the
    busy timeout) instead of failing when a read transaction has to become a write.
    """
    url = to_async_url(url)
    engine = create_async_engine(url, poolclass=NullPool)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        begin = _sqlite_begin_immediate if immediate else _sqlite_begin
        event.listen(engine.sync_engine, "begin", begin)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is turned off so that "begin" below is ours.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # SQLAlchemy's documented recipe: pysqlite's implicit transactions are off (above), so
    # a transaction starts here and covers reads too. Writes are single conditional
    # statements, so deferred locking never has to upgrade mid-transaction.
    conn.exec_driver_sql("BEGIN")


def _sqlite_begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
