"""The hot routes' lane (api/hot.py): the poll and the create skip FastAPI's stack but keep
what it did for them: request ids, metrics, error envelopes, a 500 for a bug."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app_support import BODY, make_settings, new_key, running
from conftest import TEST_BASE
from metrics_text import metric
from videogate.api import app as app_module
from videogate.api.app import VideogateApp
from videogate.api.state import ApiState


def lane_of(app: FastAPI) -> object:
    assert isinstance(app, VideogateApp)
    return app.hot


async def test_polls_and_creates_take_the_lane_with_ids_metrics_and_errors(
    tmp_path: Path,
) -> None:
    async with running(make_settings(tmp_path)) as app:
        assert lane_of(app) is not None
        auth = await new_key(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            created = await client.post("/v1/videos", json=BODY, headers=auth)
            assert created.status_code == 200, created.text
            assert created.headers["x-request-id"]
            task_id = created.json()["id"]
            polled = await client.get(
                f"/v1/videos/{task_id}", headers={**auth, "X-Request-Id": "mine-1"}
            )
            assert polled.status_code == 200 and polled.json()["id"] == task_id
            assert polled.headers["x-request-id"] == "mine-1"
            missing = await client.get("/v1/videos/video_nope", headers=auth)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
            assert missing.headers["x-request-id"]
            anonymous = await client.get(f"/v1/videos/{task_id}")
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["type"] == "authentication_error"
            bad = await client.post(
                "/v1/videos", content=b"{", headers={**auth, "content-type": "application/json"}
            )
            assert bad.status_code == 400
            text = (await client.get("/metrics")).text
        labels = {"route": "/v1/videos/{task_id}", "method": "GET", "status": "2xx"}
        assert metric(text, "videogate_http_requests_total", **labels) == 1
        labels["status"] = "4xx"
        assert metric(text, "videogate_http_requests_total", **labels) == 2
        labels = {"route": "/v1/videos", "method": "POST", "status": "2xx"}
        assert metric(text, "videogate_http_requests_total", **labels) == 1


async def test_a_bug_in_a_poll_is_a_500_in_the_envelope_and_reaches_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(make_settings(tmp_path)) as app:
        auth = await new_key(app)
        state: ApiState = app.state.api

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(state.tasks, "get", broken)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            r = await client.get("/v1/videos/video_x", headers=auth)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
        # Raised on to the server as well, which logs it (Starlette's behaviour).
        strict = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=strict, base_url=TEST_BASE) as client:
            with pytest.raises(RuntimeError, match="a bug"):
                await client.get("/v1/videos/video_x", headers=auth)


async def test_with_fastapi_telemetry_on_every_request_takes_the_whole_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "_telemetry_enabled", lambda app: True)
    async with running(make_settings(tmp_path)) as app:
        assert lane_of(app) is None
        auth = await new_key(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            created = await client.post("/v1/videos", json=BODY, headers=auth)
            assert created.status_code == 200, created.text
            r = await client.get(f"/v1/videos/{created.json()['id']}", headers=auth)
            assert r.status_code == 200 and r.headers["x-request-id"]


async def test_other_paths_and_methods_take_the_whole_stack(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as app:
        auth = await new_key(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            created = await client.post("/v1/videos", json=BODY, headers=auth)
            task_id = created.json()["id"]
            listed = await client.get("/v1/videos", headers=auth)
            assert [t["id"] for t in listed.json()["data"]] == [task_id]
            cancelled = await client.post(f"/v1/videos/{task_id}/cancel", headers=auth)
            assert cancelled.status_code == 200
            wrong = await client.put(f"/v1/videos/{task_id}", headers=auth)
            assert wrong.status_code == 405
    assert lane_of(app) is None  # the lane is gone with the app's shutdown
