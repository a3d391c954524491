"""Input that overflows numbers or the database is a 4xx with a message, never a 500:
on SQLite and on the real PostgreSQL (which refuses NUL bytes and wide integers)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE
from media_factory import png_bytes
from postgres_support import new_database
from videogate.api.app import create_app
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.store.tables import Task

ADMIN_TOKEN = "hostile-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ARK_TASKS = "/api/v3/contents/generations/tasks"


@contextlib.asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL: a file on SQLite, a new database on PostgreSQL (dropped after)."""
    if backend == "sqlite":
        yield ""
        return
    async with new_database("vg_hostile") as url:
        yield url


class Api:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self.app = app
        self.client = client
        self.auth = auth


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with database(request.param, tmp_path) as url:
        settings = Settings(
            data_dir=tmp_path / "var",
            database_url=url,
            public_url=TEST_BASE,
            allow_private_urls=True,
            render_processes=1,
            key_cache_seconds=0,
            admin_token=ADMIN_TOKEN,
        )
        app = create_app(settings, run_worker=False)
        async with app.router.lifespan_context(app):
            key = await create_key(app.state.api.ctx.store, name="hostile")
            # A 500 must come back as a response here, not as an exception in the test.
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
                yield Api(app, client, {"Authorization": f"Bearer {key.key}"})


def client_error(r: httpx.Response, *, status: int = 400, contains: str = "") -> str:
    """A 4xx in one of the two envelopes, whose message says ``contains``."""
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}, error
    message = str(error["message"])
    assert contains.lower() in message.lower(), message
    return message


async def test_a_signed_url_expiry_of_thousands_of_digits_is_refused(api: Api) -> None:
    r = await api.client.get("/files/results/x/video.mp4", params={"exp": "9" * 5000, "sig": "a"})
    client_error(r, status=403, contains="not signed")
    r = await api.client.get("/files/results/x/video.mp4", params={"exp": "²³", "sig": "a"})
    client_error(r, status=403, contains="not signed")


@pytest.mark.parametrize(
    "body",
    [
        b'{"balance": 1e309}',
        b'{"balance": "1e309"}',
        b'{"balance": 1e300}',
        b'{"balance": "10000000000000"}',
    ],
)
async def test_a_balance_too_large_for_the_ledger_is_refused(api: Api, body: bytes) -> None:
    headers = {**ADMIN, "content-type": "application/json"}
    r = await api.client.post("/admin/keys", content=body, headers=headers)
    message = client_error(r)
    assert "balance" in message


@pytest.mark.parametrize("field", ["requests_per_minute", "max_unfinished_tasks"])
@pytest.mark.parametrize("value", [2**70, 2**40, 2**31])
async def test_limits_wider_than_their_column_are_refused(api: Api, field: str, value: int) -> None:
    r = await api.client.post("/admin/keys", json={field: value}, headers=ADMIN)
    assert field in client_error(r, contains="less than or equal")


async def test_a_topup_that_would_overflow_the_balance_is_refused(api: Api) -> None:
    created = (await api.client.post("/admin/keys", json={"balance": "0"}, headers=ADMIN)).json()
    topup = f"/admin/keys/{created['id']}/topup"
    client_error(await api.client.post(topup, json={"amount": "1e30"}, headers=ADMIN))
    r = await api.client.post(topup, json={"amount": "900000000000"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    r = await api.client.post(topup, json={"amount": "900000000000"}, headers=ADMIN)
    client_error(r, contains="would take the balance over")
    # Nothing was added by the refused top-up.
    keys = (await api.client.get("/admin/keys", headers=ADMIN)).json()["data"]
    balance = next(k["balance_micros"] for k in keys if k["id"] == created["id"])
    assert balance == 900_000_000_000 * 1_000_000


@pytest.mark.parametrize("field", ["requests_per_minute", "max_unfinished_tasks"])
async def test_limits_set_later_are_bounded_too(api: Api, field: str) -> None:
    created = (await api.client.post("/admin/keys", json={}, headers=ADMIN)).json()
    r = await api.client.patch(f"/admin/keys/{created['id']}", json={field: 2**70}, headers=ADMIN)
    assert field in client_error(r, contains="less than or equal")
    r = await api.client.patch(
        f"/admin/keys/{created['id']}", json={"name": "a\x00"}, headers=ADMIN
    )
    client_error(r, contains="NUL")
    r = await api.client.get(f"/admin/keys/{created['id']}/ledger?before={2**40}", headers=ADMIN)
    assert r.status_code == 400, r.text
    r = await api.client.post(f"/admin/webhooks/events/{2**40}/resend", headers=ADMIN)
    assert r.status_code < 500, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/keys", {"name": "a\x00b"}),
        ("/admin/keys", {"name": "ok", "group": "default\x00"}),
    ],
)
async def test_nul_bytes_in_admin_text_are_refused(api: Api, path: str, body: Any) -> None:
    client_error(await api.client.post(path, json=body, headers=ADMIN), contains="NUL")


