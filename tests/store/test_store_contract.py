"""The store contract: the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from store_support import make_key, make_task, migrated_store
from videogate.errors import AlreadyExists
from videogate.store import Store
from videogate.store.migrate import upgrade
from videogate.store.records import TaskChange


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path, "vg_contract") as s:
        yield s


async def test_task_is_visible_only_to_its_key(store: Store) -> None:
    a, b = await make_key(store, "a"), await make_key(store, "b")
    task = make_task(a.id)
    await store.tasks.insert(task)
    got = await store.tasks.get(task.id, a.id)
    assert got is not None and got.request == {"model": "sandbox", "prompt": "p"}
    assert await store.tasks.get(task.id, b.id) is None
    assert await store.tasks.page(b.id, limit=10) == []


async def test_list_orders_and_pages_with_a_cursor(store: Store) -> None:
    key = await make_key(store)
    base = time.time()
    tasks = [make_task(key.id, created=base + i) for i in range(7)]
    for t in tasks:
        await store.tasks.insert(t)
    ids = [t.id for t in tasks]
    first = await store.tasks.page(key.id, limit=3)
    assert [t.id for t in first] == ids[::-1][:3]
    rest = await store.tasks.page(key.id, limit=10, after=first[-1].id)
    assert [t.id for t in rest] == ids[::-1][3:]
    asc = await store.tasks.page(key.id, limit=2, order="asc", after=ids[1])
    assert [t.id for t in asc] == ids[2:4]
    assert await store.tasks.count(key.id) == 7
    assert await store.tasks.count(key.id, statuses=["failed"]) == 0


async def test_search_by_prompt_or_id_and_daily_reports(store: Store) -> None:
    key = await make_key(store)
    base = 1_750_000_000.0  # a fixed day, so the day buckets are known
    prompts = ["A Red Fox", "a cat", "100%_done", "Ünïcode fox"]
    tasks = [
        replace(
            make_task(key.id, created=base + i * 3600), request={"model": "sandbox", "prompt": p}
        )
        for i, p in enumerate(prompts)
    ]
    for t in tasks:
        await store.tasks.insert(t)

    async def found(text: str) -> list[str]:
        return [t.id for t in await store.tasks.page(key.id, limit=10, search=text)]

    assert await found("fox") == [tasks[3].id, tasks[0].id]
    assert await found("RED") == [tasks[0].id]
    assert await found("Ünï") == [tasks[3].id]
    assert await found("%") == [tasks[2].id]
    assert await found("_") == [tasks[2].id]
    assert await found(tasks[1].id) == [tasks[1].id]
    assert await found("dog") == []

    rows = await store.reports.daily_usage(key_id=key.id, since=base - 86_400)
    assert [(r.day, r.model, r.tasks) for r in rows] == [(1_749_945_600, "sandbox", 4)]
    assert await store.reports.status_counts() == {"queued": 4}


async def test_idempotency_key_is_unique_per_key(store: Store) -> None:
    key, other = await make_key(store), await make_key(store)
    await store.tasks.insert(make_task(key.id, idem="abc"))
    await store.tasks.insert(make_task(other.id, idem="abc"))  # another key may reuse it
    found = await store.tasks.by_idempotency(key.id, "abc")
    assert found is not None and found.key_id == key.id
    # The constraint violation comes back in our words, never as a driver exception.
    with pytest.raises(AlreadyExists):
        await store.tasks.insert(make_task(key.id, idem="abc"))


async def test_claim_takes_only_due_unleased_tasks(store: Store) -> None:
    key = await make_key(store)
    now = time.time()
    due = make_task(key.id, due=now - 1)
    later = make_task(key.id, due=now + 3600)
    done = make_task(key.id, due=None, status="succeeded")
    for t in (due, later, done):
        await store.tasks.insert(t)
    claimed = await store.tasks.claim_due("w1", 10, now, lease=30)
    assert [t.id for t in claimed] == [due.id]
    assert claimed[0].lease_owner == "w1"
    assert await store.tasks.claim_due("w2", 10, now, lease=30) == []
    # the lease lapses: another worker takes the task over
    again = await store.tasks.claim_due("w2", 10, now + 31, lease=30)
    assert [t.id for t in again] == [due.id]
    assert again[0].steps == 2


async def test_concurrent_claimers_never_share_a_task(store: Store) -> None:
    key = await make_key(store)
    now = time.time()
    for i in range(40):
        await store.tasks.insert(make_task(key.id, due=now - 100 + i))
    seen: list[str] = []

    async def claimer(name: str) -> None:
        while True:
            got = await store.tasks.claim_due(name, 3, now, lease=300)
            if not got:
                return
            seen.extend(t.id for t in got)

    await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    assert len(seen) == 40 and len(set(seen)) == 40


async def test_transition_is_compare_and_set(store: Store) -> None:
    key = await make_key(store)
    task = make_task(key.id)
    await store.tasks.insert(task)
    now = time.time()
    await store.tasks.claim_due("w1", 1, now, lease=30)
    running = TaskChange(status="running")
    assert not await store.tasks.transition(task.id, "w2", "queued", running)
    assert not await store.tasks.transition(task.id, "w1", "running", TaskChange(status="failed"))
    assert await store.tasks.transition(
        task.id,
        "w1",
        "queued",
        TaskChange(status="running", upstream_id="up-1", next_run_at=now + 5),
    )
    got = await store.tasks.get(task.id)
    assert got is not None
    assert (got.status, got.upstream_id, got.lease_owner) == ("running", "up-1", None)


async def test_a_reschedule_is_compare_and_set_too(store: Store) -> None:
    """A step that keeps the status (a poll's reschedule; SQLite writes it in one
    statement): held by its owner, in the expected status, and not made due meanwhile."""
    key = await make_key(store)
    task = replace(make_task(key.id), price={"per_second_micros": 5, "currency": "USD"})
    await store.tasks.insert(task)
    now = time.time()
    (claimed,) = await store.tasks.claim_due("w1", 1, now, lease=30)
    assert claimed.request == task.request and claimed.price == task.price  # JSON decoded
    assert not await store.tasks.transition(
        task.id, "w2", "queued", TaskChange(next_run_at=now + 1)
    )
    assert not await store.tasks.transition(
        task.id, "w1", "running", TaskChange(next_run_at=now + 1)
    )
    # a callback moved next_run_at meanwhile: the poll's reschedule must not undo it
    stale = claimed.next_run_at + 1 if claimed.next_run_at is not None else now
    assert not await store.tasks.transition(
        task.id, "w1", "queued", TaskChange(next_run_at=now + 9), if_next_run_at=stale
    )
    assert await store.tasks.transition(
        task.id,
        "w1",
        "queued",
        TaskChange(
            upstream_result={"video_url": "https://x/v.mp4"}, errors_in_a_row=2, next_run_at=now + 5
        ),
        if_next_run_at=claimed.next_run_at,
        release=False,
    )
    got = await store.tasks.get(task.id)
    assert got is not None
    assert (got.status, got.lease_owner, got.errors_in_a_row, got.next_run_at) == (
        "queued",
        "w1",
        2,
        now + 5,
    )
    assert got.upstream_result == {"video_url": "https://x/v.mp4"}
    assert await store.tasks.transition(task.id, "w1", "queued", TaskChange(next_run_at=None))
    got = await store.tasks.get(task.id)
    assert got is not None and (got.lease_owner, got.lease_until, got.next_run_at) == (
        None,
        None,
        None,
    )
    assert not await store.tasks.transition(
        task.id, "w1", "queued", TaskChange(next_run_at=now)
    )  # released


async def test_a_submit_reads_attempts_group_breakers_and_load_at_once(store: Store) -> None:
    key = await make_key(store)
    task, other = make_task(key.id), make_task(key.id)
    for t in (task, other):
        await store.tasks.insert(t)
    now = time.time()
    empty = await store.attempts.submit_view(task.id, key.id, ["r1", "r2"])
    assert (empty.attempts, empty.group, empty.benched_until, empty.in_flight) == (
        [],
        "default",
        {},
        {},
    )
    first = await store.attempts.reserve(task.id, "r1", "ark", 5, now=now)
    second = await store.attempts.reserve(task.id, "r2", "ark", 5, now=now + 1)
    assert first is not None and second is not None
    await store.attempts.finish(first.id, "failed", error_code="x")
    await store.route_state.failure("r2", "boom", now, threshold=1, cooldown=60)
    (claimed,) = await store.tasks.claim_due("w1", 1, now, lease=30)
    assert await store.tasks.transition(
        claimed.id, "w1", "queued", TaskChange(status="running", route="r1")
    )
    view = await store.attempts.submit_view(task.id, key.id, ["r1", "r2", "r3"])
    assert [(a.id, a.route, a.state) for a in view.attempts] == [
        (first.id, "r1", "failed"),
        (second.id, "r2", "submitting"),
    ]
    assert view.group == "default" and view.benched_until.get("r1") is None
    assert view.benched_until["r2"] == now + 60 and "r3" not in view.benched_until
    assert view.in_flight == {"r1": 1}
    assert (await store.attempts.submit_view(other.id, "key_gone", [])).group is None


async def test_adopt_runs_the_task_and_ends_its_attempt_in_one_write(store: Store) -> None:
    key = await make_key(store)
    task, cancelled = make_task(key.id), make_task(key.id)
    for t in (task, cancelled):
        await store.tasks.insert(t)
    now = time.time()
    await store.route_state.failure("r1", "boom", now, threshold=3, cooldown=60)
    claimed = await store.tasks.claim_due("w1", 2, now, lease=30)
    assert len(claimed) == 2
    attempt = await store.attempts.reserve(task.id, "r1", "ark", 5, owner="w1", now=now)
    assert attempt is not None
    running = TaskChange(status="running", route="r1", upstream_id="up-1", next_run_at=now + 1)
    assert not await store.tasks.adopt(  # not held by w2: nothing changes
        task.id, "w2", running, route="r1", upstream_id="up-1", attempt_id=None, now=now
    )
    assert await store.tasks.adopt(
        task.id, "w1", running, route="r1", upstream_id="up-1", attempt_id=attempt.id, now=now
    )
    got = await store.tasks.get(task.id)
    assert got is not None
    assert (got.status, got.upstream_id, got.lease_owner) == ("running", "up-1", None)
    [done] = await store.attempts.for_task(task.id)
    assert (done.state, done.upstream_id) == ("submitted", "up-1")
    state = (await store.route_state.all())["r1"]
    assert (state.consecutive_failures, state.last_success_at) == (0, now)
    # Cancelled while it was being submitted: the job is kept on the task, to be stopped.
    assert await store.tasks.cancel(cancelled.id, key.id, now)
    assert not await store.tasks.adopt(
        cancelled.id, "w1", running, route="r2", upstream_id="up-2", attempt_id=None, now=now
    )
    got = await store.tasks.get(cancelled.id)
    assert got is not None
    assert (got.status, got.route, got.upstream_id, got.next_run_at) == (
        "cancelled",
        "r2",
        "up-2",
        now,
    )
    assert (await store.route_state.all())["r2"].last_success_at == now


async def test_cancel_only_touches_unfinished_tasks(store: Store) -> None:
    key = await make_key(store)
    queued, finished = make_task(key.id), make_task(key.id, status="succeeded", due=None)
    for t in (queued, finished):
        await store.tasks.insert(t)
    assert await store.tasks.cancel(queued.id, key.id, time.time())
    assert not await store.tasks.cancel(finished.id, key.id, time.time())
    got = await store.tasks.get(queued.id)
    assert got is not None and got.status == "cancelled" and got.next_run_at is None
    # a worker that held it can no longer move it
    assert not await store.tasks.transition(queued.id, "w1", "queued", TaskChange(status="running"))


async def test_lease_renewal_keeps_the_task(store: Store) -> None:
    key = await make_key(store)
    task = make_task(key.id)
    await store.tasks.insert(task)
    now = time.time()
    await store.tasks.claim_due("w1", 1, now, lease=10)
    assert await store.tasks.renew("w1", [task.id], now + 100) == 1
    assert await store.tasks.renew("w2", [task.id], now + 100) == 0
    assert await store.tasks.claim_due("w2", 1, now + 50, lease=10) == []


async def test_keys_hash_lookup_and_revoke(store: Store) -> None:
    key = await make_key(store)
    found = await store.keys.by_hash(key.key_hash)
    assert found is not None and found.id == key.id
    assert await store.keys.count_active() == 1
    assert await store.keys.revoke(key.id, time.time())
    assert not await store.keys.revoke(key.id, time.time())
    assert await store.keys.count_active() == 0


async def test_shared_secret_is_created_once(store: Store) -> None:
    first = await store.shared_secret("s")
    assert len(first) == 64
    assert await store.shared_secret("s") == first
    assert await store.shared_secret("other") != first


async def test_a_commit_in_another_process_wakes_a_sqlite_worker(tmp_path: Path) -> None:
    """SQLite has no NOTIFY: a worker waiting for work returns from ``committed_elsewhere``
    once another connection (another process's store) commits, not before."""
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    await upgrade(url)
    worker, api = Store.open(url), Store.open(url)
    try:
        key = await make_key(api)
        waiting = asyncio.create_task(worker.tasks.committed_elsewhere(interval=0.001))
        for _ in range(20):  # it keeps waiting while nobody writes
            await asyncio.sleep(0.001)
        assert not waiting.done()
        await api.tasks.insert(make_task(key.id))
        await asyncio.wait_for(waiting, 30)
    finally:
        await worker.close()
        await api.close()
