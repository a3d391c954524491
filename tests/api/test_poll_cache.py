"""Polls of finished tasks from the in-memory cache; signed URLs per signing window."""

from __future__ import annotations

import types
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import wait_for_status
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.finished_cache import FinishedTaskCache
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.signing import URL_WINDOW_SECONDS, url_window, window_expiry
from videogate.views.relay import RequestViews, relay_task

BODY = {"model": "sandbox", "prompt": "cache", "duration": 4, "resolution": "480p"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@given(
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    later=st.floats(min_value=0, max_value=URL_WINDOW_SECONDS, allow_nan=False),
    ttl=st.integers(min_value=60, max_value=10**7),
)
def test_a_url_signed_in_a_window_works_for_the_ttl_from_any_moment_of_it(
    now: float, later: float, ttl: int
) -> None:
    served_at = now + later
    if url_window(served_at) != url_window(now):
        return  # another window: a new URL is signed
    assert window_expiry(now, ttl) >= served_at + ttl
    assert window_expiry(now, ttl) <= now + ttl + URL_WINDOW_SECONDS


def test_the_cache_is_bounded_per_owner_and_per_window() -> None:
    clock = Clock(600.0)
    cache = FinishedTaskCache(2, clock=clock)
    for task in ("a", "b", "c"):
        cache.put(cache.ticket(), "relay", task, "key1", task.encode())
    assert len(cache) == 2 and cache.get("relay", "a", "key1") is None
    assert cache.get("relay", "c", "key1") == b"c"
    assert cache.get("relay", "c", "key2") is None  # another key never sees it
    assert cache.get("ark", "c", "key1") is None
    clock.now += URL_WINDOW_SECONDS  # the window turned: rebuilt from the database
    assert cache.get("relay", "c", "key1") is None


def test_a_body_read_before_an_invalidation_is_not_cached() -> None:
    cache = FinishedTaskCache(10, clock=Clock(0.0))
    ticket = cache.ticket()
    cache.invalidate("t")  # e.g. a delete committed while the poll was reading
    cache.put(ticket, "relay", "t", "k", b"stale")
    assert cache.get("relay", "t", "k") is None


async def test_finished_polls_are_cached_and_urls_re_signed_when_the_window_turns(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    state: ApiState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = (await client.post("/v1/videos", json=BODY, headers=auth)).json()
    task_id = str(created["id"])
    await wait_for_status(client, task_id, auth)

    clock = Clock(URL_WINDOW_SECONDS * 31_666_667 + 5.0)  # 5 s into a window
    state.tasks.finished = FinishedTaskCache(100, clock=clock)
    monkeypatch.setattr("videogate.views.relay.time", types.SimpleNamespace(time=lambda: clock.now))
    ttl = state.ctx.settings.url_ttl_seconds
    first = await client.get(f"/v1/videos/{task_id}", headers=auth)
    assert first.status_code == 200 and len(state.tasks.finished) == 1
    assert first.headers["openai-poll-after-ms"]

    clock.now += URL_WINDOW_SECONDS - 6  # the last second of the same window
    again = await client.get(f"/v1/videos/{task_id}", headers=auth)
    assert again.content == first.content  # served from the cache, byte for byte
    body = again.json()
    assert body["expires_at"] >= clock.now + ttl  # still a full TTL from now
    url = str(body["video_url"])
    assert int(parse_qs(urlsplit(url).query)["exp"][0]) == body["expires_at"]
    assert (await client.get(url)).status_code == 200  # the cached URL really works

    clock.now += 1  # the next window: re-signed, a full TTL again
    turned = (await client.get(f"/v1/videos/{task_id}", headers=auth)).json()
    assert turned["video_url"] != url and turned["expires_at"] >= clock.now + ttl
    assert turned["expires_at"] == body["expires_at"] + URL_WINDOW_SECONDS
    assert (await client.get(str(turned["video_url"]))).status_code == 200
    assert {k: v for k, v in turned.items() if not (k.endswith("url") or k == "expires_at")} == {
        k: v for k, v in body.items() if not (k.endswith("url") or k == "expires_at")
    }

    # Another key never gets the cached body: 404, as before.
    other = {"Authorization": f"Bearer {(await create_key(state.ctx.store)).key}"}
    assert (await client.get(f"/v1/videos/{task_id}", headers=other)).status_code == 404


async def test_unfinished_polls_are_read_from_the_table_every_time(settings: Settings) -> None:
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        state: ApiState = app.state.api
        auth = {"Authorization": f"Bearer {(await create_key(state.ctx.store)).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            created = (await c.post("/v1/videos", json=BODY, headers=auth)).json()
            task_id = str(created["id"])
            polled = (await c.get(f"/v1/videos/{task_id}", headers=auth)).json()
            assert polled["status"] == "queued" and len(state.tasks.finished) == 0
            row = await state.ctx.store.tasks.get(task_id)
            assert row is not None
            # A change made behind the API's back (another process) shows at the next poll.
            assert await state.ctx.store.tasks.cancel(task_id, row.key_id, 1.0)
            after = (await c.get(f"/v1/videos/{task_id}", headers=auth)).json()
            assert after["status"] == "failed" and after["error"]["code"] == "cancelled"


async def test_task_bodies_show_the_same_with_the_per_task_request_memo(
    settings: Settings,
) -> None:
    """``RequestViews`` (the parsed request per task) changes no field of any body, for
    each surface's shapes; and it holds at most its bound."""
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        state: ApiState = app.state.api
        auth = {"Authorization": f"Bearer {(await create_key(state.ctx.store)).key}"}
        bodies = [
            BODY,
            {**BODY, "ratio": "9:16", "generate_audio": False},
            {"model": "sandbox", "prompt": "openai", "seconds": "4", "size": "720x1280"},
            {"prompt": "an alias, OpenAI's shape"},
        ]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            ids = []
            for body in bodies:
                created = await c.post("/v1/videos", json=body, headers=auth)
                assert created.status_code == 200, created.text
                ids.append(str(created.json()["id"]))
            for task_id in ids:
                polls = [(await c.get(f"/v1/videos/{task_id}", headers=auth)).json() for _ in "ab"]
                row = await state.ctx.store.tasks.get(task_id)
                assert row is not None
                fresh = relay_task(row, state.ctx.signer, state.ctx.settings.url_ttl_seconds)
                assert polls[0] == polls[1] == fresh
        small = RequestViews(max_entries=2)
        for task_id in ids:
            row = await state.ctx.store.tasks.get(task_id)
            assert row is not None
            small.of(row)
        assert len(small) == 2
