"""Shared fixtures: settings in a temp dir, the app with its lifespan, keys, a live server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from db_template import seed_database
from fakes.s3 import S3Server, running_s3_server
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import Settings

TEST_BASE = "http://testserver"
SLOW_TIMEOUT = 300  # seconds: real processes, browsers and local models on a 2-core machine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tier gets a longer per-test limit than the unit tier's 60 s."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


# A module that is slow as a whole says so in its first ``pytestmark`` line.
_SLOW_MODULE = re.compile(r"^pytestmark = (pytest\.mark\.slow$|\[\s*pytest\.mark\.slow\b)", re.M)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With the slow tier deselected (``-m 'not slow'``, ``make test-fast``), modules that are
    slow as a whole are not even imported: their imports (torch and diffusers, the MCP SDK,
    Playwright, …) cost seconds in every xdist worker for tests that would not run."""
    if not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    if "not slow" not in (config.option.markexpr or ""):
        return None
    if _SLOW_MODULE.search(collection_path.read_text(encoding="utf-8")):
        return True
    return None


@functools.cache  # read-only once built: one per test process instead of one per app
def shared_tls() -> ssl.SSLContext:
    """The outbound client's TLS verification for in-process apps, as the app builds it."""
    return httpx.create_ssl_context(trust_env=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return seed_database(
        Settings(
            data_dir=tmp_path / "var",
            public_url=TEST_BASE,
            allow_private_urls=True,
            worker_poll_interval=0.05,
            render_processes=1,
            key_cache_seconds=0,
        )
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, tls=shared_tls())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def state(app: FastAPI) -> ApiState:
    api: ApiState = app.state.api
    return api


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as c:
        yield c


@pytest.fixture
async def api_key(state: ApiState) -> str:
    return (await create_key(state.ctx.store, name="test")).key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def wait_for_status(
    client: httpx.AsyncClient,
    task_id: str,
    headers: dict[str, str],
    statuses: tuple[str, ...] = ("completed", "failed"),
    timeout: float = 60.0,
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get(f"/v1/videos/{task_id}", headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not reach {statuses} in {timeout} s")


@dataclass
class LiveServer:
    base_url: str
    settings: Settings


@contextlib.contextmanager
def run_live_server(
    data_dir: Path, *, start_timeout: float = 30, **overrides: Any
) -> Iterator[LiveServer]:
    """A real uvicorn server (API + worker) on a free loopback port, in a thread;
    ``overrides`` are more settings (an admin token, routes, prices…)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "port": port,
        "public_url": base,
        "allow_private_urls": True,
        "worker_poll_interval": 0.05,
        "render_processes": 1,
        "key_cache_seconds": 0,
    }
    values.update(overrides)
    settings = Settings(**values)
    app = create_app(settings, tls=shared_tls())
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(base, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real uvicorn server (API + worker) on a free loopback port, in a thread."""
    with run_live_server(tmp_path / "live") as live:
        yield live


def make_live_key(live: LiveServer) -> str:
    """Create a key in the live server's database (from this thread)."""
    from videogate.store import Store

    async def run() -> str:
        store = Store.open(live.settings.effective_database_url)
        try:
            return (await create_key(store, name="live")).key
        finally:
            await store.close()

    return asyncio.run(run())


@dataclass
class MediaServer:
    """A plain HTTP file server on loopback, for reference URLs."""

    root: Path
    base_url: str

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[MediaServer]:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = tmp_path / "media"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield MediaServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, shared by the session (each test takes a bucket)."""
    with running_s3_server() as server:
        yield server
