"""Structured logs: one JSON object per line with the role, the request id of the request
that created a task, and each task transition once with its reason."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import free_port, wait_for_status
from videogate.api.app import create_app
from videogate.logs import configure_logging
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.worker import Worker
from videogate.worker.webhooks import WebhookDeliverer

T = TypeVar("T")


@pytest.fixture
def json_logs(tmp_path: Path) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    configure_logging(Settings(data_dir=tmp_path, log_format="json"), role="serve", stream=out)
    try:
        yield out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


async def test_json_lines_carry_role_request_id_and_transitions(
    json_logs: io.StringIO,
    client: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    body = {"model": "sandbox", "prompt": "log me", "duration": 4, "resolution": "480p"}
    created = await client.post(
        "/v1/videos", json=body, headers={**auth, "X-Request-Id": "req-abc-123"}
    )
    assert created.status_code == 200, created.text
    assert created.headers["x-request-id"] == "req-abc-123"
    task_id = created.json()["id"]
    done = await wait_for_status(client, task_id, auth, timeout=120)
    assert done["status"] == "completed", done

    def transitions_so_far() -> tuple[list[dict[str, Any]], list[str]]:
        records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
        mine = [r for r in records if r.get("task_id") == task_id]
        return mine, [r["status"] for r in mine if "reason" in r]

    # The worker logs a transition once it has committed it, so a poll may see the task
    # completed a moment before the last line is written: wait for it (bounded).
    for _ in range(100):
        mine, transitions = transitions_so_far()
        if transitions and transitions[-1] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert transitions == ["queued", "running", "fetching", "succeeded"], mine
    for record in mine:
        assert record["role"] == "serve" and record["level"] == "info"
        assert "timestamp" in record and record["key_id"]
    created_line = next(r for r in mine if r.get("status") == "queued")
    assert created_line["request_id"] == "req-abc-123"
    assert created_line["reason"] == "created on the relay surface"


async def in_fresh_context(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` in an empty context, as a separate worker process would: nothing bound
    by the request that created the task can leak into its lines."""
    return await asyncio.create_task(coro, context=contextvars.Context())


async def test_worker_lines_carry_the_request_id_of_the_create(
    json_logs: io.StringIO, settings: Settings
) -> None:
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        ctx = app.state.api.ctx
        auth = {"Authorization": f"Bearer {(await create_key(ctx.store)).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            body = {
                "model": "sandbox",
                "prompt": "follow me",
                "duration": 4,
                "resolution": "480p",
                # Nobody listens there: each delivery attempt is logged and retried.
                "callback_url": f"http://127.0.0.1:{free_port()}/hook",
            }
            created = await c.post("/v1/videos", json=body, headers={**auth, "X-Request-Id": "abc"})
            assert created.status_code == 200, created.text
            task_id = created.json()["id"]
            # An untouched request in between: its own id must not stick to the task.
            await c.get("/v1/models", headers=auth)
        worker = Worker(ctx)
        try:
            await in_fresh_context(worker.run_until_idle(timeout=120))
        finally:
            await worker.close()
        assert await in_fresh_context(WebhookDeliverer(ctx).deliver_due()) > 0
        row = await ctx.store.tasks.get(task_id)
        assert row is not None and row.status == "succeeded" and row.request_id == "abc"

    records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    # Every line of ours about the task, the API's and the engine's, names the request.
    # (httpx's lines are the test client's: it runs the app in the test's own context.)
    mine = [
        r for r in records if r.get("task_id") == task_id and r["logger"].startswith("videogate")
    ]
    transitions = [r["status"] for r in mine if "reason" in r]
    assert transitions == ["queued", "running", "fetching", "succeeded"], mine
    assert any(r["logger"] == "videogate.webhooks" for r in mine), mine
    # From the submit on, the engine's lines name the route too.
    running = next(r for r in mine if r.get("status") == "running")
    assert running["route"] == "sandbox:sandbox", running
    assert [r for r in mine if r.get("request_id") != "abc"] == []


@pytest.mark.parametrize(
    "hostile",
    ['abc", "level": "critical', "abc def", "x" * 129, "abc\x7f", "ab/c"],
)
async def test_a_hostile_request_id_is_replaced(
    json_logs: io.StringIO, client: httpx.AsyncClient, auth: dict[str, str], hostile: str
) -> None:
    r = await client.get("/v1/models", headers={**auth, "X-Request-Id": hostile})
    assert r.status_code == 200
    made = r.headers["x-request-id"]
    assert made != hostile and re.fullmatch(r"[0-9a-f]{20}", made), made
    assert hostile not in json_logs.getvalue()


async def test_render_processes_log_as_the_worker_does(
    json_logs: io.StringIO, settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    # The parent's lines go to ``json_logs``: whatever reaches stderr is the child's own.
    from videogate.context import open_context

    ctx = await open_context(settings)
    worker = Worker(ctx)
    try:
        render_log = logging.getLogger("videogate.render")
        await worker._run_cpu(render_log.warning, "said in a render process")
    finally:
        await worker.close()
        await ctx.close()
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    said = [r for r in lines if r["event"] == "said in a render process"]
    assert len(said) == 1, err
    assert said[0]["role"] == "serve" and said[0]["level"] == "warning", said


def test_the_diffusers_process_logs_as_the_worker_does(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # No model is loaded: the process says what it serves and stops when told to.
    import multiprocessing

    from videogate.logs import LogSetup
    from videogate.media.diffusion import PipelineSpec, serve

    spec = PipelineSpec("/models/none", "WanPipeline", "float32", "cpu", False)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    cancel = ctx.Event()  # held here: the child opens its semaphore by name
    process = ctx.Process(
        target=serve, args=(child, cancel, spec, LogSetup("json", "info", "worker"))
    )
    process.start()
    child.close()
    parent.send(None)
    process.join(60)
    assert process.exitcode == 0
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    said = [r for r in lines if r["logger"] == "videogate.diffusers"]
    assert len(said) == 1 and "serves WanPipeline from /models/none" in said[0]["event"], err
    assert said[0]["role"] == "worker" and said[0]["level"] == "info", said
