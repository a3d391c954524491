"""Shared by the webhook tests (tests/worker, tests/api, tests/web): a receiver on loopback
that checks signatures and answers as scripted, and the app on a fake clock with
``settled`` to let a task's events run their course."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from clocks import FakeClock
from conftest import TEST_BASE, shared_tls
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import NewKey, create_key
from videogate.settings import Settings
from videogate.store.records import TaskRecord
from videogate.store.tables import TaskEvent

# Fixtures here (settings, receiver, api): a module imports those it uses and names them in
# its __all__.

HANG = -1  # a scripted answer: hold the request past the sender's time limit, then 200
TIMEOUT = 1.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "var",
        "public_url": TEST_BASE,
        "allow_private_urls": True,
        "worker_poll_interval": 0.05,
        "render_processes": 1,
        "key_cache_seconds": 0,
        "webhook_timeout_seconds": TIMEOUT,
    }
    values.update(overrides)
    return Settings(**values)


# A receiver on loopback ------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int  # the status we answered (HANG: the sender had given up by then)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def status(self) -> str:
        return str(self.payload["status"])


@dataclass
class Receiver:
    """Records every POST, checks its Standard Webhooks signature, answers per ``script``
    (one entry per request, in order; 200 once it runs out)."""

    url: str
    secret: str = ""
    script: list[int] = field(default_factory=list)
    always: int = 200
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.always

    def acked(self) -> list[Received]:
        return [r for r in self.got if 200 <= r.answered < 300]


@contextlib.contextmanager
def receiver_server() -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(receiver.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            answer = receiver.answer()
            with receiver.lock:
                receiver.got.append(Received(headers, body, verified, answer))
            if answer == HANG:
                time.sleep(TIMEOUT * 3)
                answer = 200
            with contextlib.suppress(OSError):  # the sender may have given up (HANG)
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/videogate")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiver_server() as r:
        yield r


# Helpers ----------------------------------------------------------------------------------


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    state: ApiState
    key: NewKey
    clock: FakeClock

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key.key}"}


@contextlib.asynccontextmanager
async def open_api(
    settings: Settings, *, run_worker: bool = True, clock: FakeClock | None = None
) -> AsyncIterator[Api]:
    """The app on a fake clock (``settled`` moves it: backoffs take their real length)."""
    clock = clock or FakeClock(start=float(round(time.time())))  # whole seconds: exact sums
    app = create_app(settings, run_worker=run_worker, clock=clock, tls=shared_tls())
    async with app.router.lifespan_context(app):
        state: ApiState = app.state.api
        key = await create_key(state.ctx.store, name="hooks")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield Api(app, client, state, key, clock)


@pytest.fixture
async def api(settings: Settings, receiver: Receiver) -> AsyncIterator[Api]:
    async with open_api(settings) as a:
        receiver.secret = a.key.webhook_secret
        yield a


async def settled(api: Api, task_id: str, timeout: float = 60.0) -> list[TaskEvent]:
    """The task's events once the task is finished and none is pending any more.

    Meanwhile the fake clock moves: at the pace of real time (so no lease lapses under an
    attempt in flight, and an attempt's duration is what it took) and, when nothing is in
    flight, straight on to the next retry or step."""
    store, clock = api.state.ctx.store, api.clock
    deadline = last = time.monotonic()
    deadline += timeout
    while time.monotonic() < deadline:
        task = await store.tasks.get(task_id)
        events = await store.webhooks.events(task_id)
        if (
            task is not None
            and task.status in TERMINAL
            and events
            and all(e.state != "pending" for e in events)
        ):
            return events
        real = time.monotonic()
        clock.advance(max(real - last, _until_next(task, events, clock.now())))
        last = real
        await asyncio.sleep(0.05)  # real I/O: the worker, the database, the receiver
    raise AssertionError(f"the webhook events of {task_id} did not settle: {events}")


TERMINAL = ("succeeded", "failed", "cancelled", "expired")


def _until_next(task: TaskRecord | None, events: list[TaskEvent], now: float) -> float:
    """Seconds until the next retry or step; 0 while one is in flight."""
    pending = [e for e in events if e.state == "pending"]
    if any(e.lease_until is not None for e in pending):
        return 0.0
    due = [e.next_attempt_at for e in pending if e.next_attempt_at is not None]
    if task is not None and task.status not in TERMINAL:
        if task.lease_owner is not None:
            return 0.0
        if task.next_run_at is not None:
            due.append(task.next_run_at)
    # A due event may be waiting for an earlier one of its task: the soonest future time.
    ahead = [at - now for at in due if at > now]
    return min(ahead) if ahead else 0.0
