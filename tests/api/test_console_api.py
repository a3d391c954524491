"""What the console needs from the server, over plain HTTP: its files and offline docs, the
local sign-in's guards, the account/usage/ledger/timeline endpoints, list filters, and the
admin endpoints behind the operator pages (docs/console.md, docs/api.md, docs/admin.md)."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE, wait_for_status
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import RouteConfig, Settings
from webhook_support import Receiver, receiver_server

ADMIN_TOKEN = "console-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LOCAL_HEADERS = {
    "Host": "127.0.0.1:8000",
    "Origin": "http://127.0.0.1:8000",
    "Sec-Fetch-Site": "same-origin",
    "X-Videogate-Console": "1",
}


# The slow tier (make test, not make test-fast): the console's API end to end with renders.
pytestmark = pytest.mark.slow


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "public_url": TEST_BASE,
        "allow_private_urls": True,
        "worker_poll_interval": 0.05,
        "render_processes": 1,
        "key_cache_seconds": 0,
        "admin_token": ADMIN_TOKEN,
        "webhook_retry_base_seconds": 0.05,
    }
    values.update(kw)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(
    settings: Settings, client_host: str = "127.0.0.1"
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield app, client


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(make_settings(tmp_path)) as pair:
        yield pair


async def new_key(app: FastAPI, **kw: Any) -> tuple[str, str, dict[str, str]]:
    state: ApiState = app.state.api
    key = await create_key(state.ctx.store, name="console", **kw)
    return key.id, key.key, {"Authorization": f"Bearer {key.key}"}


async def make_task(
    client: httpx.AsyncClient, auth: dict[str, str], prompt: str, **extra: Any
) -> dict[str, Any]:
    body = {"model": "sandbox", "prompt": prompt, "duration": 4, "resolution": "480p", **extra}
    r = await client.post("/v1/videos", json=body, headers=auth)
    assert r.status_code == 200, r.text
    task: dict[str, Any] = r.json()
    return task


# Files and docs ---------------------------------------------------------------------------


async def test_the_console_page_and_its_assets(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    # Every asset the page names is ours, and served.
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith(("/", "#")) for ref in refs), refs
    for ref in refs:
        if ref.startswith("/console/assets/"):
            assert (await client.get(ref)).status_code == 200, ref
    app_js = await client.get("/console/assets/app.js")
    for module in re.findall(r'from "\./([^"]+)"', app_js.text):
        assert (await client.get(f"/console/assets/{module}")).status_code == 200, module
    assert (await client.get("/console/assets/nope.js")).status_code == 404


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_api_docs_use_only_local_assets(
    served: tuple[FastAPI, httpx.AsyncClient], path: str
) -> None:
    _, client = served
    r = await client.get(path)
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', r.text)
    urls += re.findall(r"url:\s*'([^']+)'", r.text)
    assert urls, r.text
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    assert "fonts.googleapis" not in r.text
    for url in urls:
        if url.startswith("/docs-assets/"):
            asset = await client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert (await client.get("/openapi.json")).status_code == 200


# Local sign-in ----------------------------------------------------------------------------


async def test_local_sign_in_hands_the_local_key_to_a_page_of_this_machine(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    async with serve(settings) as (app, client):
        r = await client.post("/console/local-sign-in", headers=LOCAL_HEADERS)
        assert r.status_code == 403  # no local key yet
        assert "no local key" in r.json()["error"]["message"]
        _, secret, _ = await new_key(app)
        settings.local_key_path.write_text(secret + "\n")
        r = await client.post("/console/local-sign-in", headers=LOCAL_HEADERS)
        assert r.status_code == 200, r.text
        assert r.json() == {"key": secret}
        assert r.headers["cache-control"] == "no-store"
        # localhost and IPv6 loopback names are the same machine
        for host in ("localhost:8000", "[::1]:8000"):
            headers = {**LOCAL_HEADERS, "Host": host, "Origin": f"http://{host}"}
            assert (await client.post("/console/local-sign-in", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}, "127.0.0.1"),
        ({"Origin": "http://evil.example"}, "own page"),
        ({"Origin": None}, "own page"),
        ({"Sec-Fetch-Site": "cross-site"}, "own page"),
        ({"X-Videogate-Console": None}, "from the console"),
        ({"X-Forwarded-For": "203.0.113.9"}, "proxy"),
        ({"Forwarded": "for=203.0.113.9"}, "proxy"),
    ],
)
async def test_local_sign_in_refuses_other_sites_rebinding_and_proxies(
    tmp_path: Path, change: dict[str, str | None], why: str
) -> None:
    settings = make_settings(tmp_path)
    async with serve(settings) as (app, client):
        _, secret, _ = await new_key(app)
        settings.local_key_path.write_text(secret)
        headers = {k: v for k, v in {**LOCAL_HEADERS, **change}.items() if v is not None}
        r = await client.post("/console/local-sign-in", headers=headers)
        assert r.status_code == 403, r.text
        assert why in r.json()["error"]["message"]
        assert secret not in r.text


async def test_local_sign_in_refuses_remote_peers_and_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with serve(settings, client_host="192.0.2.7") as (app, client):
        _, secret, _ = await new_key(app)
        settings.local_key_path.write_text(secret)
        r = await client.post("/console/local-sign-in", headers=LOCAL_HEADERS)
        assert r.status_code == 403 and "on the machine" in r.json()["error"]["message"]
    off = make_settings(tmp_path / "off", console_local_sign_in=False)
    async with serve(off) as (app, client):
        _, secret, _ = await new_key(app)
        off.local_key_path.write_text(secret)
        r = await client.post("/console/local-sign-in", headers=LOCAL_HEADERS)
        assert r.status_code == 403 and "turned off" in r.json()["error"]["message"]


async def test_a_revoked_local_key_is_not_handed_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with serve(settings) as (app, client):
        key_id, secret, _ = await new_key(app)
        settings.local_key_path.write_text(secret)
        assert (await client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)).status_code == 200
        r = await client.post("/console/local-sign-in", headers=LOCAL_HEADERS)
        assert r.status_code == 403 and secret not in r.text


# A key's own account ----------------------------------------------------------------------


async def test_account_usage_ledger_and_timeline(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    key_id, _, auth = await new_key(app, balance="5")
    r = await client.get("/v1/account", headers=auth)
    assert r.status_code == 200, r.text
    account = r.json()
    assert account["key_id"] == key_id and account["balance"] == "5.00"
    assert account["unfinished_tasks"] == 0 and "key" not in account
    task = await make_task(client, auth, "a fox in the snow")
    done = await wait_for_status(client, task["id"], auth)
    assert done["status"] == "completed"

    usage = (await client.get("/v1/usage?days=7", headers=auth)).json()
    assert usage["days"] == 7 and len(usage["data"]) == 7
    today = usage["data"][-1]
    assert today["date"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert today["tasks"] == 1 and today["succeeded"] == 1 and today["seconds"] == 4.0
    assert today["models"]["sandbox"]["tasks"] == 1
    assert usage["per_model"] == [
        {"model": "sandbox", "tasks": 1, "seconds": 4.0, "amount_micros": 0, "amount": "0.00"}
    ]
    assert all(d["tasks"] == 0 for d in usage["data"][:-1])

    ledger = (await client.get("/v1/ledger", headers=auth)).json()
    kinds = [row["kind"] for row in ledger["data"]]
    assert kinds[-1] == "hold" and all(row["task_id"] == task["id"] for row in ledger["data"])
    assert ledger["has_more"] is False
    first = (await client.get("/v1/ledger?limit=1", headers=auth)).json()
    assert first["has_more"] is True and len(first["data"]) == 1
    rest = (await client.get(f"/v1/ledger?before={first['last_id']}", headers=auth)).json()
    assert [r["id"] for r in first["data"] + rest["data"]] == [r["id"] for r in ledger["data"]]

    timeline = (await client.get(f"/v1/videos/{task['id']}/timeline", headers=auth)).json()
    types = [e["type"] for e in timeline["events"]]
    assert types[0] == "created" and "succeeded" in types and "billing.hold" in types
    assert "submit" in types
    stamps = [e["at"] for e in timeline["events"]]
    assert stamps == sorted(stamps)
    assert timeline["ledger"][0]["kind"] == "hold"
    # no route names or upstream ids in what a key's owner sees
    assert "sandbox:" not in str(timeline)

    # Another key sees none of it.
    _, _, other = await new_key(app)
    assert (await client.get(f"/v1/videos/{task['id']}/timeline", headers=other)).status_code == 404
    assert (await client.get("/v1/ledger", headers=other)).json()["data"] == []
    assert (await client.get("/v1/usage", headers=other)).json()["per_model"] == []
    for path in ("/v1/account", "/v1/usage", "/v1/ledger"):
        assert (await client.get(path)).status_code == 401
    assert (await client.get("/v1/usage?days=0", headers=auth)).status_code == 400


async def test_list_filters_search_and_pages_by_cursor(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    _, _, auth = await new_key(app)
    ids = []
    for i in range(5):
        prompt = f"Ünïcode fox number {i}" if i % 2 else f"plain cat {i} 100%_done"
        ids.append((await make_task(client, auth, prompt))["id"])
    for task_id in ids:
        await wait_for_status(client, task_id, auth)
    bad = (
        await make_task(
            client,
            auth,
            "failing",
            content=[{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/missing.png"}}],
        )
    )["id"]
    await wait_for_status(client, bad, auth)

    async def listed(query: str) -> list[str]:
        r = await client.get(f"/v1/videos?{query}", headers=auth)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["data"]]

    assert await listed("q=fox") == [ids[3], ids[1]]
    assert await listed("q=%C3%9Cn%C3%AFcode") == [ids[3], ids[1]]  # non-ASCII
    assert await listed("q=FOX%20NUMBER%203") == [ids[3]]
    assert await listed("q=100%25_") == [ids[4], ids[2], ids[0]]  # % and _ are literal
    assert await listed("q=%25") == [ids[4], ids[2], ids[0]]
    assert await listed(f"q={ids[2]}") == [ids[2]]
    assert await listed("status=failed") == [bad]
    assert await listed("status=completed") == list(reversed(ids))
    assert await listed("status=completed,failed&model=sandbox&limit=2") == [bad, ids[4]]
    assert await listed("model=other") == []
    # Paging through a filtered list by cursor: no duplicates, nothing skipped.
    seen: list[str] = []
    after = ""
    while True:
        r = (await client.get(f"/v1/videos?status=completed&limit=2{after}", headers=auth)).json()
        seen += [t["id"] for t in r["data"]]
        if not r["has_more"]:
            break
        after = f"&after={r['last_id']}"
    assert seen == list(reversed(ids))
    r = await client.get("/v1/videos?status=done", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "status"
    r = await client.get("/v1/videos?q=a%00b", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "q"


# Operators --------------------------------------------------------------------------------


async def test_overview_groups_key_limits_and_ledger(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = served
    key_id, _, auth = await new_key(app, balance="2")
    task = await make_task(client, auth, "a fox")
    await wait_for_status(client, task["id"], auth)

    o = (await client.get("/admin/overview", headers=ADMIN)).json()
    assert o["tasks_by_status"]["succeeded"] == 1 and o["queue_depth"] == 0
    assert o["last_24h"]["succeeded"] == 1 and o["last_24h"]["failed"] == 0
    assert len(o["last_24h"]["per_hour"]) == 24 and o["last_24h"]["per_hour"][-1]["succeeded"] == 1
    ttc = o["time_to_complete_seconds"]
    assert ttc["count"] == 1 and ttc["p50"] == ttc["p95"] and ttc["p50"] > 0

    groups = (await client.get("/admin/groups", headers=ADMIN)).json()["data"]
    assert [g["name"] for g in groups] == ["default"]

    r = await client.patch(
        f"/admin/keys/{key_id}",
        json={"requests_per_minute": 7, "max_unfinished_tasks": 3, "name": "renamed"},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["requests_per_minute"], r.json()["max_unfinished_tasks"]) == (7, 3)
    assert r.json()["name"] == "renamed"
    r = await client.patch(
        f"/admin/keys/{key_id}", json={"requests_per_minute": None}, headers=ADMIN
    )
    assert r.json()["requests_per_minute"] is None and r.json()["max_unfinished_tasks"] == 3
    assert (await client.patch("/admin/keys/key_nope", json={}, headers=ADMIN)).status_code == 404
    r = await client.patch(f"/admin/keys/{key_id}", json={"balance": "9"}, headers=ADMIN)
    assert r.status_code == 400
    r = await client.patch(f"/admin/keys/{key_id}", json={"requests_per_minute": 0}, headers=ADMIN)
    assert r.status_code == 400

    ledger = (await client.get(f"/admin/keys/{key_id}/ledger", headers=ADMIN)).json()
    assert [e["kind"] for e in ledger["data"]][-1] == "hold"
    daily = (await client.get(f"/admin/usage/daily?key={key_id}&days=3", headers=ADMIN)).json()
    assert daily["data"][-1]["tasks"] == 1


async def test_route_test_checks_the_upstream(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    routes = (await client.get("/admin/routes", headers=ADMIN)).json()["data"]
    name = next(r["name"] for r in routes if r["model"] == "sandbox")
    r = await client.post(f"/admin/routes/{name}/test", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["route"] == name
    assert (await client.post("/admin/routes/nope/test", headers=ADMIN)).status_code == 404


async def test_route_test_passes_on_live_upstreams_and_fails_on_a_wrong_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes.ark import FakeArk
    from fakes.relay import FakeRelay

    monkeypatch.setenv("KEY_TEST_ARK", "ark-test-key")
    monkeypatch.setenv("KEY_TEST_RELAY", "relay-test-key")
    monkeypatch.setenv("KEY_TEST_WRONG", "not-the-key")
    model = "doubao-seedance-2-0-260128"
    with FakeArk() as ark, FakeRelay() as relay:
        routes = (
            RouteConfig(
                name="ark",
                model=model,
                provider="ark",
                base_url=ark.base_url,
                api_key_env="KEY_TEST_ARK",
            ),
            RouteConfig(
                name="relay",
                model=model,
                provider="openai",
                base_url=relay.base_url,
                api_key_env="KEY_TEST_RELAY",
            ),
            RouteConfig(
                name="wrong-key",
                model=model,
                provider="ark",
                base_url=ark.base_url,
                api_key_env="KEY_TEST_WRONG",
            ),
        )
        async with serve(make_settings(tmp_path, routes=routes)) as (_, client):
            results = {}
            for name in ("ark", "relay", "wrong-key"):
                r = await client.post(f"/admin/routes/{name}/test", headers=ADMIN)
                assert r.status_code == 200, r.text
                results[name] = r.json()
    assert results["ark"]["ok"] is True, results["ark"]
    assert results["relay"]["ok"] is True, results["relay"]
    assert results["wrong-key"]["ok"] is False and results["wrong-key"]["detail"]
    # A test reads the task list, and creates nothing upstream.
    assert ark.requests_to("list") and not ark.requests_to("create")
    assert relay.requests_to("list") and not relay.requests_to("create")


async def test_route_test_reports_an_unreachable_upstream(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        routes=(
            {
                "name": "dead-ark",
                "model": "doubao-seedance-2-0-260128",
                "provider": "ark",
                "upstream_model": "doubao-seedance-2-0-260128",
                "base_url": "http://127.0.0.1:9/api/v3",
            },
        ),
    )
    async with serve(settings) as (_, client):
        r = await client.post("/admin/routes/dead-ark/test", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is False and r.json()["detail"]


async def test_webhook_attempts_and_resend(tmp_path: Path) -> None:
    with receiver_server() as receiver:
        async with serve(make_settings(tmp_path)) as (app, client):
            await _resend_flow(app, client, receiver)


async def _resend_flow(app: FastAPI, client: httpx.AsyncClient, receiver: Receiver) -> None:
    state: ApiState = app.state.api
    new = await create_key(state.ctx.store, name="hooks")
    receiver.secret = new.webhook_secret
    auth = {"Authorization": f"Bearer {new.key}"}
    task = await make_task(client, auth, "a fox", callback_url=receiver.url)
    await wait_for_status(client, task["id"], auth)

    async def attempts() -> list[dict[str, Any]]:
        r = await client.get(f"/admin/webhooks?task={task['id']}", headers=ADMIN)
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    deadline = time.monotonic() + 30
    while not any(a["event_status"] == "succeeded" for a in await attempts()):
        assert time.monotonic() < deadline, "the completed event was never delivered"
        await _sleep()
    before = len(receiver.got)
    last = next(a for a in await attempts() if a["event_status"] == "succeeded")
    assert last["status_code"] == 200 and last["event_state"] == "delivered"
    r = await client.post(f"/admin/webhooks/events/{last['event_id']}/resend", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "pending"
    while len(receiver.got) == before:
        assert time.monotonic() < deadline, "the resent event never arrived"
        await _sleep()
    again = receiver.got[-1]
    assert again.verified and again.status == "completed"
    assert again.id == last["webhook_id"]  # the same event: receivers may deduplicate
    while len([a for a in await attempts() if a["event_id"] == last["event_id"]]) < 2:
        assert time.monotonic() < deadline
        await _sleep()
    r = await client.post("/admin/webhooks/events/999999/resend", headers=ADMIN)
    assert r.status_code == 404


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.05)
