"""The admin API: who may call it, and each endpoint."""

from __future__ import annotations

import contextlib
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
from videogate.settings import GroupConfig, Settings

ADMIN_TOKEN = "admin-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY: dict[str, Any] = {"model": "sandbox", "prompt": "a fox", "duration": 4}

ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys", {"name": "x"}),
    ("POST", "/admin/keys/key_x/revoke", None),
    ("POST", "/admin/keys/key_x/topup", {"amount": "1"}),
    ("GET", "/admin/usage", None),
    ("GET", "/admin/routes", None),
    ("GET", "/admin/overview", None),
    ("GET", "/admin/groups", None),
    ("PATCH", "/admin/keys/key_x", {"requests_per_minute": 5}),
    ("GET", "/admin/keys/key_x/ledger", None),
    ("GET", "/admin/usage/daily", None),
    ("GET", "/admin/webhooks", None),
    ("POST", "/admin/webhooks/events/1/resend", None),
    ("POST", "/admin/routes/sandbox/test", None),
    ("GET", "/admin/tasks", None),
]


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "public_url": TEST_BASE,
        "allow_private_urls": True,
        "worker_poll_interval": 0.05,
        "render_processes": 1,
        "key_cache_seconds": 60,  # revocation through /admin must not wait for the cache
        "admin_token": ADMIN_TOKEN,
        "groups": (GroupConfig(name="default"), GroupConfig(name="premium")),
    }
    values.update(kw)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield app, client


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with serve(make_settings(tmp_path)) as pair:
        yield pair


def error_of(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "param", "type"}
    return str(error["message"])


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


# Who may call it --------------------------------------------------------------------------


async def test_disabled_without_an_admin_token(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, admin_token="")) as (_, client):
        for method, path, body in ENDPOINTS:
            for headers in ({}, ADMIN, {"Authorization": "Bearer "}):
                r = await call(client, method, path, body, headers)
                message = error_of(r, 403, "permission_denied")
                assert message == "the admin API is disabled: set VIDEOGATE_ADMIN_TOKEN"


