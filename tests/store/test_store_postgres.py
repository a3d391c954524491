"""PostgreSQL connection handling: no pre-ping, one retry on a dropped connection, the
PgBouncer-friendly mode without prepared-statement caching; and the schema the
migrations build matches the tables (claim indexes included)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, OperationalError

from postgres_support import PG_ADMIN, pg_available
from store_support import make_task
from videogate.signing import hash_api_key
from videogate.store import Store
from videogate.store.db import PoolOptions, is_infrastructure
from videogate.store.migrate import upgrade
from videogate.store.pg_fast import PgHotPool, PostgresTaskReader
from videogate.store.records import KeyRecord
from videogate.store.tables import Base


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    if not await pg_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"vg_pool_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        await upgrade(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def drop_connections(url: str) -> int:
    """What a server restart or an idle timeout does to a pool: kill its backends."""
    database = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(killed)
    finally:
        await admin.close()


async def key_with_secret(store: Store) -> tuple[KeyRecord, str]:
    secret = f"vg-{uuid.uuid4().hex}"
    key = KeyRecord(
        id=f"key_{uuid.uuid4().hex[:12]}",
        name="pool",
        group="default",
        key_hash=hash_api_key(secret),
        key_prefix=secret[:10],
        webhook_secret="whsec_x",
        created_at=time.time(),
    )
    key = await store.keys.insert(key)
    return key, secret


@pytest.mark.postgres
@pytest.mark.parametrize("statement_cache_size", [256, 0])
async def test_hot_reads_survive_dropped_connections(
    pg_url: str, statement_cache_size: int
) -> None:
    store = Store.open(pg_url, PoolOptions(1, 0, statement_cache_size))
    try:
        assert not store.engine.pool._pre_ping
        key, secret = await key_with_secret(store)
        task = make_task(key.id)
        await store.tasks.insert(task)
        for _ in range(3):  # the same statements again: cached (or not) per the setting
            assert (await store.tasks.get(task.id, key.id)) is not None
            assert (await store.keys.by_hash(hash_api_key(secret))) is not None
        assert await drop_connections(pg_url) >= 1
        # The pooled connection is dead: each hot read notices and retries once.
        got = await store.tasks.get(task.id, key.id)
        assert got is not None and got.id == task.id
        assert await drop_connections(pg_url) >= 1
        found = await store.keys.by_hash(hash_api_key(secret))
        assert found is not None and found.id == key.id
        assert await store.tasks.count_unfinished(key.id) == 1
    finally:
        await store.close()


async def _schema_differences(url: str) -> list[object]:
    store = Store.open(url)
    try:
        async with store.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: list(compare_metadata(MigrationContext.configure(c), Base.metadata))
            )
    finally:
        await store.close()


async def test_migrations_build_exactly_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    await upgrade(url)
    assert await _schema_differences(url) == []


@pytest.mark.postgres
async def test_migrations_build_exactly_the_tables_on_postgresql(pg_url: str) -> None:
    assert await _schema_differences(pg_url) == []


@pytest.mark.postgres
async def test_a_due_task_wakes_a_worker_in_another_process(pg_url: str) -> None:
    """A create or a callback written by one process wakes the listener of another."""

    from videogate.settings import to_async_url
    from videogate.store.due_signal import listen_for_due

    api_side = Store.open(pg_url)
    wakeup, stop = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(listen_for_due(to_async_url(pg_url), wakeup, stop))
    try:
        # The listener sets the event once when it starts listening (catch-up).
        await asyncio.wait_for(wakeup.wait(), 30)
        wakeup.clear()
        key, _ = await key_with_secret(api_side)
        task = make_task(key.id)
        assert await api_side.tasks.insert(task)
        await asyncio.wait_for(wakeup.wait(), 30)
        wakeup.clear()
        # An upstream callback for a running task: made due at once, and the worker told.
        running = make_task(key.id, status="running")
        assert await api_side.tasks.insert(running)
        await asyncio.wait_for(wakeup.wait(), 30)
        wakeup.clear()
        await api_side.tasks.poll_now(running.id)
        await asyncio.wait_for(wakeup.wait(), 30)
        got = await api_side.tasks.get(running.id)
        assert got is not None and got.next_run_at == 0.0
    finally:
        stop.set()
        await asyncio.wait_for(listener, 30)
        await api_side.close()


@pytest.mark.postgres
@pytest.mark.parametrize("statement_cache_size", [256, 0])
async def test_the_poll_read_has_connections_of_its_own(
    pg_url: str, statement_cache_size: int
) -> None:
    """The poll's read runs on the hot pool: it answers while every connection of
    SQLAlchemy's pool is taken, many at once share its few connections, it prepares named
    statements only when the statement cache is on (PgBouncer), and it comes back after
    its connections are terminated (creates too)."""
    store = Store.open(pg_url, PoolOptions(1, 0, statement_cache_size, hot_size=1))
    try:
        assert store.hot is not None
        key, _ = await key_with_secret(store)
        task = make_task(key.id)
        await store.tasks.insert(task)
        async with store.engine.connect() as held:  # SQLAlchemy's only connection
            await held.execute(text("SELECT 1"))
            got = await asyncio.wait_for(
                asyncio.gather(*(store.tasks.get(task.id, key.id) for _ in range(20))), 60
            )
        assert [t.id if t else None for t in got] == [task.id] * 20
        assert got[0] is not None and got[0].request == task.request  # JSON decoded
        assert await store.tasks.get(task.id, "key_someone_else") is None
        # Reads of one batch keep their own owner and "deleted" checks.
        deleted = make_task(key.id)
        await store.tasks.insert(deleted)
        assert await store.tasks.mark_deleted(deleted.id, time.time())
        mixed = await asyncio.gather(
            store.tasks.get(deleted.id, key.id),
            store.tasks.get(deleted.id),
            store.tasks.get(task.id, "key_someone_else"),
            store.tasks.get("video_missing", key.id),
            store.tasks.get(task.id, key.id),
        )
        assert [t.id if t else None for t in mixed] == [None, deleted.id, None, None, task.id]
        named = await store.hot.fetchval("SELECT count(*) FROM pg_prepared_statements")
        assert (named > 0) is (statement_cache_size > 0)
        assert await drop_connections(pg_url) >= 1
        again = await store.tasks.get(task.id)
        assert again is not None and again.id == task.id
        # Creates are written on the hot pool too, and retried once the same way.
        assert await drop_connections(pg_url) >= 1
        created = make_task(key.id)
        assert await store.tasks.insert(created) == created
        assert await store.tasks.insert(make_task(key.id), max_unfinished=5) is not None
    finally:
        await store.close()


async def test_the_poll_read_on_a_server_that_is_down_is_a_503() -> None:
    """Nothing listens on the port: the read is tried twice, then it is an
    ``OperationalError`` (what the API answers with 503, the worker retries later)."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hot = PgHotPool(
        {"host": "127.0.0.1", "port": port, "user": "postgres", "database": "none"},
        size=1,
        statement_cache_size=0,
    )
    try:
        with pytest.raises(OperationalError) as caught:
            await PostgresTaskReader(hot).get("vid_x", None)
        assert is_infrastructure(caught.value)
    finally:
        await hot.close()


