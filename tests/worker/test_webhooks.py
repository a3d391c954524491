"""Webhooks we send (API.md §5): signed, ordered, retried, logged, and guarded against SSRF."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from clocks import FakeClock
from conftest import free_port, wait_for_status
from postgres_support import PG_ADMIN
from store_support import migrated_store
from videogate.fetch import UrlGuard
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.store import Store
from videogate.store.migrate import upgrade
from videogate.store.records import new_task
from videogate.store.tables import ApiKey, Task, TaskEvent, WebhookAttempt
from videogate.worker.webhooks import WebhookDeliverer, retry_delay, task_as_of
from webhook_support import (
    HANG,
    TIMEOUT,
    Api,
    Receiver,
    api,
    make_settings,
    open_api,
    receiver,
    receiver_server,
    settings,
    settled,
)

MODEL = "sandbox"
__all__ = ["api", "receiver", "settings"]  # fixtures


# The slow tier (make test, not make test-fast): webhook delivery end to end to a live receiver.
pytestmark = pytest.mark.slow


async def create(api: Api, callback_url: str | None, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {
        "model": MODEL,
        "prompt": "a lighthouse at dusk",
        "duration": 4,
        "resolution": "480p",
        **body,
    }
    if callback_url is not None:
        payload["callback_url"] = callback_url
    return await api.client.post("/v1/videos", json=payload, headers=api.auth)


def collapse(statuses: list[str]) -> list[str]:
    """Drop immediate repeats (retries of one event): the order the client saw."""
    out: list[str] = []
    for s in statuses:
        if not out or out[-1] != s:
            out.append(s)
    return out


async def cli_webhooks(settings: Settings, *args: str) -> list[dict[str, Any]]:
    """``videogate webhooks --json …`` in-process (in a thread: the command runs its own
    event loop), against this test's data dir."""
    from videogate.cli.main import app as cli

    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["webhooks", "--json", *args],
        env={"VIDEOGATE_DATA_DIR": str(settings.data_dir), "VIDEOGATE_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


# The flow ---------------------------------------------------------------------------------


async def test_webhooks_arrive_signed_in_order_despite_failures(
    api: Api, receiver: Receiver, settings: Settings
) -> None:
    receiver.script = [500, 500, HANG]  # the first event fails three times, then gets through
    started = api.clock.now()
    r = await create(api, receiver.url)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    done = await wait_for_status(api.client, task_id, api.auth)
    assert done["status"] == "completed"
    events = await settled(api, task_id)

    got = list(receiver.got)
    assert got and all(g.verified for g in got), [g.headers for g in got if not g.verified]
    assert all(g.payload["id"] == task_id for g in got)
    # Each status once from the client's point of view, in order; retries repeat the same id.
    assert collapse([g.status for g in got]) == ["queued", "in_progress", "completed"]
    acked = receiver.acked()
    assert [g.status for g in acked] == ["queued", "in_progress", "completed"]
    assert len({g.id for g in acked}) == 3  # each event acknowledged once: nothing duplicated
    first = [g for g in got if g.id == acked[0].id]
    assert [g.answered for g in first] == [500, 500, HANG, 200]
    assert {g.status for g in first} == {"queued"}
    assert len({g.headers["webhook-signature"] for g in first}) >= 1
    for g in got:
        assert g.headers["content-type"] == "application/json"
        assert g.id.startswith(f"evt_{task_id}_")
        assert started <= int(g.headers["webhook-timestamp"]) <= api.clock.now()

    # The bodies are the relay task object as of each event.
    queued, in_progress, completed = (g.payload for g in acked)
    assert queued["progress"] == 0 and queued["error"] is None and queued["video_url"] is None
    assert queued["billing_detail"]["state"] == "held"
    assert in_progress["video_url"] is None and in_progress["completed_at"] is None
    assert completed["video_url"] and completed["progress"] == 100
    assert completed["billing_detail"] == done["billing_detail"]
    # Signed URLs carry their window's expiry: the webhook and the later GET may fall in
    # different windows, so they are compared without them.
    signed = ("video_url", "url", "expires_at", "thumbnail_url", "last_frame_url")
    assert {k: v for k, v in completed.items() if k not in signed} == {
        k: v for k, v in done.items() if k not in signed
    }
    assert bool(completed["thumbnail_url"]) == bool(done["thumbnail_url"])
    video = await api.client.get(str(completed["video_url"]))
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"

    # The outbox: queued, running, fetching (skipped: still in_progress), succeeded.
    assert [(e.status, e.state) for e in events] == [
        ("queued", "delivered"),
        ("running", "delivered"),
        ("fetching", "skipped"),
        ("succeeded", "delivered"),
    ]
    assert events[0].attempts == 4

    # The attempt log, as `videogate webhooks` shows it: one row per request sent.
    rows = await cli_webhooks(settings, "--task", task_id)
    assert len(rows) == len(got)
    rows.reverse()  # newest first → oldest first
    assert [r["status_code"] for r in rows[:4]] == [500, 500, None, 200]
    assert rows[2]["error"] == f"timed out after {TIMEOUT:g} s"
    assert rows[2]["duration_ms"] >= TIMEOUT * 1000 * 0.9
    assert all(r["url"] == receiver.url and r["task_id"] == task_id for r in rows)
    assert [r["webhook_id"] for r in rows] == [g.id for g in got]
    assert [r["event_status"] for r in rows[-2:]] == ["running", "succeeded"]
    assert all(r["event_state"] == "delivered" for r in rows)
    assert (await cli_webhooks(settings, "--limit", "2"))[0]["id"] == rows[-1]["id"]
    assert await cli_webhooks(settings, "--task", "video_nope") == []


async def test_a_failed_task_sends_failed_with_its_error(api: Api, receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/gone.png"  # nothing listens: the task fails
    item = {"type": "image_url", "image_url": {"url": dead}, "role": "first_frame"}
    r = await create(api, receiver.url, content=[item])
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    events = await settled(api, task_id)
    assert [(e.status, e.state) for e in events] == [("failed", "delivered")]
    [got] = receiver.got
    assert got.verified and got.status == "failed"
    assert got.payload["error"]["code"] == "reference_unreachable"
    assert "image 1" in got.payload["error"]["message"]
    assert got.payload["billing_detail"]["state"] == "refunded"


async def test_a_cancelled_task_sends_failed_with_cancelled(settings: Settings) -> None:
    with receiver_server() as receiver:
        # No worker: the task stays queued until cancelled; a deliverer is run by hand.
        async with open_api(settings, run_worker=False) as api:
            receiver.secret = api.key.webhook_secret
            r = await create(api, receiver.url)
            task_id = r.json()["id"]
            cancelled = await api.client.delete(f"/v1/videos/{task_id}", headers=api.auth)
            assert cancelled.status_code == 200, cancelled.text
            deliverer = WebhookDeliverer(api.state.ctx)
            while await deliverer.deliver_due():
                pass
            events = await api.state.ctx.store.webhooks.events(task_id)
    assert [(e.status, e.state) for e in events] == [
        ("queued", "delivered"),
        ("cancelled", "delivered"),
    ]
    assert [g.status for g in receiver.got] == ["queued", "failed"]
    assert all(g.verified for g in receiver.got)
    error = receiver.got[1].payload["error"]
    assert error["code"] == "cancelled" and "cancelled" in error["message"]


async def test_an_unanswered_event_is_given_up_after_the_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, webhook_max_attempts=3)
    with receiver_server() as receiver:
        receiver.always = 503
        async with open_api(settings) as api:
            receiver.secret = api.key.webhook_secret
            task_id = (await create(api, receiver.url)).json()["id"]
            assert (await wait_for_status(api.client, task_id, api.auth))["status"] == "completed"
            events = await settled(api, task_id)
            logged = await api.state.ctx.store.webhooks.attempts(task_id=task_id, limit=100)
    # Nothing was acknowledged, so every event was tried (a later one is not held back by a
    # given-up one) three times, then given up.
    assert [e.status for e in events] == ["queued", "running", "fetching", "succeeded"]
    assert all(e.state == "failed" and e.attempts == 3 for e in events)
    assert len(receiver.got) == 3 * len(events) == len(logged)
    assert all(g.verified and g.answered == 503 for g in receiver.got)
    assert collapse([g.id for g in receiver.got]) == [
        f"evt_{task_id}_{e.id}" for e in events
    ]  # in order, each event's retries together
    assert {row.event_state for row in logged} == {"failed"}
    assert {row.attempt.status_code for row in logged} == {503}


# SSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1, a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a cloud metadata address"),
        ("http://[::1]:8080/hook", "::1, a loopback address"),
        ("ftp://example.com/hook", "ftp"),
    ],
)
async def test_private_callback_urls_are_refused_at_create(
    api: Api, url: str, why: str, receiver: Receiver
) -> None:
    api.state.ctx.guard = UrlGuard(allow_private=False)  # settings stay frozen
    r = await create(api, url)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "callback_url" and error["type"] == "invalid_request_error"
    assert error["message"].startswith("callback_url: ") and why in error["message"]
    if "address" in why:
        assert "callback_url must be a public http(s) URL" in error["message"]
        assert "references" not in error["message"]
    listed = await api.client.get("/v1/videos", headers=api.auth)
    assert listed.json()["data"] == []  # nothing was written
    assert receiver.got == []


