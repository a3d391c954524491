"""Group-committed creates on SQLite (``store/fastwrite.py``): creates that arrive in one
turn of the loop share one transaction, and each still gets its own outcome."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from store_support import make_key, make_task
from videogate.errors import AlreadyExists
from videogate.store import Store
from videogate.store.migrate import upgrade
from videogate.store.records import KeyRecord, TaskRecord
from videogate.store.tasks import UnfinishedCapReached


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path / 'group.db'}"
    await upgrade(url)
    s = Store.open(url)
    yield s
    await s.close()


async def key_with_balance(store: Store, micros: int) -> KeyRecord:
    key = KeyRecord(
        id=f"key_{uuid.uuid4().hex[:12]}",
        name="counted",
        group="default",
        key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        key_prefix="vg-x",
        balance_micros=micros,
        webhook_secret="whsec_x",
        created_at=time.time(),
    )
    key = await store.keys.insert(key)
    return key


def held(key_id: str, micros: int, idem: str | None = None) -> TaskRecord:
    task = make_task(key_id, idem=idem)
    return replace(task, hold_micros=micros, currency="USD", billing_state="held")


def commits(store: Store) -> list[str]:
    """The statements the in-loop writer runs from now on."""
    seen: list[str] = []
    writer = store.tasks._writer
    assert writer is not None
    writer._conn.set_trace_callback(seen.append)
    return seen


async def test_creates_of_one_turn_share_one_commit_with_their_own_outcomes(
    store: Store,
) -> None:
    rich, poor = await make_key(store, "rich"), await key_with_balance(store, 250)
    statements = commits(store)
    tasks = [held(rich.id, 100) for _ in range(5)] + [held(poor.id, 100) for _ in range(4)]
    outcomes = [
        stored is not None
        for stored in await asyncio.gather(*(store.tasks.insert(t) for t in tasks))
    ]
    # The rich key's five all pass; the poor key's balance covers two of its four.
    assert outcomes[:5] == [True] * 5
    assert sorted(outcomes[5:]) == [False, False, True, True]
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ]
    key = await store.keys.get(poor.id)
    assert key is not None and key.balance_micros == 50
    written = [t for t, ok in zip(tasks, outcomes, strict=True) if ok]
    for task in written:
        assert await store.tasks.get(task.id) is not None
    for task in (t for t, ok in zip(tasks, outcomes, strict=True) if not ok):
        assert await store.tasks.get(task.id) is None
    assert await store.tasks.count(poor.id) == 2


async def test_a_refused_create_in_a_batch_is_undone_alone(store: Store) -> None:
    key = await key_with_balance(store, 1_000)
    first = held(key.id, 100, idem="same")
    again = held(key.id, 100, idem="same")  # loses the race for the Idempotency-Key
    capped = [held(key.id, 100) for _ in range(4)]

    async def capped_insert(task: TaskRecord) -> bool | int:
        try:
            return await store.tasks.insert(task, max_unfinished=3) is not None
        except UnfinishedCapReached as exc:
            return exc.unfinished

    results = await asyncio.gather(
        store.tasks.insert(first),
        store.tasks.insert(again),
        *(capped_insert(t) for t in capped),
        return_exceptions=True,
    )
    assert results[0] == first
    assert isinstance(results[1], AlreadyExists)
    # Three unfinished at most: `first` is one, so two of the capped ones get in.
    assert sorted(results[2:], key=str) == [3, 3, True, True]
    # The refused ones took nothing: 1,000 - 3 holds of 100.
    stored = await store.keys.get(key.id)
    assert stored is not None and stored.balance_micros == 700
    assert await store.tasks.get(again.id) is None
    assert await store.tasks.count(key.id) == 3


async def test_a_failed_commit_fails_every_create_of_its_batch(store: Store) -> None:
    key = await make_key(store)
    # Another connection holds the write lock past the writer's patience.
    writer = store.tasks._writer
    assert writer is not None
    import videogate.store.fastwrite as fastwrite

    blocker = writer._conn.__class__(writer._path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    old = fastwrite.LOCK_WAIT_SECONDS
    fastwrite.LOCK_WAIT_SECONDS = 0.05
    try:
        results = await asyncio.gather(
            *(store.tasks.insert(held(key.id, 1)) for _ in range(3)), return_exceptions=True
        )
    finally:
        fastwrite.LOCK_WAIT_SECONDS = old
        blocker.execute("ROLLBACK")
        blocker.close()
    assert [type(r).__name__ for r in results] == ["ServiceUnavailable"] * 3
    # The writer is usable again once the lock is free.
    task = held(key.id, 1)
    assert await store.tasks.insert(task) == task
    assert (await store.tasks.get(task.id)) is not None


async def test_a_close_cancelled_while_writing_hints_still_disposes_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop cut short while the last callback hints are written (a writer waiting on
    the lock) still closes the engine's pooled aiosqlite connections."""
    url = f"sqlite:///{tmp_path / 'closing.db'}"
    await upgrade(url)
    s = Store.open(url)
    await make_key(s)  # a connection in the pool
    writing = asyncio.Event()

    async def hints_written() -> None:
        writing.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(s.tasks, "hints_written", hints_written)
    closing = asyncio.create_task(s.close())
    await writing.wait()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    # Disposed: no connection is left in a pool (a new, empty one replaced it).
    assert s.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
