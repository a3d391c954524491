"""A migrated SQLite database made once per test process, copied for each test.

Running the Alembic migrations costs tens of milliseconds of CPU per database; across the
unit tier that is most of the start-up cost of an in-process app. Each process (each xdist
worker) migrates one template file the first time a test needs a database, and every test
gets its own copy. Start-up still runs ``upgrade``, which finds the copy at head. Tests of
the migrations themselves call ``upgrade`` on empty databases and do not use this."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path

from videogate.settings import Settings
from videogate.store.migrate import upgrade


@functools.cache  # once per process: the template is read-only after it is made
def _template() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="videogate-template-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "template.db"
    # A thread of its own: callers may be inside a running event loop (async tests).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, upgrade(f"sqlite:///{path}")).result()
    # Fold the WAL into the main file so a copy of that one file is the whole database.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def copy_migrated_sqlite(path: Path) -> None:
    """Put a migrated database at ``path`` unless one is there already (a second app on the
    same data directory must see the first one's data)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), path)


def seed_database(settings: Settings) -> Settings:
    """Give ``settings`` a migrated database if it uses the default SQLite file."""
    if not settings.database_url:
        copy_migrated_sqlite(settings.data_dir / "videogate.db")
    return settings
