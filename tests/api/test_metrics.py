"""``/metrics``: Prometheus text, route templates (never ids) as labels, the bearer token,
and the counters a task moves."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE, wait_for_status
from metrics_text import metric
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.metrics import Metrics, render
from videogate.service.keys import create_key
from videogate.settings import Settings

ARK_TASKS = "/api/v3/contents/generations/tasks"


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings.model_copy(update={"metrics_token": "s3cret"}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as c:
            yield application, c


async def test_metrics_count_requests_and_tasks_by_template(
    metered: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    app, client = metered
    state: ApiState = app.state.api
    auth = {"Authorization": f"Bearer {(await create_key(state.ctx.store, name='m')).key}"}
    body = {"model": "sandbox", "prompt": "count me", "duration": 4, "resolution": "480p"}
    created = await client.post("/v1/videos", json=body, headers=auth)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    done = await wait_for_status(client, task_id, auth, timeout=120)
    assert done["status"] == "completed", done
    assert (await client.get("/v1/videos/video_nope", headers=auth)).status_code == 404

    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    scraped = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert task_id not in text  # no label per task
    assert metric(text, "videogate_http_requests_total", route="/v1/videos", status="2xx") == 1
    polls = metric(text, "videogate_http_requests_total", route="/v1/videos/{task_id}")
    assert polls >= 2
    assert metric(text, "videogate_http_requests_total", status="4xx") >= 1
    assert metric(text, "videogate_http_request_seconds_count", route="/v1/videos") == 1
    assert metric(text, "videogate_tasks_created_total", model="sandbox", surface="relay") == 1
    assert metric(text, "videogate_tasks_finished_total", surface="relay", status="succeeded") == 1
    assert metric(text, "videogate_task_complete_seconds_count", model="sandbox") == 1
    assert metric(text, "videogate_task_queue_wait_seconds_count", model="sandbox") == 1
    assert metric(text, "videogate_route_submits_total", outcome="submitted") == 1
    assert metric(text, "videogate_upstream_request_seconds_count", operation="poll") >= 1
    assert metric(text, "videogate_blob_bytes_written_total", kind="results") > 1000
    assert metric(text, "videogate_tasks_in_flight") == 0
    assert "videogate_route_max_in_flight{" in text and "videogate_route_breaker_open{" in text

    # The Grafana dashboard asks only for metrics that exist.
    dashboard = json.loads((Path(__file__).parents[2] / "docs/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exported = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    for name in {n for e in exprs for n in re.findall(r"videogate_\w+", e)}:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in exported or name in exported, (name, sorted(exported))


async def test_request_id_is_kept_or_made_and_returned(
    metered: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = metered
    kept = await client.get("/healthz", headers={"X-Request-Id": "lb-1234.abc"})
    assert kept.headers["x-request-id"] == "lb-1234.abc"
    made = await client.get("/healthz")
    assert 16 <= len(made.headers["x-request-id"]) <= 64
    junk = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert junk.headers["x-request-id"] != "bad id\twith spaces"
    assert made.headers["x-request-id"] != junk.headers["x-request-id"]


def test_a_multiprocess_dir_nobody_writes_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prometheus-client only writes to the directory of the environment it was imported
    # in: one named in the settings alone would make /metrics empty.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    metrics = Metrics(multiprocess_dir=str(tmp_path))
    assert metrics.multiprocess_dir == ""
    metrics.webhook_deliveries.labels("delivered").inc()
    text = render(metrics)[0].decode()
    assert metric(text, "videogate_webhook_deliveries_total", outcome="delivered") == 1
    metrics.process_exited()  # nothing shared to clean up


async def test_tasks_are_counted_by_the_surface_they_came_in_on(settings: Settings) -> None:
    # No worker: every task is cancelled before it renders, on the surface it came from.
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        ctx = app.state.api.ctx
        auth = {"Authorization": f"Bearer {(await create_key(ctx.store, name='s')).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            openai_body = {"model": "sora-2", "prompt": "p", "seconds": "4"}
            for ending in ("cancel", "delete"):  # OpenAI's POST …/cancel and its DELETE
                openai = await client.post("/v1/videos", json=openai_body, headers=auth)
                assert openai.status_code == 200, openai.text
                path = f"/v1/videos/{openai.json()['id']}"
                if ending == "cancel":
                    r = await client.post(f"{path}/cancel", headers=auth)
                else:
                    r = await client.delete(path, headers=auth)
                assert r.status_code == 200, r.text
            ark_body = {"model": "sandbox", "content": [{"type": "text", "text": "p"}]}
            ark = await client.post(ARK_TASKS, json=ark_body, headers=auth)
            assert ark.status_code == 200, ark.text
            r = await client.delete(f"{ARK_TASKS}/{ark.json()['id']}", headers=auth)
            assert r.status_code == 200, r.text
        text = render(ctx.metrics)[0].decode()
    for surface, count in (("openai", 2), ("ark", 1)):
        assert metric(text, "videogate_tasks_created_total", surface=surface) == count, surface
        finished = metric(
            text, "videogate_tasks_finished_total", surface=surface, status="cancelled"
        )
        assert finished == count, surface
    assert metric(text, "videogate_tasks_created_total", surface="relay") == 0
