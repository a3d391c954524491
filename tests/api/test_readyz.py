"""``/readyz``: ready only when the database, the blob store, the data dir and the
in-process worker all work; ``/healthz`` stays a liveness check."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from videogate.api.state import ApiState
from videogate.context import WorkerHeartbeat
from videogate.service import health


async def ready_when_worker_looped(client: httpx.AsyncClient, state: ApiState) -> httpx.Response:
    for _ in range(100):  # the worker started with the app: wait for its first loop
        if state.ctx.heartbeat.last_loop_at is not None:
            break
        await asyncio.sleep(0.05)
    return await client.get("/readyz")


async def test_ready_when_everything_works(client: httpx.AsyncClient, state: ApiState) -> None:
    r = await ready_when_worker_looped(client, state)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "blob_store": "ok", "data_dir": "ok", "worker": "ok"},
    }


async def test_a_read_only_data_dir_is_not_ready(
    client: httpx.AsyncClient, state: ApiState, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(directory: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(health, "_writable", read_only)
    r = await ready_when_worker_looped(client, state)
    assert r.status_code == 503 and r.headers["retry-after"]
    body = r.json()
    assert body["status"] == "not_ready" and "Read-only" in body["checks"]["data_dir"]
    assert (await client.get("/healthz")).status_code == 200  # alive all the same


async def test_an_unreachable_blob_store_or_database_is_not_ready(
    client: httpx.AsyncClient, state: ApiState, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable() -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(state.ctx.blobs, "check", unreachable)
    r = await ready_when_worker_looped(client, state)
    assert r.status_code == 503
    assert "ConnectionRefusedError" in r.json()["checks"]["blob_store"]

    monkeypatch.undo()
    await state.ctx.store.engine.dispose()
    monkeypatch.setattr(
        state.ctx.store.engine.pool, "connect", lambda: (_ for _ in ()).throw(OSError("down"))
    )
    r = await client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["database"] != "ok"


def test_a_worker_that_stopped_looping_is_not_ready() -> None:
    now = [1000.0]
    beat = WorkerHeartbeat(clock=lambda: now[0])
    assert beat.problem(30) is None  # no worker in this process
    beat.start()
    now[0] += 10
    assert beat.problem(30) is None  # starting
    beat.beat()
    now[0] += 29
    assert beat.problem(30) is None
    beat.failed("OperationalError: database is locked")
    now[0] += 2
    why = beat.problem(30)
    assert why is not None and "31 s" in why and "database is locked" in why
    beat.beat()
    assert beat.problem(30) is None
