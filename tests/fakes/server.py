"""Shared machinery of the fake upstreams.

A :class:`FakeServer` is a Starlette app served by uvicorn in a background thread on
``127.0.0.1`` (ephemeral port, kept across :meth:`FakeServer.go_offline` /
:meth:`FakeServer.go_online`). It owns the in-memory task table (guarded by one
``threading.RLock``: the test thread and the server thread both touch it), a fake clock,
the task state machine (schedule + forced transitions), request recording, the fault
switches, signed result URLs serving a real small mp4 / PNG, and a callback sender.

Subclasses (:mod:`fakes.ark`, :mod:`fakes.relay`) supply the routes, the status words and
the JSON shapes.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import copy
import hashlib
import hmac
import io
import logging
import random
import secrets
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

logger = logging.getLogger("fakes")

# A hang never lasts longer than this, whatever a test asks for.
MAX_HANG_SECONDS = 120.0
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# --------------------------------------------------------------------------------------
# Media served as results
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def sample_mp4(audio: bool = True) -> bytes:
    """A real, small H.264 mp4 (160×96, 12 frames at 24 fps; AAC mono when ``audio``)."""
    import av
    import numpy as np

    buf = io.BytesIO()
    width, height = 160, 96
    with av.open(buf, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=48_000)
            astream.layout = "mono"
        for i in range(12):
            arr = np.full((height, width, 3), (i * 20) % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if astream is not None:
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 24_000), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 48_000
            frame.pts = 0
            frame.time_base = Fraction(1, 48_000)
            for packet in astream.encode(frame):
                container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return buf.getvalue()


@lru_cache(maxsize=1)
def sample_png() -> bytes:
    """A real 160×96 PNG (the "last frame")."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (160, 96), (40, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


_TAG_BOX = b"free"
_TAG_MAGIC = b"fake-upstream-job:"


def tag_mp4(data: bytes, tag: str) -> bytes:
    """``data`` with a trailing top-level ``free`` box naming ``tag``: still a valid mp4
    (players and probes skip ``free`` boxes), but distinguishable per job."""
    payload = _TAG_MAGIC + tag.encode()
    return data + struct.pack(">I", 8 + len(payload)) + _TAG_BOX + payload


def read_mp4_tag(data: bytes) -> str | None:
    """The tag :func:`tag_mp4` appended, or None when there is none."""
    at = data.rfind(_TAG_BOX + _TAG_MAGIC)
    if at < 4:
        return None
    (size,) = struct.unpack(">I", data[at - 4 : at])
    if at - 4 + size != len(data):
        return None
    return data[at + len(_TAG_BOX) + len(_TAG_MAGIC) :].decode(errors="replace")


