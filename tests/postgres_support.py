"""Shared by the tests that also run on PostgreSQL (``postgres`` marker): the server's
admin URL and a new, empty database per test, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DOWN = "PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)"


async def pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextlib.asynccontextmanager
async def new_database(prefix: str) -> AsyncIterator[str]:
    """The URL of a new database named ``prefix_<random>``, dropped afterwards (with any
    connection still open); the test fails when the server is down."""
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError):
        pytest.fail(PG_DOWN)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
