"""Apps started in-process by the test itself (two at once, or with settings of its own):
settings with the test defaults, the app with its lifespan, a client and a key for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from conftest import TEST_BASE, shared_tls
from db_template import seed_database
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import Settings

BODY: dict[str, Any] = {"model": "sandbox", "prompt": "a fox", "duration": 4}


def make_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "public_url": TEST_BASE,
        "allow_private_urls": True,
        "worker_poll_interval": 0.05,
        "render_processes": 1,
        "key_cache_seconds": 5,
    }
    values.update(kw)
    return seed_database(Settings(**values))


@contextlib.asynccontextmanager
async def running(settings: Settings, *, run_worker: bool = False) -> AsyncIterator[FastAPI]:
    app = create_app(settings, run_worker=run_worker, tls=shared_tls())
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=TEST_BASE)


async def new_key(app: FastAPI, **kw: Any) -> dict[str, str]:
    state: ApiState = app.state.api
    key = (await create_key(state.ctx.store, **kw)).key
    return {"Authorization": f"Bearer {key}"}