# --------------------------------------------------------------------------------------
# Records and faults
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One request as the fake received it (``Authorization`` kept, header names lower-case)."""

    endpoint: str
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    json: Any = None  # the parsed body when it was JSON, else None
    form: dict[str, str] = field(default_factory=dict)  # multipart/url-encoded text fields
    files: list[UploadedFile] = field(default_factory=list)
    fault: str | None = None  # the kind of the injected fault that answered, if any
    status: int | None = None  # response status; 499 = the client went away during a hang
    request_id: str = ""
    at: float = 0.0  # fake-clock unix time

    def query_values(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]

    def query_value(self, name: str) -> str | None:
        values = self.query_values(name)
        return values[0] if values else None

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None


FaultKind = Literal[
    "error", "hang", "malformed_json", "disconnect", "wrong_content_type", "oversized"
]


@dataclass(frozen=True)
class Fault:
    """What an injected failure does. Build one with the class methods.

    ``process=True`` runs the real handler first (its side effects happen: a task is
    created, a delete takes effect) and then answers with the fault instead.
    """

    kind: FaultKind
    status: int = 500
    code: str | None = None  # None: the fake's usual code for ``status``
    message: str | None = None
    param: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    size: int = 0
    declare_length: bool = True
    content_type: str = "text/html; charset=utf-8"
    process: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: str | None = None,
        process: bool = False,
    ) -> Fault:
        """Answer ``status`` with the fake's error envelope (XML on result downloads)."""
        return cls(
            "error",
            status=status,
            code=code,
            message=message,
            param=param,
            retry_after=retry_after,
            process=process,
        )

    @classmethod
    def rate_limited(
        cls, code: str | None = None, *, retry_after: str | None = None, process: bool = False
    ) -> Fault:
        """429; Ark's default code is ``RateLimitExceeded.EndpointRPMExceeded``."""
        return cls.error(429, code, retry_after=retry_after, process=process)

    @classmethod
    def quota_exceeded(cls, *, process: bool = False) -> Fault:
        """429 ``QuotaExceeded`` (Ark's answer to the queued-task cap)."""
        return cls.error(429, "QuotaExceeded", process=process)

    @classmethod
    def server_error(cls, code: str | None = None, *, process: bool = False) -> Fault:
        """500; Ark's default code is ``InternalServiceError``."""
        return cls.error(500, code, process=process)

    @classmethod
    def not_found(cls) -> Fault:
        """404 (on ``result``: object storage's ``NoSuchKey`` XML — a dead result URL)."""
        return cls.error(404)

    @classmethod
    def hang(cls, seconds: float = 30.0, *, process: bool = False) -> Fault:
        """Sleep ``seconds`` (at most 120) before answering normally.

        Without ``process`` the request is handled only after the sleep, and not at all if
        the client gave up meanwhile; with ``process`` it is handled first and only the
        response is late.
        """
        return cls("hang", seconds=min(float(seconds), MAX_HANG_SECONDS), process=process)

    @classmethod
    def malformed_json(cls, *, process: bool = False) -> Fault:
        """``200`` ``application/json`` with a truncated JSON body."""
        return cls("malformed_json", status=200, process=process)

    @classmethod
    def disconnect(cls, *, process: bool = False) -> Fault:
        """Start a response, then close the connection mid-body."""
        return cls("disconnect", status=200, process=process)

    @classmethod
    def wrong_content_type(
        cls, content_type: str = "text/html; charset=utf-8", *, status: int = 200
    ) -> Fault:
        """Answer ``status`` with an HTML page (or whatever ``content_type`` says)."""
        return cls("wrong_content_type", status=status, content_type=content_type)

    @classmethod
    def oversized(cls, megabytes: float = 64, *, declare_length: bool = True) -> Fault:
        """Stream ``megabytes`` MiB of ``video/mp4`` (with or without ``Content-Length``)."""
        return cls(
            "oversized",
            status=200,
            size=int(megabytes * 1024 * 1024),
            declare_length=declare_length,
            content_type="video/mp4",
        )


@dataclass
class FaultRule:
    fault: Fault
    endpoints: frozenset[str]  # empty: every API endpoint (not ``result``)
    remaining: int | None  # None: until cleared
    fired: int = 0
    probability: float = 1.0  # chance that a matching request gets the fault


@dataclass(frozen=True)
class CallbackAttempt:
    """One POST of a task object to a ``callback_url``."""

    task_id: str
    url: str
    status: str  # the task status carried in the body
    attempt: int  # 1 for the first try
    body: dict[str, Any]
    response_status: int | None  # None: no HTTP response (connection error, timeout)
    error: str | None
    at: float  # wall-clock unix time