@pytest.mark.postgres
async def test_one_retry_is_enough_when_every_hot_connection_was_dropped(pg_url: str) -> None:
    """A restart drops every connection of the hot pool at once: the read still answers
    (a dead connection found retires the others too, as SQLAlchemy's pool does, so the
    single retry does not land on another dead one whose goodbye is still in flight)."""
    store = Store.open(pg_url, PoolOptions(1, 0, 256, hot_size=3))
    try:
        assert store.hot is not None
        key, _ = await key_with_secret(store)
        task = make_task(key.id)
        await store.tasks.insert(task)
        opened = await asyncio.gather(
            *(store.hot.fetchval("SELECT pg_backend_pid()") for _ in range(3))
        )
        assert len(set(opened)) == 3  # three idle connections now
        assert await drop_connections(pg_url) >= 3
        got = await store.tasks.get(task.id, key.id)
        assert got is not None and got.id == task.id
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_statement_error_on_the_hot_pool_is_classified_like_sqlalchemys(
    pg_url: str,
) -> None:
    """The statement's own error is not an outage (no 503), a deadlock-class one is."""
    store = Store.open(pg_url)
    try:
        assert store.hot is not None
        with pytest.raises(DatabaseError) as bad:
            await store.hot.fetchval("SELECT 1 / 0")
        assert not isinstance(bad.value, OperationalError)
        assert not is_infrastructure(bad.value)
        with pytest.raises(DatabaseError) as busy:
            await store.hot.fetchval("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$")
        assert is_infrastructure(busy.value)
    finally:
        await store.close()
