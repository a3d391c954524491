"""The edge (api/edge.py): bodies are capped while they stream, and load beyond the cap on
concurrent requests is shed at once with Retry-After, in each surface's envelope."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import TEST_BASE, LiveServer, free_port, make_live_key
from videogate.api.app import create_app
from videogate.service.keys import create_key
from videogate.settings import Settings

ARK_TASKS = "/api/v3/contents/generations/tasks"
KIB = 1024
MIB = 1024 * 1024


def edge_settings(tmp_path: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "public_url": TEST_BASE,
        "allow_private_urls": True,
        "render_processes": 1,
        "key_cache_seconds": 0,
        "max_json_body_bytes": 256 * KIB,
        "max_upload_bytes": 64 * KIB,
    }
    values.update(kw)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        key = (await create_key(app.state.api.ctx.store, name="edge")).key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield app, client, f"Bearer {key}"  # the Authorization header's value


def error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert set(body) == {"code", "message", "param", "type"}, body
    assert body["code"] == code, body
    return str(body["message"])


class Endless:
    """A chunked request body of up to ``total`` bytes that counts what was pulled."""

    def __init__(self, head: bytes, total: int = 400 * MIB, chunk: int = 64 * KIB) -> None:
        self.head = head
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        self.sent = len(self.head)
        filler = b" " * self.chunk
        while self.sent < self.total:
            self.sent += len(filler)
            yield filler


async def test_a_declared_body_over_the_cap_is_refused_unread(tmp_path: Path) -> None:
    async with serve(edge_settings(tmp_path)) as (_, client, key):
        auth = {"Authorization": key, "content-type": "application/json"}
        big = b'{"model": "sandbox", "prompt": "' + b"x" * (300 * KIB) + b'"}'
        r = await client.post("/v1/videos", content=big, headers=auth)
        assert "256" in error(r, 413, "request_too_large")
        r = await client.post(ARK_TASKS, content=big, headers=auth)
        error(r, 413, "InvalidParameter.RequestTooLarge")


async def test_a_chunked_json_body_is_cut_off_at_the_cap(tmp_path: Path) -> None:
    """The 400 MB chunked create: refused once the cap is passed, not read whole first."""
    async with serve(edge_settings(tmp_path)) as (_, client, key):
        for path, code in (("/v1/videos", "request_too_large"), (ARK_TASKS, None)):
            body = Endless(b'{"model": "sandbox", "prompt": "')
            auth = {"Authorization": key, "content-type": "application/json"}
            r = await client.post(path, content=body, headers=auth)
            assert "content-length" not in r.request.headers  # really chunked
            error(r, 413, code or "InvalidParameter.RequestTooLarge")
            assert body.sent <= 256 * KIB + 2 * body.chunk, body.sent


async def test_a_chunked_multipart_body_is_cut_off_at_the_cap(tmp_path: Path) -> None:
    from videogate.api.openai_form import form_body_limit

    settings = edge_settings(tmp_path)
    limit = form_body_limit(settings)
    async with serve(settings) as (_, client, key):
        head = (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        headers = {"Authorization": key, "content-type": "multipart/form-data; boundary=B"}
        for path in ("/v1/files", "/v1/videos"):
            body = Endless(head, chunk=256 * KIB)
            r = await client.post(path, content=body, headers=headers)
            error(r, 413, "request_too_large")
            assert body.sent <= limit + 2 * body.chunk, body.sent


async def test_a_chunked_body_of_a_declared_model_is_a_413_too(tmp_path: Path) -> None:
    """Endpoints whose body FastAPI parses (the admin API) answer the same 413."""
    settings = edge_settings(tmp_path, admin_token="edge-admin")
    async with serve(settings) as (_, client, _key):
        body = Endless(b'{"name": "')
        headers = {"Authorization": "Bearer edge-admin", "content-type": "application/json"}
        r = await client.post("/admin/keys", content=body, headers=headers)
        error(r, 413, "request_too_large")
        assert body.sent <= 256 * KIB + 2 * body.chunk, body.sent


async def test_bodies_under_the_caps_still_work(tmp_path: Path) -> None:
    async with serve(edge_settings(tmp_path)) as (_, client, key):
        r = await client.post(
            "/v1/videos",
            json={"model": "sandbox", "prompt": "x" * (100 * KIB), "duration": 4},
            headers={"Authorization": key},
        )
        error(r, 400, "invalid_request")  # the prompt is too long, not the body


class Held:
    """A request held in flight: its body stops after the first chunk until released."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"model": "sandbox", '
        self.reading.set()  # the handler asked for more: it is in flight
        await self.release.wait()
        yield b'"prompt": "a fox", "duration": 4}'


async def test_requests_beyond_the_concurrency_cap_are_shed_at_once(tmp_path: Path) -> None:
    async with serve(edge_settings(tmp_path, max_concurrent_requests=2)) as (_, client, key):
        auth = {"Authorization": key, "content-type": "application/json"}
        held = [Held(), Held()]
        calls = [
            asyncio.create_task(client.post("/v1/videos", content=h, headers=auth)) for h in held
        ]
        for h in held:
            await h.reading.wait()
        # Both slots are taken by requests that cannot finish yet: the next ones are
        # answered now, not queued behind them.
        r = await client.get("/v1/videos", headers={"Authorization": key})
        assert "limit of 2 requests" in error(r, 503, "overloaded")
        assert r.headers["retry-after"] == "1"
        # A poll too (the hot lane of api/hot.py counts against the same cap).
        r = await client.get("/v1/videos/video_x", headers={"Authorization": key})
        error(r, 503, "overloaded")
        r = await client.get(ARK_TASKS, headers={"Authorization": key})
        error(r, 429, "ServerOverloaded")
        assert r.headers["retry-after"] == "1"
        assert (await client.get("/healthz")).status_code == 200  # never shed
        assert not any(c.done() for c in calls)
        for h in held:
            h.release.set()
        for call in calls:
            assert (await call).status_code == 200
        # The slots were given back.
        r = await client.get("/v1/videos", headers={"Authorization": key})
        assert r.status_code == 200, r.text


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[tuple[str, int], str]]:
    """A real uvicorn server, for what only a real HTTP connection shows; and a key."""
    port = free_port()
    settings = edge_settings(tmp_path, port=port, public_url=f"http://127.0.0.1:{port}")
    app = create_app(settings, run_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield ("127.0.0.1", port), make_live_key(LiveServer(f"http://127.0.0.1:{port}", settings))
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_real_chunked_create_gets_its_413_before_it_ends(
    live: tuple[tuple[str, int], str],
) -> None:
    """Over a socket: the client keeps a chunked body open (it never sends the last
    chunk) and still reads the 413 once it has sent past the cap."""
    address, key = live
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(
            b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" % key.encode()
        )
        chunk = b" " * (64 * KIB)
        for _ in range(5):  # 320 KiB: past the 256 KiB cap, and the body is not finished
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b'"code":"request_too_large"' in reply
