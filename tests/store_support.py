"""Shared by the store tests: a migrated store on either backend, an API key and a new task
record with test defaults."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from db_template import copy_migrated_sqlite
from postgres_support import new_database
from videogate.store import Store
from videogate.store.migrate import upgrade
from videogate.store.records import KeyRecord, TaskRecord, new_task


@contextlib.asynccontextmanager
async def migrated_store(backend: str, tmp_path: Path, name: str) -> AsyncIterator[Store]:
    """A store at the newest schema: ``name``.db in ``tmp_path`` on SQLite, a new database
    ``name``_<random> on PostgreSQL (dropped afterwards)."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            copy_migrated_sqlite(tmp_path / f"{name}.db")
            url = f"sqlite:///{tmp_path / name}.db"
        else:
            url = await stack.enter_async_context(new_database(name))
        await upgrade(url)  # on SQLite the copy is at head: this checks and does nothing
        store = Store.open(url)
        try:
            yield store
        finally:
            await store.close()


async def make_key(store: Store, name: str = "k") -> KeyRecord:
    key = KeyRecord(
        id=f"key_{uuid.uuid4().hex[:12]}",
        name=name,
        group="default",
        key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        key_prefix="vg-x",
        balance_micros=None,
        webhook_secret="whsec_x",
        created_at=time.time(),
    )
    key = await store.keys.insert(key)
    return key


def make_task(
    key_id: str,
    *,
    created: float | None = None,
    due: float | None = 0.0,
    status: str = "queued",
    idem: str | None = None,
) -> TaskRecord:
    now = created if created is not None else time.time()
    return new_task(
        id=f"video_{uuid.uuid4().hex[:20]}",
        key_id=key_id,
        model="sandbox",
        status=status,
        request={"model": "sandbox", "prompt": "p"},
        created_at=now,
        deadline_at=now + 3600,
        next_run_at=due,
        idempotency_key=idem,
        request_hash="h" if idem else None,
    )
