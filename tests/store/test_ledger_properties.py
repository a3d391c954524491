"""Property-based tests of the money: hold − settle − refund = 0 for every finished task,
no balance below zero, nothing refunded twice — over random creates, completions,
failures, cancellations, crashes and retries."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from videogate.store import Store, records
from videogate.store.migrate import upgrade
from videogate.store.records import KeyRecord, TaskChange, TaskRecord
from videogate.store.tables import ApiKey, LedgerEntry, Task

Op = tuple[str, int, int]

ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["create", "create", "succeed", "fail", "expire", "cancel", "retry", "topup", "crash"]
        ),
        st.integers(min_value=0, max_value=7),  # which task
        st.integers(min_value=0, max_value=3_000_000),  # an amount in micros
    ),
    min_size=1,
    max_size=40,
)


# The slow tier (make test, not make test-fast): property-based runs of the ledger.
pytestmark = pytest.mark.slow


def new_task(key_id: str, hold: int) -> TaskRecord:
    now = time.time()
    return records.new_task(
        id=f"video_{uuid.uuid4().hex[:20]}",
        key_id=key_id,
        model="m",
        request={"model": "m", "prompt": "p"},
        created_at=now,
        deadline_at=now + 3600,
        next_run_at=now - 1,
        hold_micros=hold,
        currency="USD",
    )


async def balance(store: Store, key_id: str) -> int:
    async with store.sessions() as s:
        key = await s.get(ApiKey, key_id)
        assert key is not None and key.balance_micros is not None
        return key.balance_micros


async def run_ops(store: Store, sequence: list[Op], start_balance: int) -> None:
    key = KeyRecord(
        id="key_prop",
        name="",
        group="default",
        key_hash=uuid.uuid4().hex,
        key_prefix="vg-",
        balance_micros=start_balance,
        webhook_secret="w",
        created_at=time.time(),
    )
    key = await store.keys.insert(key)
    tasks: list[str] = []
    last_terminal: dict[str, tuple[str, int]] = {}
    topups = 0
    for op, index, amount in sequence:
        target = tasks[index % len(tasks)] if tasks else None
        if op == "create":
            task = new_task(key.id, amount)
            before = await balance(store, key.id)
            if await store.tasks.insert(task):
                tasks.append(task.id)
                assert await balance(store, key.id) == before - amount
            else:
                assert before < amount  # refused only when short, and nothing changed
                assert await balance(store, key.id) == before
                assert await store.tasks.get(task.id) is None
        elif op == "topup":
            await store.ledger.topup(key.id, amount)
            topups += amount
        elif target is not None and op in ("succeed", "fail", "expire", "cancel", "retry"):
            kind, charged = (
                (op, amount) if op != "retry" else last_terminal.get(target, ("fail", 0))
            )
            await finish(store, target, kind, charged)
            last_terminal.setdefault(target, (kind, charged))
        elif target is not None and op == "crash":
            # a worker claimed the task and died: its lease lapses, another takes over
            await store.tasks.claim_due("dead", 10, time.time(), lease=0.0)
        assert await balance(store, key.id) >= 0
    await check_books(store, key.id, start_balance, topups)


async def finish(store: Store, task_id: str, kind: str, charged: int) -> None:
    now = time.time()
    if kind == "cancel":
        task = await store.tasks.get(task_id)
        assert task is not None
        await store.tasks.cancel(task_id, task.key_id, now)
        return
    # a worker claims whatever is due (possibly a task another worker already finished)
    await store.tasks.claim_due("w", 50, now + 10_000, lease=30)
    task = await store.tasks.get(task_id)
    assert task is not None
    status = {"succeed": "succeeded", "fail": "failed", "expire": "expired"}[kind]
    await store.tasks.transition(
        task_id,
        "w",
        "queued",
        TaskChange(status=status, updated_at=now, completed_at=now, next_run_at=None),
        charged_micros=charged,
    )


async def check_books(store: Store, key_id: str, start: int, topups: int) -> None:
    async with store.sessions() as s:
        tasks = list((await s.execute(select(Task))).scalars())
        entries = list((await s.execute(select(LedgerEntry))).scalars())
        dupes = (
            await s.execute(
                select(LedgerEntry.task_id, LedgerEntry.kind, func.count())
                .where(LedgerEntry.task_id.is_not(None))
                .group_by(LedgerEntry.task_id, LedgerEntry.kind)
                .having(func.count() > 1)
            )
        ).all()
    assert dupes == []  # nothing held, settled or refunded twice
    by_task: dict[str, dict[str, int]] = {}
    for e in entries:
        if e.task_id:
            by_task.setdefault(e.task_id, {}).setdefault(e.kind, 0)
            by_task[e.task_id][e.kind] += e.amount_micros
    for task in tasks:
        money = by_task.get(task.id, {})
        held, settled, refunded = (money.get(k, 0) for k in ("hold", "settle", "refund"))
        assert held == task.hold_micros
        if task.status in ("succeeded", "failed", "cancelled", "expired"):
            assert held - settled - refunded == 0, (task.status, money)
            assert settled <= held
            if task.status != "succeeded":
                assert settled == 0 and task.billing_state == "refunded"
            else:
                assert task.billing_state == "settled" and settled == task.charged_micros
        else:
            assert settled == refunded == 0
    holds = sum(e.amount_micros for e in entries if e.kind == "hold")
    refunds = sum(e.amount_micros for e in entries if e.kind == "refund")
    assert await balance(store, key_id) == start + topups - holds + refunds


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=ops, start_balance=st.integers(min_value=0, max_value=5_000_000))
async def test_the_books_always_balance(sequence: list[Op], start_balance: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        await upgrade(url)
        store = Store.open(url)
        try:
            await run_ops(store, sequence, start_balance)
        finally:
            await store.close()
