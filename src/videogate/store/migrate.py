"""Apply Alembic migrations from code (``videogate migrate``, and on ``serve`` start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from videogate.store.db import create_engine_nopool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant shared by all videogate processes: serializes concurrent migrations.
MIGRATION_LOCK_ID = 0x76676D67


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade(database_url: str) -> None:
    """Bring the database at ``database_url`` to the newest schema."""
    # Processes started together on a new database must not race to create the schema:
    # PostgreSQL takes an advisory lock, SQLite a write lock from the start of the transaction.
    engine = create_engine_nopool(database_url, immediate=True)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # released when this transaction commits
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()
