"""A create's write on both backends (the in-loop writer on SQLite, one statement on
PostgreSQL's hot pool): holds exact under concurrency, a refused create writes nothing,
the outbox row and the stored values as the session path wrote them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store_support import make_task, migrated_store
from videogate.errors import AlreadyExists
from videogate.store import Store
from videogate.store.records import KeyRecord
from videogate.store.tables import LedgerEntry, Task, TaskEvent
from videogate.store.tasks import UnfinishedCapReached

HOLD = 1_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path, "vg_creates_w") as s:
        yield s


async def key_with_balance(store: Store, balance: int | None) -> KeyRecord:
    return await store.keys.insert(
        KeyRecord(
            id=f"key_{uuid.uuid4().hex[:12]}",
            name="w",
            group="default",
            key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
            key_prefix="vg-x",
            balance_micros=balance,
            webhook_secret="whsec_x",
            created_at=time.time(),
        )
    )


async def holds(store: Store, key_id: str) -> int:
    async with store.sessions() as s:
        stmt = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.key_id == key_id)
        return int((await s.execute(stmt)).scalar_one())


async def test_concurrent_holds_never_overdraw_the_balance(store: Store) -> None:
    key = await key_with_balance(store, 5 * HOLD)
    tasks = [replace(make_task(key.id), hold_micros=HOLD) for _ in range(8)]
    results = await asyncio.gather(*(store.tasks.insert(t) for t in tasks))
    assert sum(r is not None for r in results) == 5
    after = await store.keys.get(key.id)
    assert after is not None and after.balance_micros == 0
    assert await holds(store, key.id) == 5
    # A refused create wrote nothing: only the five are stored.
    assert await store.tasks.count(key.id) == 5


async def test_the_balance_is_checked_before_the_cap(store: Store) -> None:
    key = await key_with_balance(store, HOLD)
    assert await store.tasks.insert(replace(make_task(key.id), hold_micros=HOLD), max_unfinished=1)
    # No balance left: refused for the balance (None), not for the full cap.
    refused = await store.tasks.insert(replace(make_task(key.id), hold_micros=HOLD))
    assert refused is None
    free = make_task(key.id)  # no hold: the cap refuses it, and undoes its zero hold
    with pytest.raises(UnfinishedCapReached) as full:
        await store.tasks.insert(free, max_unfinished=1)
    assert full.value.unfinished == 1
    assert await holds(store, key.id) == 1
    assert await store.tasks.get(free.id) is None


async def test_a_lost_idempotency_race_takes_no_hold(store: Store) -> None:
    key = await key_with_balance(store, 10 * HOLD)
    twins = [replace(make_task(key.id, idem="same"), hold_micros=HOLD) for _ in range(2)]
    outcomes = await asyncio.gather(*(store.tasks.insert(t) for t in twins), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyExists", "TaskRecord"]
    assert any(isinstance(o, AlreadyExists) for o in outcomes)
    after = await store.keys.get(key.id)
    assert after is not None and after.balance_micros == 9 * HOLD
    assert await holds(store, key.id) == 1


async def test_a_created_task_reads_back_as_written(store: Store) -> None:
    key = await key_with_balance(store, None)
    task = replace(
        make_task(key.id),
        hold_micros=HOLD,
        callback_url="https://example.test/hook",
        request={"model": "sandbox", "prompt": "ünïcode \u2603", "nested": {"a": [1, 2.5]}},
        price={"per_second_micros": 10},
    )
    assert await store.tasks.insert(task) == task
    assert await store.tasks.get(task.id) == task
    async with store.sessions() as s:
        events = await s.execute(select(TaskEvent.status).where(TaskEvent.task_id == task.id))
        assert events.scalars().all() == ["queued"]
        # An absent JSON value is SQL NULL, as the other writers store it.
        none = await s.scalar(
            select(func.count()).select_from(Task).where(Task.upstream_result.is_(None))
        )
        assert none == 1
    after = await store.keys.get(key.id)
    assert after is not None and after.balance_micros is None  # unlimited stays unlimited