async def test_nul_bytes_in_a_topup_note_are_refused(api: Api) -> None:
    created = (await api.client.post("/admin/keys", json={"balance": "0"}, headers=ADMIN)).json()
    r = await api.client.post(
        f"/admin/keys/{created['id']}/topup", json={"amount": "1", "note": "x\x00"}, headers=ADMIN
    )
    client_error(r, contains="NUL")


async def test_nul_bytes_in_a_prompt_are_refused_on_every_surface(api: Api) -> None:
    r = await api.client.post(
        "/v1/videos", json={"model": "sandbox", "prompt": "a\x00b"}, headers=api.auth
    )
    client_error(r, contains="NUL")
    ark = {"model": "sandbox", "content": [{"type": "text", "text": "a\x00b"}]}
    r = await api.client.post(ARK_TASKS, json=ark, headers=api.auth)
    assert client_error(r, contains="NUL") and r.json()["error"]["code"] == "InvalidParameter"
    form = {"model": (None, "sandbox"), "prompt": (None, "a\x00b")}
    r = await api.client.post("/v1/videos", files=form, headers=api.auth)
    client_error(r, contains="NUL")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/videos/video_a%00b",
        "/v1/videos?after=video_a%00b",
        "/v1/files/file_a%00b",
        f"{ARK_TASKS}/video_a%00b",
        f"{ARK_TASKS}?filter.task_ids=a%00b",
    ],
)
async def test_nul_bytes_in_ids_and_filters_are_a_client_error(api: Api, path: str) -> None:
    r = await api.client.get(path, headers=api.auth)
    # SQLite looks the id up and finds nothing; PostgreSQL refuses the text: a 4xx either way.
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        client_error(r, status=r.status_code)


@pytest.mark.parametrize("path", ["/admin/tasks?key=a%00", "/admin/usage?key=a%00"])
async def test_nul_bytes_in_admin_filters_are_a_client_error(api: Api, path: str) -> None:
    r = await api.client.get(path, headers=ADMIN)
    assert r.status_code < 500, r.text


async def test_an_upload_named_with_control_characters_is_stored(api: Api) -> None:
    # Built by hand: httpx would percent-encode the control characters in the name.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x00b\x07.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png_bytes(64, 64) + b"\r\n--B--\r\n"
    )
    headers = {**api.auth, "content-type": "multipart/form-data; boundary=B"}
    r = await api.client.post("/v1/files", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "ab.png"


async def test_text_recorded_from_upstreams_is_always_storable(api: Api) -> None:
    """An upstream's error may hold anything: the engine's writes must not fail on it."""
    store = api.app.state.api.ctx.store
    key = await create_key(store, name="recorded")
    now = time.time()
    async with store.sessions.begin() as s:
        s.add(
            Task(
                id="video_recorded",
                key_id=key.id,
                model="sandbox",
                status="failed",
                request={},
                error_code="Upstream\x00Code" + "x" * 300,
                error_message="bad\x00news",
                created_at=now,
                updated_at=now,
                deadline_at=now + 60,
            )
        )
    task = await store.tasks.get("video_recorded")
    assert task is not None
    assert task.error_message == "bad\ufffdnews"
    assert task.error_code is not None and len(task.error_code) == 200
    assert task.error_code.startswith("Upstream\ufffdCode")


async def test_a_topup_note_from_the_cli_path_is_checked_too(api: Api) -> None:
    from videogate.errors import InvalidRequest
    from videogate.service.money import topup

    key = await create_key(api.app.state.api.ctx.store, name="cli", balance="1")
    with pytest.raises(InvalidRequest, match="NUL"):
        await topup(api.app.state.api.ctx.store, key.id, "1", "a\x00b")
