"""Persistence: one :class:`Store` over SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import secrets

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from videogate.clock import Clock, SystemClock
from videogate.store.attempts import AttemptStore
from videogate.store.db import PoolOptions, create_engine, session_factory
from videogate.store.files import FileStore
from videogate.store.keys import KeyStore
from videogate.store.ledger import LedgerStore
from videogate.store.pg_fast import PgHotPool
from videogate.store.reports import ReportStore
from videogate.store.retention import RetentionStore
from videogate.store.routes import RouteStateStore
from videogate.store.sealing import SecretBox
from videogate.store.tables import Meta
from videogate.store.tasks import TaskStore
from videogate.store.webhooks import WebhookStore

# The name of the generated service secret in the ``meta`` table.
SERVICE_SECRET = "url_signing_secret"


class Store:
    """The database, by concern: ``tasks``, ``keys``, ``files``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        secret_key: str = "",
        clock: Clock | None = None,
        pool: PoolOptions | None = None,
    ) -> None:
        self.engine = engine
        # Times the store stamps itself (an attempt's start and end, a transition without
        # ``updated_at``) come from the engine's clock, like the times it is given.
        self.clock = clock or SystemClock()
        self.sessions = session_factory(engine)
        self.dialect = engine.dialect.name
        self._secret_key = secret_key
        self._box: SecretBox | None = None
        pool = pool or PoolOptions()
        #: PostgreSQL: the connections of the poll's read, beside SQLAlchemy's pool.
        self.hot = (
            PgHotPool.for_engine(
                engine, size=pool.hot_size, statement_cache_size=pool.statement_cache_size
            )
            if self.dialect == "postgresql"
            else None
        )
        self.tasks = TaskStore(
            engine, self.sessions, dialect=self.dialect, clock=self.clock, hot=self.hot
        )
        self.keys = KeyStore(self.sessions, self.secret_box)
        self.files = FileStore(self.sessions)
        self.attempts = AttemptStore(self.sessions, self.clock, self.tasks.writer)
        self.ledger = LedgerStore(self.sessions)
        self.route_state = RouteStateStore(self.sessions, self.tasks.writer)
        self.webhooks = WebhookStore(self.sessions, dialect=self.dialect)
        self.retention = RetentionStore(self.sessions)
        self.reports = ReportStore(self.sessions, dialect=self.dialect)

    @classmethod
    def open(
        cls,
        url: str,
        pool: PoolOptions | None = None,
        *,
        secret_key: str = "",
        clock: Clock | None = None,
    ) -> Store:
        """``pool``: the PostgreSQL pool (``PoolOptions``); ``secret_key``: the configured
        service secret (``VIDEOGATE_SECRET_KEY``); empty means the one generated into this
        database; ``clock``: the engine's (the system clock by default)."""
        engine = create_engine(url, pool)
        return cls(engine, secret_key=secret_key, clock=clock, pool=pool)

    async def service_secret(self) -> str:
        """Signs URLs and seals secrets at rest: the configured one, else the generated."""
        return self._secret_key or await self.shared_secret(SERVICE_SECRET)

    async def secret_box(self) -> SecretBox:
        """Seals and opens secrets at rest (``store/sealing.py``). With a configured
        secret, values sealed before it was set still open (with the generated one)."""
        if self._box is None:
            generated = await self.shared_secret(SERVICE_SECRET)
            if self._secret_key and self._secret_key != generated:
                self._box = SecretBox(self._secret_key, generated)
            else:
                self._box = SecretBox(generated)
        return self._box

    async def ping(self) -> None:
        """One round trip to the database (health checks); raises what the driver raises."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        # A callback answered just before the stop; best effort (a lost hint costs the
        # task's regular poll schedule), never in the way of closing the rest.
        try:
            with contextlib.suppress(Exception):
                await self.tasks.hints_written()
            self.tasks.close()
            if self.hot is not None:
                await self.hot.close()
        finally:
            # Also when cancelled or when the hot pool failed to close: an engine not
            # disposed keeps its pooled connections open until the collector finds them.
            await self.engine.dispose()

    async def shared_secret(self, name: str) -> str:
        """A random value created once and shared by every process on this database."""
        async with self.sessions() as s:
            row = await s.get(Meta, name)
            if row is not None:
                return row.value
        try:
            async with self.sessions.begin() as s:
                s.add(Meta(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another process created it first; theirs wins
        async with self.sessions() as s:
            value = (await s.execute(select(Meta.value).where(Meta.name == name))).scalar_one()
            return str(value)


__all__ = ["Store"]
