"""Persistence: one :class:`Store` over SQLite or PostgreSQL."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from videogate.store.attempts import AttemptStore
from videogate.store.db import create_engine, session_factory
from videogate.store.files import FileStore
from videogate.store.keys import KeyStore
from videogate.store.ledger import LedgerStore
from videogate.store.reports import ReportStore
from videogate.store.routes import RouteStateStore
from videogate.store.tables import Meta
from videogate.store.tasks import TaskStore
from videogate.store.webhooks import WebhookStore


class Store:
    """The database, by concern: ``tasks``, ``keys``, ``files``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self.dialect = engine.dialect.name
        self.tasks = TaskStore(engine, self.sessions, dialect=self.dialect)
        self.keys = KeyStore(self.sessions)
        self.files = FileStore(self.sessions)
        self.attempts = AttemptStore(self.sessions)
        self.ledger = LedgerStore(self.sessions)
        self.route_state = RouteStateStore(self.sessions)
        self.webhooks = WebhookStore(self.sessions, dialect=self.dialect)
        self.reports = ReportStore(self.sessions, dialect=self.dialect)

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(create_engine(url))

    async def close(self) -> None:
        self.tasks.close()
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