async def test_metadata_callback_refused_even_when_private_urls_are_allowed(api: Api) -> None:
    assert api.state.ctx.settings.allow_private_urls
    r = await create(api, "http://169.254.169.254/latest/meta-data/iam/")
    assert r.status_code == 400
    assert "cloud metadata" in r.json()["error"]["message"]
    ok = await create(api, "http://127.0.0.1:9/hook")  # loopback is fine in this mode
    assert ok.status_code == 200, ok.text


async def test_a_url_refused_at_delivery_is_given_up_at_once(settings: Settings) -> None:
    with receiver_server() as receiver:
        async with open_api(settings, run_worker=False) as api:
            receiver.secret = api.key.webhook_secret
            task_id = (await create(api, receiver.url)).json()["id"]
            # By delivery time the guard says otherwise (e.g. the name now resolves to a
            # private address): a failed attempt is logged, the event given up, no retry.
            api.state.ctx.guard = UrlGuard(allow_private=False)
            assert await WebhookDeliverer(api.state.ctx).deliver_due() == 1
            store = api.state.ctx.store
            [event] = await store.webhooks.events(task_id)
            [logged] = await store.webhooks.attempts(task_id=task_id)
            assert await WebhookDeliverer(api.state.ctx).deliver_due() == 0
    assert event.state == "failed" and event.attempts == 1
    assert logged.attempt.status_code is None and logged.event_status == "queued"
    assert logged.attempt.error is not None and "loopback address" in logged.attempt.error
    assert receiver.got == []