async def test_no_token_or_a_wrong_one_is_401(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = admin
    for method, path, body in ENDPOINTS:
        r = await call(client, method, path, body, {})
        assert "missing admin token" in error_of(r, 401, "invalid_api_key")
        for wrong in ("Bearer nope", f"Bearer {ADMIN_TOKEN}x", f"Basic {ADMIN_TOKEN}"):
            r = await call(client, method, path, body, {"Authorization": wrong})
            assert "invalid admin token" in error_of(r, 401, "invalid_api_key")


async def test_an_api_key_is_403_not_401(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = admin
    key = (await create_key(app.state.api.ctx.store)).key
    for method, path, body in ENDPOINTS:
        r = await call(client, method, path, body, {"Authorization": f"Bearer {key}"})
        assert "not the admin token" in error_of(r, 403, "permission_denied")


async def test_the_admin_token_is_not_an_api_key(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = admin
    error_of(await client.get("/v1/models", headers=ADMIN), 401, "invalid_api_key")


# Keys -------------------------------------------------------------------------------------


async def test_create_list_topup_revoke(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = admin
    body = {
        "name": "acme",
        "group": "premium",
        "balance": "2.5",
        "requests_per_minute": 30,
        "max_unfinished_tasks": 4,
    }
    r = await client.post("/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    created = r.json()
    secret = created["key"]
    assert secret.startswith("vg-") and created["webhook_secret"].startswith("whsec_")
    assert (created["name"], created["group"], created["balance"]) == ("acme", "premium", "2.50")
    assert created["balance_micros"] == 2_500_000
    assert (created["requests_per_minute"], created["max_unfinished_tasks"]) == (30, 4)
    assert created["revoked"] is False
    key_id = created["id"]
    user = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/models", headers=user)).status_code == 200

    # listed, never with its secret
    r = await client.get("/admin/keys", headers=ADMIN)
    assert r.status_code == 200 and secret not in r.text and "webhook_secret" not in r.text
    [listed] = [k for k in r.json()["data"] if k["id"] == key_id]
    assert listed["prefix"] == secret[:10] and listed["balance"] == "2.50"
    assert "key" not in listed

    # an unlimited key
    r = await client.post("/admin/keys", json={}, headers=ADMIN)
    assert r.json()["balance"] is None and r.json()["group"] == "default"
    assert r.json()["requests_per_minute"] is None

    # top-up
    r = await client.post(f"/admin/keys/{key_id}/topup", json={"amount": 1.25}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["balance"] == "3.75" and r.json()["balance_micros"] == 3_750_000
    assert r.json()["was_unlimited"] is False
    r = await client.post("/admin/keys/key_nope/topup", json={"amount": 1}, headers=ADMIN)
    error_of(r, 404, "not_found")
    for bad in ({"amount": 0}, {"amount": "-1"}, {"amount": "lots"}, {}, {"amount": 1, "x": 1}):
        r = await client.post(f"/admin/keys/{key_id}/topup", json=bad, headers=ADMIN)
        error_of(r, 400, "invalid_request")

    # revoke: refused at once, although the key is in this process's cache
    r = await client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert isinstance(r.json()["revoked_at"], int)
    error_of(await client.get("/v1/models", headers=user), 401, "invalid_api_key")
    again = await client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    error_of(await client.post("/admin/keys/key_nope/revoke", headers=ADMIN), 404, "not_found")


async def test_create_rejects_bad_bodies(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = admin
    r = await client.post("/admin/keys", json={"group": "gold"}, headers=ADMIN)
    message = error_of(r, 400, "invalid_request")
    assert "gold" in message and "default, premium" in message
    for bad in (
        {"requests_per_minute": 0},
        {"max_unfinished_tasks": -1},
        {"balance": "-1"},
        {"secret": "x"},
    ):
        r = await client.post("/admin/keys", json=bad, headers=ADMIN)
        error_of(r, 400, "invalid_request")
    r = await client.post(
        "/admin/keys", content=b"{", headers={**ADMIN, "content-type": "application/json"}
    )
    error_of(r, 400, "invalid_request")


# Reports ----------------------------------------------------------------------------------


async def test_usage_tasks_and_routes(admin: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = admin
    state: ApiState = app.state.api
    one = await create_key(state.ctx.store, name="one")
    two = await create_key(state.ctx.store, name="two")
    h1 = {"Authorization": f"Bearer {one.key}"}
    h2 = {"Authorization": f"Bearer {two.key}"}
    first = (await client.post("/v1/videos", json=BODY, headers=h1)).json()["id"]
    await wait_for_status(client, first, h1)
    second = (await client.post("/v1/videos", json=BODY, headers=h2)).json()["id"]
    await wait_for_status(client, second, h2)
    third = (await client.post("/v1/videos", json=BODY, headers=h1)).json()["id"]
    await client.post(f"/v1/videos/{third}/cancel", headers=h1)  # cancelled, still listed

    # usage, per key and model
    r = await client.get("/admin/usage", headers=ADMIN)
    assert r.status_code == 200, r.text
    rows = {(u["key_id"], u["model"]): u for u in r.json()["data"]}
    assert set(rows) == {(one.id, "sandbox"), (two.id, "sandbox")}
    assert rows[(one.id, "sandbox")]["tasks"] == 2
    assert rows[(two.id, "sandbox")]["succeeded"] == 1
    assert rows[(two.id, "sandbox")]["seconds"] > 0
    assert rows[(two.id, "sandbox")]["amount"] == "0.00"  # the sandbox is free
    assert r.json()["unbilled_upstream"] == []  # the sandbox stops at once when cancelled
    r = await client.get("/admin/usage", params={"key": two.id}, headers=ADMIN)
    assert [u["key_id"] for u in r.json()["data"]] == [two.id]
    r = await client.get("/admin/usage", params={"since": "2999-01-01"}, headers=ADMIN)
    assert r.json()["data"] == []
    r = await client.get("/admin/usage", params={"since": "2000-01-01"}, headers=ADMIN)
    assert len(r.json()["data"]) == 2
    r = await client.get("/admin/usage", params={"since": "last week"}, headers=ADMIN)
    assert "YYYY-MM-DD" in error_of(r, 400, "invalid_request")

    # tasks of every key, relay-shaped with their key
    r = await client.get("/admin/tasks", headers=ADMIN)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [t["id"] for t in data] == [third, second, first]
    assert [t["key_id"] for t in data] == [one.id, two.id, one.id]
    assert data[1]["object"] == "video" and data[1]["status"] == "completed"
    assert data[1]["billing_detail"]["state"] == "settled"
    assert str(data[1]["video_url"]).startswith(f"{TEST_BASE}/files/results/")
    r = await client.get("/admin/tasks", params={"key": one.id}, headers=ADMIN)
    assert [t["id"] for t in r.json()["data"]] == [third, first]
    r = await client.get("/admin/tasks", params={"status": "completed"}, headers=ADMIN)
    assert [t["id"] for t in r.json()["data"]] == [second, first]
    r = await client.get("/admin/tasks", params={"status": "succeeded,cancelled"}, headers=ADMIN)
    assert len(r.json()["data"]) == 3
    r = await client.get("/admin/tasks", params={"limit": 1}, headers=ADMIN)
    page = r.json()
    assert len(page["data"]) == 1 and page["has_more"] is True
    r = await client.get(
        "/admin/tasks", params={"limit": 5, "after": page["last_id"]}, headers=ADMIN
    )
    assert [t["id"] for t in r.json()["data"]] == [second, first]
    r = await client.get("/admin/tasks", params={"status": "done"}, headers=ADMIN)
    assert "in_progress" in error_of(r, 400, "invalid_request")
    r = await client.get("/admin/tasks", params={"limit": 0}, headers=ADMIN)
    error_of(r, 400, "invalid_request")

    # routes: the same rows as `videogate routes`
    r = await client.get("/admin/routes", headers=ADMIN)
    assert r.status_code == 200, r.text
    routes = {row["name"]: row for row in r.json()["data"]}
    sandbox = routes["sandbox:sandbox"]
    assert sandbox["provider"] == "sandbox" and sandbox["health"] == "ok"
    assert sandbox["in_flight"] == 0 and sandbox["groups"] == ["*"]


async def test_admin_calls_do_not_count_against_rate_limits(tmp_path: Path) -> None:
    groups = (GroupConfig(name="default", requests_per_minute=1),)
    async with serve(make_settings(tmp_path, groups=groups)) as (_, client):
        for _ in range(5):
            assert (await client.get("/admin/keys", headers=ADMIN)).status_code == 200


async def test_admin_api_in_the_openapi_document(
    admin: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = admin
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/admin/keys", "/admin/usage", "/admin/routes", "/admin/tasks"} <= set(paths)
    assert "/admin/keys/{key_id}/topup" in paths
