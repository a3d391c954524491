"""``AsyncClient``: create, re-attach, list; ``generate`` does the whole loop in one call."""

from __future__ import annotations

import asyncio
import builtins
import os
import time
import uuid
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict

import httpx

from videogate.client._api import dialect_for, models_unsupported
from videogate.client._errors import ConfigurationError, ProtocolError, UnsupportedOperation
from videogate.client._models import DEFAULT_MODEL, ApiName, PreparedRequest, TaskPage
from videogate.client._references import ReferenceLike, content_items
from videogate.client._task import AsyncTask, GeneratedVideo, ProgressCallback
from videogate.client._transport import RetryMode, RetryPolicy, Transport

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
UPLOAD_REUSE_MARGIN = 3600.0  # re-upload when a cached upload URL expires within this


def _version() -> str:
    try:
        return version("videogate")
    except Exception:
        return "0"


class CreateOptions(TypedDict, total=False):
    """The keyword options of :meth:`AsyncClient.create` (for the sync wrapper)."""

    model: str
    references: Sequence[ReferenceLike]
    ratio: str | None
    duration: int | None
    resolution: str | None
    seed: int | None
    generate_audio: bool | None
    watermark: bool | None
    return_last_frame: bool | None
    callback_url: str | None
    extra: dict[str, Any] | None


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` value."""
    return f"vg-{uuid.uuid4().hex}"


class AsyncClient:
    """The asynchronous SDK client.

    ``AsyncClient(base_url, api_key, api="videogate" | "relay" | "ark")``:

    * ``videogate`` (default): a videogate server; local reference files are uploaded
      through ``POST /v1/files``, and creates carry an ``Idempotency-Key`` the server
      honours, so they are retried safely.
    * ``relay``: any Seedance relay with the ``/v1/videos`` shape (``base_url`` as an
      OpenAI client takes it, e.g. ``https://relay.example/v1``).
    * ``ark``: Volcengine Ark / BytePlus ModelArk (``base_url`` such as
      ``https://ark.cn-beijing.volces.com/api/v3``).

    With ``relay`` and ``ark``, local images and audio are sent inline as ``data:`` URLs;
    a reference video must be a URL. ``base_url`` and ``api_key`` default to
    ``VIDEOGATE_BASE_URL`` (else ``http://127.0.0.1:8000``) and ``VIDEOGATE_API_KEY``; a
    bare host gets the dialect's usual path (``/v1``, ``/api/v3``).

    GET and DELETE are retried on connection errors, 429 and 5xx (``Retry-After``
    honoured) up to ``max_retries`` times; a create is retried the same way when the
    server honours ``Idempotency-Key`` (the SDK always sends one), and otherwise only
    when the request surely did nothing. ``poll_interval`` fixes the pause between polls
    (default: the server's hint, else a backoff). Pass ``http_client`` to bring your own
    ``httpx.AsyncClient`` (proxies, transports, event hooks); it is not closed for you.

    Use it as ``async with AsyncClient(...) as client:`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        api: ApiName | str = "videogate",
        timeout: float = 60.0,
        max_retries: int = 4,
        poll_interval: float | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._dialect = dialect_for(api)
        self.api: ApiName = self._dialect.name
        raw_base = base_url or os.environ.get("VIDEOGATE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = self._dialect.base_url(raw_base)
        key = api_key if api_key is not None else os.environ.get("VIDEOGATE_API_KEY")
        if not key:
            raise ConfigurationError(
                "no API key: pass api_key=… (or --api-key) or set VIDEOGATE_API_KEY"
            )
        self.poll_interval = poll_interval
        self._transport = Transport(
            self.base_url,
            key,
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries),
            http_client=http_client,
            user_agent=f"videogate-client/{_version()}",
        )
        self._uploads: dict[tuple[str, int, int], tuple[str, float]] = {}
        self._upload_locks: dict[tuple[str, int, int], asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"<AsyncClient {self.api} {self.base_url}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (not a caller-supplied ``http_client``)."""
        await self._transport.aclose()

    @property
    def honours_idempotency(self) -> bool:
        """Whether the server deduplicates creates by ``Idempotency-Key`` (videogate)."""
        return self._dialect.honours_idempotency

    # ---- create -----------------------------------------------------------------------

    async def prepare(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        references: Sequence[ReferenceLike] = (),
        ratio: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        generate_audio: bool | None = None,
        watermark: bool | None = None,
        return_last_frame: bool | None = None,
        callback_url: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> PreparedRequest:
        """Build the create body: references uploaded (videogate) or inlined, options
        set. ``None`` leaves an option to the server's default; ``extra`` adds any other
        body field (e.g. ``{"service_tier": "flex"}``). :meth:`create` is this plus
        :meth:`submit`."""
        if not prompt:
            raise ConfigurationError("the prompt is empty")
        uploader = self._upload_url if self._dialect.uploads else None
        items = await content_items(references, uploader=uploader, api_name=self.api)
        options: dict[str, Any] = {
            "ratio": ratio,
            "duration": duration,
            "resolution": resolution,
            "seed": seed,
            "generate_audio": generate_audio,
            "watermark": watermark,
            "return_last_frame": return_last_frame,
            "callback_url": callback_url,
        }
        options = {k: v for k, v in options.items() if v is not None}
        options.update(extra or {})
        return PreparedRequest(self._dialect.create_body(model, prompt, items, options))

    async def submit(
        self, request: PreparedRequest, *, idempotency_key: str | None = None
    ) -> AsyncTask:
        """``POST`` a prepared request, with ``idempotency_key`` (a new one if None)."""
        key = idempotency_key or new_idempotency_key()
        retry: RetryMode = "idempotent" if self._dialect.honours_idempotency else "unsent"
        body, response = await self._transport.request(
            "POST",
            self._dialect.create_path,
            json_body=request.body,
            headers={"Idempotency-Key": key},
            retry=retry,
        )
        state = self._dialect.parse_created(body, response.headers)
        return AsyncTask(self, state.id, state)

    async def create(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        references: Sequence[ReferenceLike] = (),
        ratio: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        generate_audio: bool | None = None,
        watermark: bool | None = None,
        return_last_frame: bool | None = None,
        callback_url: str | None = None,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncTask:
        """Create a task and return its handle (without waiting).

        ``references`` holds :class:`Image`, :class:`Video`, :class:`Audio` (or bare
        paths / URLs, typed by extension), in the order the prompt counts them
        ("image 1" is the first image). Options left ``None`` take the server's
        defaults (16:9, 5 s, 720p, with audio). Raises :class:`InvalidReference`,
        :class:`APIStatusError` subclasses (e.g. :class:`BadRequestError`).
        """
        prepared = await self.prepare(
            prompt,
            model=model,
            references=references,
            ratio=ratio,
            duration=duration,
            resolution=resolution,
            seed=seed,
            generate_audio=generate_audio,
            watermark=watermark,
            return_last_frame=return_last_frame,
            callback_url=callback_url,
            extra=extra,
        )
        return await self.submit(prepared, idempotency_key=idempotency_key)

    async def generate(
        self,
        prompt: str,
        output: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        model: str = DEFAULT_MODEL,
        references: Sequence[ReferenceLike] = (),
        ratio: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        generate_audio: bool | None = None,
        watermark: bool | None = None,
        return_last_frame: bool | None = None,
        callback_url: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> GeneratedVideo:
        """Create, wait and download to ``output``, in one call.

        Raises :class:`TaskFailed` or :class:`TaskTimeout` (with the task id, to come
        back with :meth:`task`)."""
        task = await self.create(
            prompt,
            model=model,
            references=references,
            ratio=ratio,
            duration=duration,
            resolution=resolution,
            seed=seed,
            generate_audio=generate_audio,
            watermark=watermark,
            return_last_frame=return_last_frame,
            callback_url=callback_url,
            extra=extra,
        )
        await task.wait(timeout, on_progress=on_progress)
        path = await task.download(output)
        return await task._generated(path)

    # ---- existing tasks ---------------------------------------------------------------

    def task(self, task_id: str) -> AsyncTask:
        """Re-attach to an existing task by id (no request until you use it)."""
        if not task_id or "/" in task_id:
            raise ConfigurationError(f"{task_id!r} is not a task id")
        return AsyncTask(self, task_id)

    async def get(self, task_id: str) -> AsyncTask:
        """Re-attach and read the task now (raises :class:`NotFoundError` if unknown)."""
        task = self.task(task_id)
        await task.refresh()
        return task

    async def list(self, *, limit: int = 20, after: str | None = None) -> TaskPage:
        """The caller's tasks, newest first; ``after`` is a previous page's
        ``next_after``."""
        params = self._dialect.list_params(limit, after)
        body, _ = await self._transport.request(
            "GET", self._dialect.create_path, params=params, retry="idempotent"
        )
        return self._dialect.parse_list(body, limit, after)

    async def models(self) -> builtins.list[dict[str, Any]]:
        """The models the key can use (``GET /models``; not on Ark)."""
        path = self._dialect.models_path
        if path is None:
            raise models_unsupported(self._dialect)
        body, _ = await self._transport.request("GET", path, retry="idempotent")
        return self._dialect.parse_models(body)

    # ---- uploads (videogate) ------------------------------------------------------------

    async def upload(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Upload a reference file (``POST /v1/files``, videogate only); returns the file
        object, whose ``url`` can be used as a reference."""
        if not self._dialect.uploads:
            raise UnsupportedOperation(f"the {self.api} API has no file uploads")
        file = Path(path).expanduser()  # noqa: ASYNC240 - no I/O
        data = await asyncio.to_thread(file.read_bytes)
        body, _ = await self._transport.request(
            "POST",
            "files",
            files={"file": (file.name, data)},
            # A repeated upload only leaves an unused file behind.
            retry="idempotent",
        )
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise ProtocolError(f"the upload response has no url: {str(body)[:200]}")
        return body

    async def _upload_url(self, path: Path) -> str:
        """The URL of ``path`` uploaded once per client (reused while it stays valid)."""

        def identity() -> tuple[str, int, int]:
            stat = path.stat()
            return str(path.resolve()), stat.st_size, stat.st_mtime_ns

        cache_key = await asyncio.to_thread(identity)
        lock = self._upload_locks.setdefault(cache_key, asyncio.Lock())
        async with lock:
            cached = self._uploads.get(cache_key)
            if cached and cached[1] > time.time() + UPLOAD_REUSE_MARGIN:
                return cached[0]
            obj = await self.upload(path)
            expires = obj.get("expires_at")
            valid_until = float(expires) if isinstance(expires, int | float) else time.time()
            self._uploads[cache_key] = (obj["url"], valid_until)
            return str(obj["url"])