async def test_connection_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, webhook_retry_base_seconds=5)
    clock = FakeClock(start=float(round(time.time())))  # whole seconds: exact sums
    port = free_port()  # nothing listens yet
    async with open_api(settings, run_worker=False, clock=clock) as api:
        task_id = (await create(api, f"http://127.0.0.1:{port}/hook")).json()["id"]
        deliverer = WebhookDeliverer(api.state.ctx)
        assert await deliverer.deliver_due() == 1
        [event] = await api.state.ctx.store.webhooks.events(task_id)
        [logged] = await api.state.ctx.store.webhooks.attempts(task_id=task_id)
        clock.advance(4.5)
        assert await deliverer.deliver_due() == 0  # not due before the backoff
        clock.advance(0.5)
        assert await deliverer.deliver_due() == 1  # due when it ends
        [again] = await api.state.ctx.store.webhooks.events(task_id)
    assert event.state == "pending" and event.attempts == 1 and event.lease_until is None
    assert event.next_attempt_at == logged.attempt.created_at + retry_delay(5, 1)
    assert logged.attempt.error == "connection refused"
    assert again.state == "pending" and again.attempts == 2
    assert again.next_attempt_at == clock.now() + retry_delay(5, 2)
    assert retry_delay(5, 1) == 5 and retry_delay(5, 3) == 20 and retry_delay(5, 30) == 3600


async def test_webhook_secrets_are_standard_base64(api: Api) -> None:
    for _ in range(50):  # URL-safe characters would break (or silently change) the key
        secret = (await create_key(api.state.ctx.store)).webhook_secret
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24


async def test_an_unusable_legacy_secret_gives_the_event_up(settings: Settings) -> None:
    async with open_api(settings, run_worker=False) as api:
        task_id = (await create(api, "http://127.0.0.1:9/hook")).json()["id"]
        async with api.state.ctx.store.sessions.begin() as s:
            key = await s.get(ApiKey, api.key.id)
            assert key is not None
            key.webhook_secret = "whsec_" + "A" * 28 + "-_x"  # an old URL-safe secret
        assert await WebhookDeliverer(api.state.ctx).deliver_due() == 1
        [event] = await api.state.ctx.store.webhooks.events(task_id)
        [logged] = await api.state.ctx.store.webhooks.attempts(task_id=task_id)
    assert event.state == "failed"
    assert logged.attempt.error is not None and "not valid base64" in logged.attempt.error


def test_the_body_is_the_task_as_of_the_event() -> None:
    task = replace(
        new_task(
            id="video_x",
            key_id="key_x",
            model="m",
            request={},
            status="succeeded",
            created_at=5.0,
            updated_at=50.0,
            completed_at=40.0,
            deadline_at=60.0,
        ),
        progress=100,
        billing_state="settled",
    )
    queued = task_as_of(task, "queued", 10.0)
    assert (queued.status, queued.progress, queued.updated_at) == ("queued", 0, 10.0)
    assert queued.completed_at is None and queued.billing_state == "held"
    running = task_as_of(task, "fetching", 20.0)
    assert running.progress == 99
    final = task_as_of(task, "succeeded", 40.0)
    assert (final.progress, final.completed_at, final.billing_state) == (100, 40.0, "settled")
    assert task.status == "succeeded" and task.updated_at == 50.0  # the original is untouched


