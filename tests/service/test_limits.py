"""Per-key limits: requests per minute (memory and Redis counters) and unfinished tasks."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from app_support import BODY, client_for, make_settings, new_key, running
from videogate.api.state import ApiState
from videogate.errors import VideogateError
from videogate.service.keys import Caller, create_key
from videogate.service.limits import (
    async_storage_uri,
    check_limiter_scope,
    max_unfinished_tasks,
    requests_per_minute,
)
from videogate.settings import GroupConfig

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A database index of its own; every test's keys are new random ids, so counters of
# different tests (or runs) never meet.
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/13"


def redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def assert_rate_limited(r: httpx.Response, fragment: str) -> int:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "rate_limited" and error["type"] == "rate_limit_error"
    assert fragment in error["message"], error["message"]
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


# Pure rules -------------------------------------------------------------------------------


def test_the_key_wins_then_the_group_then_no_limit() -> None:
    groups = (GroupConfig(name="default", requests_per_minute=3, max_unfinished_tasks=2),)
    assert requests_per_minute(Caller("k", "default"), groups) == 3
    assert requests_per_minute(Caller("k", "default", requests_per_minute=10), groups) == 10
    assert requests_per_minute(Caller("k", "other"), groups) is None
    assert max_unfinished_tasks(Caller("k", "default"), groups) == 2
    assert max_unfinished_tasks(Caller("k", "default", max_unfinished_tasks=7), groups) == 7
    assert max_unfinished_tasks(Caller("k", "default"), (GroupConfig(name="default"),)) is None


def test_storage_uris() -> None:
    assert async_storage_uri("memory://") == ("async+memory://", {"wrap_exceptions": True})
    uri, options = async_storage_uri("redis://127.0.0.1:6379/2")
    assert uri == "async+redis://127.0.0.1:6379/2" and options["implementation"] == "redispy"


# Requests per minute ----------------------------------------------------------------------


async def test_requests_over_the_key_limit_get_429_with_retry_after(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as app, client_for(app) as client:
        limited = await new_key(app, requests_per_minute=3)
        other = await new_key(app)
        for _ in range(3):
            assert (await client.get("/v1/models", headers=limited)).status_code == 200
        r = await client.get("/v1/videos", headers=limited)
        retry_after = assert_rate_limited(r, "3 requests per minute for this key")
        assert retry_after >= 55  # the window started a moment ago
        # every authenticated surface counts and refuses: the Ark one in Ark's envelope
        r = await client.get("/api/v3/contents/generations/tasks", headers=limited)
        assert r.status_code == 429 and r.json()["error"]["code"] == "RateLimitExceeded"
        assert int(r.headers["Retry-After"]) >= 1
        r = await client.post("/v1/videos", json=BODY, headers=limited)
        assert r.status_code == 429
        # another key is not affected, and unauthenticated calls stay 401
        assert (await client.get("/v1/models", headers=other)).status_code == 200
        bad = {"Authorization": "Bearer vg-nope"}
        assert (await client.get("/v1/models", headers=bad)).status_code == 401


async def test_a_key_limit_overrides_the_group_limit(tmp_path: Path) -> None:
    groups = (GroupConfig(name="default", requests_per_minute=3),)
    async with running(make_settings(tmp_path, groups=groups)) as app, client_for(app) as client:
        by_group = await new_key(app)
        own = await new_key(app, requests_per_minute=5)
        for _ in range(3):
            assert (await client.get("/v1/models", headers=by_group)).status_code == 200
        assert_rate_limited(await client.get("/v1/models", headers=by_group), "3 requests")
        for _ in range(5):
            assert (await client.get("/v1/models", headers=own)).status_code == 200
        assert_rate_limited(await client.get("/v1/models", headers=own), "5 requests per minute")


async def test_the_poll_route_counts_too(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as app, client_for(app) as client:
        headers = await new_key(app, requests_per_minute=2)
        task_id = (await client.post("/v1/videos", json=BODY, headers=headers)).json()["id"]
        assert (await client.get(f"/v1/videos/{task_id}", headers=headers)).status_code == 200
        r = await client.get(f"/v1/videos/{task_id}", headers=headers)
        assert_rate_limited(r, "2 requests per minute")


async def test_an_unreachable_counter_store_fails_open(tmp_path: Path) -> None:
    # Nothing listens on port 1: the limiter cannot count, and serves rather than refuses.
    settings = make_settings(tmp_path, rate_limit_storage="redis://127.0.0.1:1/0")
    async with running(settings) as app, client_for(app) as client:
        headers = await new_key(app, requests_per_minute=1)
        for _ in range(3):
            assert (await client.get("/v1/models", headers=headers)).status_code == 200


# Counters shared through Redis ------------------------------------------------------------


async def test_redis_counters_are_shared_by_two_app_instances(tmp_path: Path) -> None:
    if not redis_reachable():
        pytest.skip(f"no Redis server answers on {REDIS_HOST}:{REDIS_PORT}")
    settings = make_settings(tmp_path, rate_limit_storage=REDIS_URL)
    async with running(settings) as one, running(settings) as two:
        headers = await new_key(one, requests_per_minute=3)
        async with client_for(one) as a, client_for(two) as b:
            assert (await a.get("/v1/models", headers=headers)).status_code == 200
            assert (await b.get("/v1/models", headers=headers)).status_code == 200
            assert (await a.get("/v1/models", headers=headers)).status_code == 200
            # the fourth request, wherever it lands, is over the shared limit
            assert_rate_limited(await b.get("/v1/models", headers=headers), "3 requests")
            assert_rate_limited(await a.get("/v1/models", headers=headers), "3 requests")


def test_several_api_processes_without_shared_counters_warn_or_refuse(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    check_limiter_scope(make_settings(tmp_path))  # one process: nothing to say
    assert not caplog.records
    check_limiter_scope(make_settings(tmp_path, api_processes=2, rate_limit_storage=REDIS_URL))
    assert not caplog.records
    check_limiter_scope(make_settings(tmp_path, api_processes=3))
    assert "3 API processes count rate limits each on their own" in caplog.text
    assert "redis://" in caplog.text
    strict = make_settings(tmp_path, api_processes=3, rate_limit_require_shared=True)
    with pytest.raises(VideogateError, match="refusing to start"):
        check_limiter_scope(strict)


async def test_memory_counters_are_per_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # memory://
    async with running(settings) as one, running(settings) as two:
        headers = await new_key(one, requests_per_minute=2)
        async with client_for(one) as a, client_for(two) as b:
            for c in (a, a, b, b):
                assert (await c.get("/v1/models", headers=headers)).status_code == 200
            assert (await a.get("/v1/models", headers=headers)).status_code == 429
            assert (await b.get("/v1/models", headers=headers)).status_code == 429


# Unfinished tasks -------------------------------------------------------------------------


async def test_unfinished_task_cap(tmp_path: Path) -> None:
    # No worker: tasks stay queued until cancelled.
    async with running(make_settings(tmp_path)) as app, client_for(app) as client:
        headers = await new_key(app, max_unfinished_tasks=2)
        first = await client.post(
            "/v1/videos", json=BODY, headers={**headers, "Idempotency-Key": "one"}
        )
        assert first.status_code == 200, first.text
        assert (await client.post("/v1/videos", json=BODY, headers=headers)).status_code == 200
        r = await client.post("/v1/videos", json=BODY, headers=headers)
        assert_rate_limited(r, "at most 2 unfinished tasks for this key; wait for one to finish")
        # the Ark surface refuses the same way, in its words
        ark_body = {"model": "sandbox", "content": [{"type": "text", "text": "a fox"}]}
        r = await client.post("/api/v3/contents/generations/tasks", json=ark_body, headers=headers)
        assert r.status_code == 429 and r.json()["error"]["code"] == "RateLimitExceeded"
        assert "Retry-After" in r.headers
        # a retry of an accepted request is not a new task: it is answered, not refused
        again = await client.post(
            "/v1/videos", json=BODY, headers={**headers, "Idempotency-Key": "one"}
        )
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        # once one finishes (here: cancelled), there is room again
        assert (
            await client.post(f"/v1/videos/{first.json()['id']}/cancel", headers=headers)
        ).status_code == 200
        assert (await client.post("/v1/videos", json=BODY, headers=headers)).status_code == 200
        assert (await client.post("/v1/videos", json=BODY, headers=headers)).status_code == 429
        # nothing was created by the refused requests
        listed = (await client.get("/v1/videos", headers=headers)).json()["data"]
        assert len(listed) == 3


async def test_group_unfinished_cap_and_key_override(tmp_path: Path) -> None:
    groups = (GroupConfig(name="default", max_unfinished_tasks=1),)
    async with running(make_settings(tmp_path, groups=groups)) as app, client_for(app) as client:
        by_group = await new_key(app)
        own = await new_key(app, max_unfinished_tasks=3)
        assert (await client.post("/v1/videos", json=BODY, headers=by_group)).status_code == 200
        r = await client.post("/v1/videos", json=BODY, headers=by_group)
        assert_rate_limited(r, "at most 1 unfinished tasks for this key")
        for _ in range(3):
            assert (await client.post("/v1/videos", json=BODY, headers=own)).status_code == 200
        assert (await client.post("/v1/videos", json=BODY, headers=own)).status_code == 429


async def test_finished_tasks_do_not_count(tmp_path: Path) -> None:
    from conftest import wait_for_status

    async with running(make_settings(tmp_path), run_worker=True) as app, client_for(app) as client:
        state: ApiState = app.state.api
        key = await create_key(state.ctx.store, max_unfinished_tasks=1)
        headers = {"Authorization": f"Bearer {key.key}"}
        task_id = (await client.post("/v1/videos", json=BODY, headers=headers)).json()["id"]
        assert await state.ctx.store.tasks.count_unfinished(key.id) == 1
        done = await wait_for_status(client, task_id, headers)
        assert done["status"] == "completed"
        assert await state.ctx.store.tasks.count_unfinished(key.id) == 0
        assert (await client.post("/v1/videos", json=BODY, headers=headers)).status_code == 200


def test_videogate_api_with_workers_refuses_per_process_counters_when_told(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOGATE_")}
    env.update(VIDEOGATE_DATA_DIR=str(tmp_path / "var"), VIDEOGATE_RATE_LIMIT_REQUIRE_SHARED="1")
    videogate = str(Path(sys.executable).parent / "videogate")
    done = subprocess.run(
        [videogate, "api", "--workers", "2", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 API processes count rate limits each on their own" in done.stdout
