"""The edge of the HTTP app: what every request passes before any handler runs.

One pure-ASGI middleware (a function call and a counter per request: the poll is the hot
path) does two things:

* **Sheds load.** At most ``max_concurrent_requests`` requests are served at once by this
  process; the next ones are answered at once with a 503 (Ark surface: 429
  ``ServerOverloaded``) and ``Retry-After``, unread, instead of queueing until clients time
  out. Health checks are never shed.
* **Caps request bodies while they stream.** A declared ``Content-Length`` over the cap is
  answered 413 before a byte is read; a chunked body is counted as it arrives and the
  request fails with 413 as soon as it passes the cap, so memory never holds more than the
  cap. JSON bodies are capped at ``max_json_body_bytes``, multipart forms at
  :func:`videogate.api.openai_form.form_body_limit`.

Errors are answered through the one error table (``api/errors.py``), in the envelope of
the surface the request was for. (Starlette's ``RequestBodyLimitMiddleware`` answers in
plain text with one limit for every body, and wraps every request, polls included.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videogate.api.errors import ARK_PREFIX, videogate_error_response
from videogate.api.openai_form import form_body_limit
from videogate.errors import Overloaded, PayloadTooLarge, VideogateError
from videogate.settings import Settings

MIB = 1024 * 1024
# Liveness and readiness must answer even (especially) when the process is saturated.
NEVER_SHED = frozenset({"/healthz", "/readyz"})
SHED_RETRY_AFTER_SECONDS = 1
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InFlight:
    """Requests being served by this process, counted by every edge that serves them (the
    app's middleware stack and the hot routes' lane in ``api/hot.py``)."""

    def __init__(self) -> None:
        self.n = 0


class EdgeMiddleware:
    """Load shedding and streamed body caps (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, in_flight: InFlight | None = None) -> None:
        self.app = app
        self.max_in_flight = settings.max_concurrent_requests
        self.json_limit = settings.max_json_body_bytes
        self.form_limit = form_body_limit(settings)
        self.counter = in_flight if in_flight is not None else InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counter = self.counter
        if counter.n >= self.max_in_flight and scope["path"] not in NEVER_SHED:
            await self._refuse(
                scope,
                receive,
                send,
                Overloaded(
                    f"the server is at its limit of {self.max_in_flight} requests at once; "
                    f"retry in {SHED_RETRY_AFTER_SECONDS} s",
                    retry_after=SHED_RETRY_AFTER_SECONDS,
                ),
            )
            return
        counter.n += 1
        try:
            if scope["method"] in _NO_BODY_METHODS:
                # Never read by a handler; the server's flow control keeps it off the heap.
                await self.app(scope, receive, send)
                return
            limit, what = self._limit_for(scope)
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and _over(declared, limit):
                await self._refuse(scope, receive, send, _too_large(limit, what))
                return
            await self.app(scope, _capped(receive, limit, what), send)
        finally:
            counter.n -= 1

    def _limit_for(self, scope: Scope) -> tuple[int, str]:
        content_type = _header(scope, b"content-type") or b""
        if content_type.lower().startswith(b"multipart/"):
            return self.form_limit, "form"
        return self.json_limit, "JSON"

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, exc: VideogateError
    ) -> None:
        ark = str(scope.get("path", "")).startswith(ARK_PREFIX)
        await videogate_error_response(exc, ark=ark)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _over(digits: bytes, limit: int) -> bool:
    # int() refuses thousands of digits: a length that long is over any limit anyway.
    return len(digits) > 18 or int(digits) > limit


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    hint = (
        "upload large references with POST /v1/files and pass their URLs"
        if what == "JSON"
        else "files are limited to the upload limit"
    )
    return PayloadTooLarge(
        f"the request body is over the {_size(limit)} limit for {what} bodies; {hint}"
    )


def _size(n: int) -> str:
    return f"{n / MIB:.4g} MB" if n >= MIB else f"{n / 1024:.4g} KB"


def _capped(receive: Receive, limit: int, what: str) -> Receive:
    """``receive`` that fails with 413 once more than ``limit`` body bytes have come in."""
    seen = 0

    async def capped_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit, what)
        return message

    return capped_receive