class ApiError(Exception):
    """Raised by handlers; rendered in the fake's error envelope."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def bytes_response(
    request: Request, data: bytes, content_type: str, headers: dict[str, str] | None = None
) -> Response:
    """``data`` with single-range ``Range`` support (``206`` / ``416``)."""
    base = {"Accept-Ranges": "bytes", **(headers or {})}
    total = len(data)
    header = request.headers.get("range")
    if header and header.startswith("bytes=") and "," not in header:
        start_s, _, end_s = header[6:].strip().partition("-")
        try:
            if start_s:
                start = int(start_s)
                end = int(end_s) if end_s else total - 1
            else:
                start = max(total - int(end_s), 0)
                end = total - 1
        except ValueError:
            start, end = -1, -1
        end = min(end, total - 1)
        if start < 0 or start > end:
            return Response(b"", 416, {**base, "Content-Range": f"bytes */{total}"})
        return Response(
            data[start : end + 1],
            206,
            {**base, "Content-Range": f"bytes {start}-{end}/{total}"},
            media_type=content_type,
        )
    return Response(data, 200, base, media_type=content_type)


class _HalfResponse(Response):
    """Sends the head and part of the body, then returns: uvicorn closes the connection."""

    def __init__(self) -> None:
        super().__init__(b"", 200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})


def _oversized_stream(size: int) -> Iterator[bytes]:
    head = sample_mp4(False)[:1024]
    chunk = b"\0" * (1024 * 1024)
    yield head
    sent = len(head)
    while sent < size:
        piece = chunk[: min(len(chunk), size - sent)]
        sent += len(piece)
        yield piece


def storage_error(status: int, code: str, message: str) -> Response:
    """An object-storage style XML error (TOS / S3)."""
    rid = secrets.token_hex(12)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{rid}</RequestId></Error>"
    )
    return Response(body, status, {"x-tos-request-id": rid}, media_type="application/xml")


# --------------------------------------------------------------------------------------
# Callback sender
# --------------------------------------------------------------------------------------


#: Callbacks in flight at once, per fake.
SENDS_AT_ONCE = 32


class CallbackSender:
    """Best-effort POSTs in a private event loop thread; per task in order, tasks concurrent."""

    def __init__(
        self, record: Callable[[CallbackAttempt], None], timeout: float, retry_delay: float
    ) -> None:
        self._record = record
        self.timeout = timeout
        self.retry_delay = retry_delay
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(SENDS_AT_ONCE)
        self._chains: dict[str, asyncio.Future[None]] = {}

    def submit(
        self, task_id: str, url: str, body: dict[str, Any], status: str, retries: int
    ) -> None:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="fake-callbacks", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            self._pending += 1
            loop = self._loop
        payload = orjson.dumps(body)
        loop.call_soon_threadsafe(self._schedule, task_id, url, payload, body, status, retries)

    def _schedule(
        self,
        task_id: str,
        url: str,
        payload: bytes,
        body: dict[str, Any],
        status: str,
        retries: int,
    ) -> None:
        previous = self._chains.get(task_id)
        future = asyncio.ensure_future(
            self._deliver(previous, task_id, url, payload, body, status, retries)
        )
        self._chains[task_id] = future

        def forget(done: asyncio.Future[None]) -> None:
            if self._chains.get(task_id) is done:
                del self._chains[task_id]

        future.add_done_callback(forget)

    async def _deliver(
        self,
        previous: asyncio.Future[None] | None,
        task_id: str,
        url: str,
        payload: bytes,
        body: dict[str, Any],
        status: str,
        retries: int,
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            if self._client is None:
                limits = httpx.Limits(max_connections=SENDS_AT_ONCE)
                self._client = httpx.AsyncClient(limits=limits)
                self._slots = asyncio.Semaphore(SENDS_AT_ONCE)
            for attempt in range(1, retries + 2):
                code: int | None = None
                error: str | None = None
                try:
                    # The sender's own queue (a real upstream queues its callbacks): waiting
                    # here, not in httpx's pool, whose wait list is scanned on every
                    # request and response (thousands waiting took the fake's CPU).
                    async with self._slots:
                        r = await self._client.post(
                            url,
                            content=payload,
                            headers={"Content-Type": "application/json"},
                            timeout=self.timeout,
                        )
                    code = r.status_code
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self._record(
                    CallbackAttempt(task_id, url, status, attempt, body, code, error, time.time())
                )
                if code is not None and 200 <= code < 300:
                    break
                if attempt <= retries:
                    await asyncio.sleep(self.retry_delay)
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        self.wait_idle(timeout)
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            for future in list(self._chains.values()):
                future.cancel()
            if self._client is not None:
                await self._client.aclose()
                self._client = None

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        with self._lock:
            self._pending = 0
            self._chains.clear()


# --------------------------------------------------------------------------------------
# Tasks and the server
# --------------------------------------------------------------------------------------


@dataclass
class BaseTask:
    """State shared by both fakes' tasks. ``body`` is the create body exactly as received."""

    id: str
    model: str
    body: dict[str, Any]
    status: str
    created_at: float  # fake-clock unix seconds
    updated_at: float
    seq: int
    phase_since: float  # when the current status began (the schedule counts from here)
    error: dict[str, Any] | None = None
    hold: bool = False  # True: the schedule leaves this task alone
    completed_at: float | None = None
    # What the end of the running phase turns into: (status, code, message); None = success.
    outcome: tuple[str, str | None, str | None] | None = None
    video_url: str | None = None  # override of the result URL
    last_frame_url: str | None = None
    blocked: bool = False  # waited for a running slot (max_running)


TaskT = TypeVar("TaskT", bound=BaseTask)
Handler = Callable[[Request, RecordedRequest], Awaitable[Response]]


