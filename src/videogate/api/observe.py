"""Per-request observation, as one pure ASGI middleware: the request id, the request
metrics, and the log context. Cheap on purpose (the poll path is hot): a dict lookup, a
clock read and a counter increment per request."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any

import structlog
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videogate.metrics import Metrics

REQUEST_ID = b"x-request-id"
# An incoming id is kept when it is a sane token; anything else is replaced.
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class ObserveMiddleware:
    """Keeps or makes ``X-Request-Id``, returns it, binds it (and the route) to the log
    context, and counts the request by route template and status class."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Request ids: a random per-process prefix and a counter, unique across processes
        # and far cheaper than a uuid4 (a system call) per request.
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count(1)
        # Metric children by label values: ``labels()`` costs a lock and a tuple per call.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                request_id = value if _SANE_ID.match(value) else b""
                break
        if not request_id:
            request_id = f"{self._id_prefix}{next(self._ids):08x}".encode()
        rid = request_id.decode()
        # Each request runs in its own asyncio task, so the binding ends with it.
        structlog.contextvars.bind_contextvars(request_id=rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = _route_template(scope)
            key = (route, scope["method"], status // 100)
            counter = self._counted.get(key)
            if counter is None:
                status_class = _STATUS_CLASS.get(status // 100, "5xx")
                counter = self.metrics.http_requests.labels(route, scope["method"], status_class)
                self._counted[key] = counter
            counter.inc()
            timer = self._timed.get(route)
            if timer is None:
                timer = self._timed[route] = self.metrics.http_latency.labels(route)
            timer.observe(time.perf_counter() - started)


class TemplatedRoute(Route):
    """A plain Starlette route (no FastAPI machinery) that still tells the middleware its
    path template, as FastAPI's routes do."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _route_template(scope: dict[str, Any] | Scope) -> str:
    """``/v1/videos/{task_id}``, never the task id itself: bounded label values."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