# The outbox queries, on SQLite and PostgreSQL ----------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with migrated_store(request.param, tmp_path, "vg_hooks") as s:
        yield s


async def add_task_with_events(store: Store, task_id: str, statuses: list[str]) -> list[int]:
    now = time.time()
    async with store.sessions.begin() as s:
        key_id = f"key_{uuid.uuid4().hex[:12]}"
        s.add(
            ApiKey(
                id=key_id,
                key_hash=uuid.uuid4().hex,
                key_prefix="vg-x",
                webhook_secret="whsec_x",
                created_at=now,
            )
        )
        await s.flush()
        s.add(
            Task(
                id=task_id,
                key_id=key_id,
                model="m",
                status="queued",
                request={},
                created_at=now,
                updated_at=now,
                deadline_at=now + 60,
                callback_url="https://example.com/hook",
            )
        )
        await s.flush()
        events = [
            TaskEvent(task_id=task_id, status=st, created_at=now, next_attempt_at=now)
            for st in statuses
        ]
        s.add_all(events)
        await s.flush()
        return [e.id for e in events]


async def test_claims_follow_each_tasks_order_and_respect_leases(store: Store) -> None:
    a = await add_task_with_events(store, "video_a", ["queued", "running", "succeeded"])
    b = await add_task_with_events(store, "video_b", ["queued"])
    hooks = store.webhooks
    now = time.time()

    claimed = await hooks.claim_due(now, 10, lease=30)
    assert [e.id for e in claimed] == [a[0], b[0]]  # only the first of each task
    assert all(e.attempts == 1 and e.lease_until == now + 30 for e in claimed)
    assert await hooks.claim_due(now, 10, lease=30) == []  # held, and a[1] waits for a[0]
    assert await hooks.finish(b[0], now + 30, state="delivered")

    # A lapsed lease is taken over; the old holder can then neither retry nor give up.
    [again] = await hooks.claim_due(now + 31, 10, lease=30)
    assert again.id == a[0]
    assert again.attempts == 2
    stale = claimed[0].lease_until
    assert stale is not None and again.lease_until is not None
    assert not await hooks.finish(a[0], stale, state="failed")
    # … but what it delivered stays delivered (the receiver has it).
    attempt = WebhookAttempt(
        event_id=a[0],
        task_id="video_a",
        url="https://example.com/hook",
        webhook_id="evt_a",
        status_code=204,
        duration_ms=3,
        created_at=now,
    )
    assert await hooks.finish(a[0], stale, state="delivered", attempt=attempt)
    assert not await hooks.finish(a[0], again.lease_until, state="pending", next_attempt_at=now)

    # Now the task's next event is due; retrying it later keeps the one after it waiting.
    [nxt] = await hooks.claim_due(now + 31, 10, lease=30)
    assert nxt.id == a[1]
    assert nxt.lease_until is not None
    assert await hooks.finish(a[1], nxt.lease_until, state="pending", next_attempt_at=now + 100)
    assert await hooks.claim_due(now + 50, 10, lease=30) == []
    [later] = await hooks.claim_due(now + 100, 10, lease=30)
    assert later.id == a[1] and later.attempts == 2
    assert later.lease_until is not None
    assert await hooks.finish(a[1], later.lease_until, state="failed")
    [last] = await hooks.claim_due(now + 100, 10, lease=30)
    assert last.id == a[2]  # a given-up event does not hold the rest back

    assert await hooks.last_delivered_status("video_a", a[2]) == "queued"
    [row] = await hooks.attempts(task_id="video_a")
    assert (row.event_status, row.event_state, row.attempt.status_code) == (
        "queued",
        "delivered",
        204,
    )


@pytest.mark.postgres
async def test_concurrent_claims_never_hand_out_one_event_twice(tmp_path: Path) -> None:
    """Several deliverers on one PostgreSQL (``FOR UPDATE SKIP LOCKED``)."""
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError):
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"vg_hooks_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    stores: list[Store] = []
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        await upgrade(url)
        stores = [Store.open(url) for _ in range(4)]
        for i in range(40):
            await add_task_with_events(stores[0], f"video_{i}", ["queued", "running"])
        now = time.time()
        batches = await asyncio.gather(
            *(s.webhooks.claim_due(now, 15, lease=30) for s in stores for _ in range(3))
        )
        ids = [e.id for batch in batches for e in batch]
        assert len(ids) == len(set(ids))  # nobody got an event another one holds
        rest = await stores[0].webhooks.claim_due(now, 100, lease=30)
        assert len(ids) + len(rest) == len(set(ids) | {e.id for e in rest}) == 40
        assert {e.status for batch in [*batches, rest] for e in batch} == {"queued"}
    finally:
        for s in stores:
            await s.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