class FakeServer(Generic[TaskT]):
    """Base of :class:`fakes.FakeArk` and :class:`fakes.FakeRelay`; see those."""

    # Status words (subclasses override).
    QUEUED: ClassVar[str] = "queued"
    RUNNING: ClassVar[str] = "running"
    SUCCEEDED: ClassVar[str] = "succeeded"
    FAILED: ClassVar[str] = "failed"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"succeeded", "failed"})
    ENDPOINTS: ClassVar[frozenset[str]] = frozenset()
    RESULT_TTL: ClassVar[int] = 86400
    # Public attributes that :meth:`reset` puts back to their constructor values.
    SETTINGS: ClassVar[tuple[str, ...]] = ()
    _BASE_SETTINGS: ClassVar[tuple[str, ...]] = (
        "api_key",
        "auto_advance",
        "queued_seconds",
        "running_seconds",
        "max_running",
        "result_video",
        "result_image",
        "callback_timeout",
        "callback_retry_delay",
        "tag_results",
        "callback_drop_rate",
    )

    def __init__(
        self,
        *,
        api_key: str,
        auto_advance: bool,
        queued_seconds: float,
        running_seconds: float,
        max_running: int | None,
        tick: float,
        port: int,
        callback_timeout: float = 5.0,
        callback_retry_delay: float = 0.2,
    ) -> None:
        self.api_key = api_key
        self.auto_advance = auto_advance
        self.queued_seconds = queued_seconds
        self.running_seconds = running_seconds
        self.max_running = max_running
        self.tick = tick
        self.result_video: bytes | None = None  # None: the built-in sample mp4
        self.result_image: bytes | None = None  # None: the built-in sample PNG
        # True: every served mp4 carries its job id (tag_mp4), so results are told apart.
        self.tag_results = False
        # Share of status callbacks never sent (a lossy network between us and the client).
        self.callback_drop_rate = 0.0
        self.callbacks_dropped = 0
        self._random = random.Random()
        self._port = port
        self._lock = threading.RLock()
        self._lifecycle = threading.Lock()
        self._tasks: dict[str, TaskT] = {}
        self._deleted: dict[str, TaskT] = {}
        self._active: dict[str, TaskT] = {}
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._offset = 0.0
        self._requests: list[RecordedRequest] = []
        self._callbacks: list[CallbackAttempt] = []
        self._faults: list[FaultRule] = []
        self._next_outcomes: list[tuple[str, str | None, str | None]] = []
        self._internal_errors: list[str] = []
        self._secret = secrets.token_bytes(16)
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._server_stopping = threading.Event()
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._timers: list[threading.Timer] = []
        self._started = False
        self._sender = CallbackSender(self._record_callback, callback_timeout, callback_retry_delay)
        self._app = Starlette(routes=self._all_routes())
        self._settings = self._current_settings()

    def _current_settings(self) -> dict[str, Any]:
        names = {*self._BASE_SETTINGS, *self.SETTINGS}
        return {name: copy.copy(getattr(self, name)) for name in names}

    @property
    def callback_timeout(self) -> float:
        return self._sender.timeout

    @callback_timeout.setter
    def callback_timeout(self, value: float) -> None:
        self._sender.timeout = value

    @property
    def callback_retry_delay(self) -> float:
        return self._sender.retry_delay

    @callback_retry_delay.setter
    def callback_retry_delay(self, value: float) -> None:
        self._sender.retry_delay = value

    # ---- subclass hooks ------------------------------------------------------------

    def _routes(self) -> list[Route]:
        raise NotImplementedError

    def _error_body(self, err: ApiError, rec: RecordedRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _default_code(self, status: int) -> str:
        raise NotImplementedError

    def _on_transition_locked(self, task: TaskT, old: str | None) -> None:
        """Called (lock held) after every status change, including creation (``old=None``)."""

    def _deadline(self, task: TaskT) -> float | None:
        """Fake-clock time at which a non-terminal task expires (None: never)."""
        return None

    def _expire_locked(self, task: TaskT, at: float) -> None:
        raise NotImplementedError

    def _result_bytes(self, task_id: str, ext: str) -> tuple[bytes, str]:
        if ext == "png":
            return self.result_image or sample_png(), "image/png"
        return self.result_video or sample_mp4(True), "video/mp4"

    def _response_headers(self, rec: RecordedRequest) -> dict[str, str]:
        return {"X-Request-Id": rec.request_id}

    def _served_bytes(self, task_id: str, ext: str) -> tuple[bytes, str]:
        """What a result download answers: :meth:`_result_bytes`, tagged when asked to."""
        data, content_type = self._result_bytes(task_id, ext)
        if self.tag_results and ext == "mp4":
            data = tag_mp4(data, task_id)
        return data, content_type

    def expected_video(self, task_id: str) -> bytes:
        """The exact bytes a download of ``task_id``'s video answers."""
        return self._served_bytes(task_id, "mp4")[0]

    def _send_callback_locked(
        self, task_id: str, url: str, body: dict[str, Any], status: str, retries: int
    ) -> None:
        """Queue a callback, unless ``callback_drop_rate`` drops it (counted, never sent)."""
        if self.callback_drop_rate and self._random.random() < self.callback_drop_rate:
            self.callbacks_dropped += 1
            return
        self._sender.submit(task_id, url, body, status, retries)

    # ---- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (result URLs live here)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> Self:
        with self._lifecycle:
            if self._started:
                return self
            sample_mp4(True)
            sample_mp4(False)
            sample_png()
            self._start_server()
            self._ticker_stop.clear()
            self._ticker = threading.Thread(
                target=self._tick_loop, name=f"{type(self).__name__}-ticker", daemon=True
            )
            self._ticker.start()
            self._started = True
        return self

    def stop(self) -> None:
        with self._lifecycle:
            if not self._started:
                return
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._ticker_stop.set()
            if self._ticker is not None:
                self._ticker.join(5)
            self._stop_server()
            self._sender.close()
            self._started = False

    async def astart(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    def _start_server(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                sock.bind(("127.0.0.1", self._port))
                break
            except OSError:
                if self._port == 0 or time.monotonic() > deadline:
                    sock.close()
                    raise
                time.sleep(0.05)
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=4096,
        )
        server = uvicorn.Server(config)
        self._server_stopping.clear()
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"{type(self).__name__}-server",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        self._server, self._server_thread = server, thread

    def _stop_server(self) -> None:
        server, thread = self._server, self._server_thread
        self._server = self._server_thread = None
        if server is None or thread is None:
            return
        self._server_stopping.set()
        server.should_exit = True
        thread.join(15)

    def go_offline(self) -> None:
        """Stop listening: connections are refused until :meth:`go_online` (state is kept)."""
        with self._lifecycle:
            self._stop_server()

    def go_online(self) -> None:
        """Listen again on the same port."""
        with self._lifecycle:
            if self._server is None and self._started:
                self._start_server()

    @property
    def online(self) -> bool:
        return self._server is not None

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """``with fake.offline(): ...`` — refuse connections inside the block."""
        self.go_offline()
        try:
            yield
        finally:
            self.go_online()

    def offline_for(self, seconds: float) -> None:
        """Refuse connections now and come back by itself after ``seconds``."""
        self.go_offline()
        timer = threading.Timer(seconds, self.go_online)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # ---- clock and schedule -------------------------------------------------------

    def now(self) -> float:
        """The fake clock: wall time plus everything passed to :meth:`advance`."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward and apply every transition that became due."""
        with self._lock:
            self._offset += seconds
            self._advance_all_locked()

    def set_schedule(
        self,
        *,
        queued_seconds: float | None = None,
        running_seconds: float | None = None,
        max_running: int | Literal["keep"] | None = "keep",
        auto_advance: bool | None = None,
    ) -> None:
        with self._lock:
            if queued_seconds is not None:
                self.queued_seconds = queued_seconds
            if running_seconds is not None:
                self.running_seconds = running_seconds
            if max_running != "keep":
                self.max_running = max_running
            if auto_advance is not None:
                self.auto_advance = auto_advance

    def _tick_loop(self) -> None:
        while not self._ticker_stop.wait(self.tick):
            if not self.auto_advance:
                continue
            try:
                with self._lock:
                    self._advance_all_locked()
            except Exception:  # pragma: no cover - a bug in the fake
                logger.exception("fake ticker")
                self._internal_errors.append("ticker crashed")

    def _advance_all_locked(self) -> None:
        now = self.now()
        for task in list(self._active.values()):
            self._advance_locked(task, now)

    def _advance_locked(self, task: TaskT, now: float | None = None) -> None:
        if not self.auto_advance or task.hold or task.status in self.TERMINAL:
            return
        now = self.now() if now is None else now
        deadline = self._deadline(task)
        limit = now if deadline is None else min(now, deadline)
        while True:
            if task.status == self.QUEUED:
                due = task.phase_since + self.queued_seconds
                if limit < due:
                    break
                if (
                    self.max_running is not None
                    and self._counts.get(self.RUNNING, 0) >= self.max_running
                ):
                    task.blocked = True
                    break
                self._set_status_locked(task, self.RUNNING, limit if task.blocked else due)
                task.blocked = False
            elif task.status == self.RUNNING:
                due = task.phase_since + self.running_seconds
                if limit < due:
                    break
                self._finish_locked(task, due)
            else:
                break
        if deadline is not None and deadline <= now and task.status not in self.TERMINAL:
            self._expire_locked(task, deadline)

    def _finish_locked(self, task: TaskT, at: float) -> None:
        if task.outcome is None:
            self._set_status_locked(task, self.SUCCEEDED, at)
            return
        status, code, message = task.outcome
        if status == self.FAILED:
            self._set_status_locked(task, status, at, error={"code": code, "message": message})
        elif status == "expired":
            self._expire_locked(task, at)
        else:
            self._set_status_locked(task, status, at)

    def _set_status_locked(
        self, task: TaskT, status: str, at: float, error: dict[str, Any] | None = None
    ) -> None:
        old = task.status
        if old in self._counts:
            self._counts[old] -= 1
        self._counts[status] = self._counts.get(status, 0) + 1
        task.status = status
        task.updated_at = max(at, task.created_at)
        task.phase_since = at
        task.error = error
        if status == self.SUCCEEDED:
            task.completed_at = task.updated_at
        if status in self.TERMINAL or task.hold:
            self._active.pop(task.id, None)
        else:
            self._active[task.id] = task
        self._on_transition_locked(task, old)

    def _add_task_locked(self, task: TaskT) -> None:
        self._tasks[task.id] = task
        self._counts[task.status] = self._counts.get(task.status, 0) + 1
        if self._next_outcomes:
            task.outcome = self._next_outcomes.pop(0)
        if task.status not in self.TERMINAL:
            self._active[task.id] = task
        self._on_transition_locked(task, None)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _get_task_locked(self, task_id: str) -> TaskT:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise KeyError(f"no task {task_id!r} in {type(self).__name__}") from None

    def count(self, status: str) -> int:
        """How many stored tasks are in ``status`` right now."""
        with self._lock:
            return self._counts.get(status, 0)

    # ---- forced transitions --------------------------------------------------------

    def complete(
        self, task_id: str, *, video_url: str | None = None, last_frame_url: str | None = None
    ) -> None:
        """Succeed now. ``video_url`` / ``last_frame_url`` replace the fake's own result URLs
        (e.g. a dead port, or a file on another test server)."""
        with self._lock:
            task = self._get_task_locked(task_id)
            task.video_url = video_url
            task.last_frame_url = last_frame_url
            self._set_status_locked(task, self.SUCCEEDED, self.now())

    def fail(self, task_id: str, code: str, message: str) -> None:
        """Fail now with ``error: {code, message}``."""
        with self._lock:
            task = self._get_task_locked(task_id)
            self._set_status_locked(
                task, self.FAILED, self.now(), error={"code": code, "message": message}
            )

    def set_status(
        self,
        task_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        hold: bool = True,
    ) -> None:
        """Put the task in any status string (unknown ones too). With ``hold`` (default) the
        schedule leaves it there; ``hold=False`` lets the schedule go on from now."""
        with self._lock:
            task = self._get_task_locked(task_id)
            task.hold = hold
            self._set_status_locked(task, status, self.now(), error=error)

    def resume(self, task_id: str) -> None:
        """Let the schedule move a held task again, counting from now."""
        with self._lock:
            task = self._get_task_locked(task_id)
            task.hold = False
            task.phase_since = self.now()
            if task.status not in self.TERMINAL:
                self._active[task.id] = task

    def fail_next_tasks(self, count: int, code: str, message: str) -> None:
        """The next ``count`` created tasks fail with ``code``/``message`` when their
        running phase ends (asynchronous failure, as content moderation does)."""
        with self._lock:
            self._next_outcomes.extend([(self.FAILED, code, message)] * count)

    def wait_for_status(self, task_id: str, *statuses: str, timeout: float = 5.0) -> TaskT:
        """Block until the task is in one of ``statuses``; returns a snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                task = self._get_task_locked(task_id)
                self._advance_locked(task)
                if task.status in statuses:
                    return copy.copy(task)
            if time.monotonic() > deadline:
                raise AssertionError(f"{task_id} is {task.status}, not {statuses}")
            time.sleep(0.01)

    def reset(self) -> None:
        """Back to just-constructed: forget tasks, requests, callbacks, faults, scripted
        outcomes and the clock offset, put settings back to the constructor's values and
        come back online (same port). Cheap: share one started fake, reset per test."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._started and not self.online:
            self.go_online()
        self._sender.wait_idle(2.0)
        with self._lock:
            for name, value in self._settings.items():
                setattr(self, name, copy.copy(value))
            self._tasks.clear()
            self._deleted.clear()
            self._active.clear()
            self._counts.clear()
            self._requests.clear()
            self._callbacks.clear()
            self._faults.clear()
            self._next_outcomes.clear()
            self._internal_errors.clear()
            self._offset = 0.0
            self.callbacks_dropped = 0

    # ---- records -------------------------------------------------------------------

    @property
    def tasks(self) -> dict[str, TaskT]:
        """Snapshot: task id → task (copies; ``body`` is the create body as received)."""
        with self._lock:
            return {k: copy.copy(v) for k, v in self._tasks.items()}

    @property
    def deleted_tasks(self) -> dict[str, TaskT]:
        with self._lock:
            return {k: copy.copy(v) for k, v in self._deleted.items()}

    def task(self, task_id: str) -> TaskT:
        """Snapshot of one task (KeyError if unknown or deleted)."""
        with self._lock:
            task = self._get_task_locked(task_id)
            self._advance_locked(task)
            return copy.copy(task)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.endpoint == endpoint]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def callbacks(self) -> list[CallbackAttempt]:
        with self._lock:
            return list(self._callbacks)

    def wait_for_callbacks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued callback delivery (with retries) has finished."""
        return self._sender.wait_idle(timeout)

    @property
    def internal_errors(self) -> list[str]:
        """Exceptions inside the fake's own handlers (should stay empty)."""
        with self._lock:
            return list(self._internal_errors)

    def _record_callback(self, attempt: CallbackAttempt) -> None:
        with self._lock:
            self._callbacks.append(attempt)

    # ---- faults --------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        on: str | Iterable[str] = "*",
        *,
        times: int | None = 1,
        probability: float = 1.0,
    ) -> FaultRule:
        """Answer the next ``times`` requests to ``on`` (endpoint name(s), ``"*"`` = every
        API endpoint but ``result``) with ``fault``; ``times=None``: until cleared.
        With ``probability`` < 1 each matching request gets it only by chance (see
        :meth:`seed_faults`). Rules are tried in injection order."""
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"probability must be in (0, 1], not {probability}")
        names = frozenset() if on == "*" else frozenset([on] if isinstance(on, str) else on)
        unknown = names - self.ENDPOINTS
        if unknown:
            raise ValueError(f"unknown endpoint(s) {sorted(unknown)}; use {sorted(self.ENDPOINTS)}")
        rule = FaultRule(fault, names, times, probability=probability)
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def seed_faults(self, seed: int) -> None:
        """Make the chance of probabilistic faults and dropped callbacks repeatable."""
        with self._lock:
            self._random.seed(seed)

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.endpoints and endpoint not in rule.endpoints:
                    continue
                if not rule.endpoints and endpoint in ("result", "unknown"):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                rule.fired += 1
                return rule.fault
        return None

    # ---- request dispatch ----------------------------------------------------------

    def _all_routes(self) -> list[Route]:
        return [
            *self._routes(),
            self._route("/results/{name}", "result", self._result, ["GET", "HEAD"], auth=False),
            Route("/{path:path}", self._unknown_route, methods=ALL_METHODS),
        ]

    def _route(
        self, path: str, endpoint: str, handler: Handler, methods: list[str], auth: bool = True
    ) -> Route:
        async def run(request: Request) -> Response:
            return await self._dispatch(request, endpoint, handler, auth)

        return Route(path, run, methods=methods)

    def _authorized(self, rec: RecordedRequest) -> bool:
        return rec.bearer is not None and hmac.compare_digest(rec.bearer, self.api_key)

    def _auth_error(self) -> ApiError:
        raise NotImplementedError

    async def _unknown_route(self, request: Request) -> Response:
        async def handler(request: Request, rec: RecordedRequest) -> Response:
            raise ApiError(404, self._default_code(404), f"no route {request.url.path}")

        return await self._dispatch(request, "unknown", handler, auth=False)

    async def _dispatch(
        self, request: Request, endpoint: str, handler: Handler, auth: bool
    ) -> Response:
        body = await request.body()
        rec = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            path_params={k: str(v) for k, v in request.path_params.items()},
            request_id=f"02{int(time.time() * 1000)}{secrets.token_hex(8)}",
            at=self.now(),
        )
        if body:
            with contextlib.suppress(orjson.JSONDecodeError):
                rec.json = orjson.loads(body)
        with self._lock:
            self._requests.append(rec)
        try:
            if auth and not self._authorized(rec):
                raise self._auth_error()
            fault = self._take_fault(endpoint)
            if fault is None:
                response = await handler(request, rec)
            else:
                rec.fault = fault.kind
                response = await self._apply_fault(fault, endpoint, request, rec, handler)
        except ApiError as err:
            response = self._render_error(endpoint, err, rec)
        except Exception as exc:  # a bug in the fake: answer, and remember it
            logger.exception("fake handler crashed")
            with self._lock:
                self._internal_errors.append(f"{endpoint}: {type(exc).__name__}: {exc}")
            response = self._render_error(
                endpoint, ApiError(500, self._default_code(500), f"fake crashed: {exc}"), rec
            )
        if rec.status is None:
            rec.status = response.status_code
        if endpoint != "result":
            for k, v in self._response_headers(rec).items():
                response.headers.setdefault(k, v)
        return response

    def _render_error(self, endpoint: str, err: ApiError, rec: RecordedRequest) -> Response:
        if endpoint == "result":
            code = {403: "AccessDenied", 404: "NoSuchKey"}.get(err.status, "InternalError")
            if err.code and err.code != self._default_code(err.status):
                code = err.code
            return storage_error(err.status, code, err.message)
        return json_response(self._error_body(err, rec), err.status)

    async def _apply_fault(
        self,
        fault: Fault,
        endpoint: str,
        request: Request,
        rec: RecordedRequest,
        handler: Handler,
    ) -> Response:
        if fault.kind == "hang":
            if fault.process:
                response = await self._safe_handle(handler, request, rec)
                if not await self._sleep(fault.seconds, request):
                    rec.status = 499
                return response
            if not await self._sleep(fault.seconds, request):
                rec.status = 499
                return Response(b"", 499)
            return await self._safe_handle(handler, request, rec)
        if fault.process:
            await self._safe_handle(handler, request, rec)
        if fault.kind == "error":
            err = ApiError(
                fault.status,
                fault.code or self._default_code(fault.status),
                fault.message or f"injected {fault.status}",
                fault.param,
            )
            response = self._render_error(endpoint, err, rec)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return response
        if fault.kind == "malformed_json":
            return Response(
                b'{"id": "cgt-2026', 200, media_type="application/json"
            )  # truncated on purpose
        if fault.kind == "disconnect":
            return _HalfResponse()
        if fault.kind == "wrong_content_type":
            page = (
                "<!DOCTYPE html><html><head><title>Bad Gateway</title></head>"
                "<body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
            )
            return Response(page, fault.status, headers={"Content-Type": fault.content_type})
        if fault.kind == "oversized":
            headers = {"Content-Length": str(fault.size)} if fault.declare_length else {}
            return StreamingResponse(
                _oversized_stream(fault.size), 200, headers, media_type="video/mp4"
            )
        raise AssertionError(fault.kind)

    async def _safe_handle(
        self, handler: Handler, request: Request, rec: RecordedRequest
    ) -> Response:
        try:
            return await handler(request, rec)
        except ApiError as err:
            return self._render_error(rec.endpoint, err, rec)

    async def _sleep(self, seconds: float, request: Request) -> bool:
        """Sleep up to ``seconds``; False if the client left or the server is stopping."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(seconds, MAX_HANG_SECONDS)
        while True:
            if self._server_stopping.is_set() or await request.is_disconnected():
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(0.05, remaining))

    # ---- results -------------------------------------------------------------------

    def _signature(self, name: str, date: str, expires: int) -> str:
        msg = f"GET\n{name}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def result_url(self, task_id: str, ext: str, issued_at: float, ttl: int | None = None) -> str:
        """A presigned-style URL on this fake: ``/results/{task_id}.{ext}?X-Tos-…``."""
        ttl = self.RESULT_TTL if ttl is None else ttl
        name = f"{task_id}.{ext}"
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(issued_at))
        sig = self._signature(name, date, ttl)
        return (
            f"{self.root_url}/results/{name}?X-Tos-Algorithm=TOS4-HMAC-SHA256"
            f"&X-Tos-Date={date}&X-Tos-Expires={ttl}&X-Tos-SignedHeaders=host"
            f"&X-Tos-Signature={sig}"
        )

    async def _result(self, request: Request, rec: RecordedRequest) -> Response:
        if request.method == "HEAD":
            # The signature is bound to the method, as on TOS: HEAD fails.
            return Response(b"", 403, media_type="application/xml")
        name = rec.path_params["name"]
        date = rec.query_value("X-Tos-Date") or ""
        expires_s = rec.query_value("X-Tos-Expires") or ""
        sig = rec.query_value("X-Tos-Signature") or ""
        if not expires_s.isdigit() or not hmac.compare_digest(
            sig, self._signature(name, date, int(expires_s))
        ):
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        try:
            issued = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise ApiError(403, "AccessDenied", "Invalid X-Tos-Date") from None
        if self.now() > issued + int(expires_s):
            raise ApiError(403, "AccessDenied", "Request has expired")
        task_id, _, ext = name.rpartition(".")
        data, content_type = self._served_bytes(task_id, ext)
        return bytes_response(request, data, content_type)
