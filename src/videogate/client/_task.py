"""The task handle: refresh, wait, download (resumable, atomic), cancel."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from videogate.client._errors import (
    APIConnectionError,
    APIStatusError,
    DownloadError,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TaskFailed,
    TaskTimeout,
)
from videogate.client._media import mp4_duration
from videogate.client._models import TaskState

if TYPE_CHECKING:
    from videogate.client._client import AsyncClient

log = logging.getLogger("videogate.client")

ProgressCallback = Callable[[TaskState], object]
BytesCallback = Callable[[int, int | None], object]

# Polling without a server hint: 1 s, then ×1.5 up to 10 s, each with ±25 % jitter.
POLL_FIRST = 1.0
POLL_FACTOR = 1.5
POLL_MAX = 10.0
HINT_MIN, HINT_MAX = 0.05, 60.0
MAX_URL_REFRESHES = 3
# Bodies that are an error page, not a video, even when the status says 200.
_NOT_MEDIA = ("application/json", "text/html", "application/xml", "text/xml", "text/plain")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


@dataclass(frozen=True)
class GeneratedVideo:
    """What :meth:`AsyncClient.generate` returns: the file and the finished task."""

    path: Path
    state: TaskState
    bytes: int
    seconds: float | None  # the mp4's own length, else the task's duration


async def _call(callback: Callable[..., object] | None, *args: Any) -> None:
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class _Transient(Exception):
    """One download attempt failed in a way worth retrying."""


class AsyncTask:
    """A handle on one task. Get one from :meth:`AsyncClient.create` or re-attach with
    :meth:`AsyncClient.task`; ``state`` is the last thing read from the server."""

    def __init__(self, client: AsyncClient, task_id: str, state: TaskState | None = None) -> None:
        self._client = client
        self.id = task_id
        self._state = state

    def __repr__(self) -> str:
        status = self._state.status if self._state else "unknown"
        return f"<AsyncTask {self.id} {status}>"

    @property
    def state(self) -> TaskState | None:
        """The last state read (None until the first :meth:`refresh` of a re-attached task)."""
        return self._state

    @property
    def status(self) -> str | None:
        """The last status read (None before the first read of a re-attached task)."""
        return self._state.status if self._state else None

    async def refresh(self) -> TaskState:
        """Read the task again (``GET``; retried on connection errors, 429 and 5xx)."""
        client = self._client
        body, response = await client._transport.request(
            "GET", client._dialect.task_path(self.id), retry="idempotent"
        )
        self._state = client._dialect.parse_task(body, response.headers)
        return self._state

    async def wait(
        self,
        timeout: float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float | None = None,
    ) -> TaskState:
        """Poll until the task finishes; return its state if it succeeded.

        Between polls it waits what the server suggests (``openai-poll-after-ms``), else
        backs off from 1 s to 10 s with jitter (``poll_interval`` overrides both).
        ``on_progress(state)`` is called after every poll (it may be a coroutine function).
        Connection trouble, 429 and 5xx during the wait are ridden out until ``timeout``.

        Raises :class:`TaskFailed` (failed, cancelled, expired) or :class:`TaskTimeout`
        after ``timeout`` seconds (None: no limit); the task itself is never cancelled.
        """
        interval = poll_interval if poll_interval is not None else self._client.poll_interval
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        backoff = POLL_FIRST
        while True:
            state: TaskState | None
            if self._state is not None and self._state.done:
                state = self._state
            else:
                try:
                    state = await self.refresh()
                except (APIConnectionError, ServerError, RateLimitError, ProtocolError) as exc:
                    log.info("polling %s: %s (still waiting)", self.id, exc)
                    state = None
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TaskTimeout(
                            self.id,
                            status=self.status or "unknown",
                            waited=time.monotonic() - start,
                        ) from exc
            if state is not None:
                await _call(on_progress, state)
                if state.succeeded:
                    return state
                if state.done:
                    raise TaskFailed(state)
            if interval is not None:
                delay = interval
            elif state is not None and state.poll_after is not None:
                delay = min(max(state.poll_after, HINT_MIN), HINT_MAX)
            else:
                delay = backoff * random.uniform(0.75, 1.25)
                backoff = min(backoff * POLL_FACTOR, POLL_MAX)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TaskTimeout(
                        self.id, status=self.status or "unknown", waited=time.monotonic() - start
                    )
                delay = min(delay, remaining)
            await asyncio.sleep(delay)

    async def cancel(self) -> TaskState | None:
        """Cancel the task if it is unfinished, and return the state read afterwards (None
        if the server dropped the task). A finished task is left alone and its state
        returned: use :meth:`delete` to remove a finished task.

        Where the API has a cancel call (videogate's ``POST /v1/videos/{id}/cancel``) the
        task stays readable; elsewhere the cancel is a ``DELETE``."""
        state = await self.refresh()
        if state.done:
            return state
        client = self._client
        cancel_path = client._dialect.cancel_path(self.id)
        if cancel_path is not None:
            try:
                await client._transport.request("POST", cancel_path, retry="idempotent")
                return await self.refresh()
            except APIStatusError as exc:
                if exc.status not in (404, 405):
                    raise
                # an API without the cancel call: fall back to DELETE
        return await self.delete()

    async def delete(self) -> TaskState | None:
        """``DELETE`` the task whatever its status: an unfinished one is cancelled, a
        finished one's stored media (videogate) or record (Ark) is deleted. Returns the
        state read afterwards, or None when the task is gone."""
        client = self._client
        await client._transport.request(
            "DELETE", client._dialect.task_path(self.id), retry="idempotent"
        )
        try:
            return await self.refresh()
        except NotFoundError:
            return None

    async def download(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        on_bytes: BytesCallback | None = None,
    ) -> Path:
        """Save the video to ``path`` and return it; waits for the task first if needed
        (``timeout`` as in :meth:`wait`).

        Streams into a hidden ``.part`` file next to ``path`` and renames it into place
        only when complete. A broken connection resumes with ``Range`` from where it
        stopped (also across runs: a leftover ``.part`` of the same task is continued);
        an expired or refused signed URL makes it re-read the task for a fresh one.
        ``on_bytes(done, total)`` reports progress (``total`` may be None).
        """
        state = self._state
        if state is None or not state.done:
            state = await self.wait(timeout)
        elif not state.succeeded:
            raise TaskFailed(state)
        dest = Path(path).expanduser()  # noqa: ASYNC240 - no I/O
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{_safe(self.id)}.part")
        await _Download(self, part, on_bytes).run()
        os.replace(part, dest)
        return dest

    async def _generated(self, path: Path) -> GeneratedVideo:
        state = self._state
        assert state is not None
        seconds = await asyncio.to_thread(mp4_duration, path)
        size = (await asyncio.to_thread(path.stat)).st_size
        return GeneratedVideo(path, state, size, seconds or state.duration)


def _safe(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", task_id)[:100]


class _Download:
    """One resumable download of a task's video into ``part``."""

    def __init__(self, task: AsyncTask, part: Path, on_bytes: BytesCallback | None) -> None:
        self.task = task
        self.client = task._client
        self.part = part
        self.on_bytes = on_bytes
        self.url, self.auth = self._source()
        self.refreshes = 0

    def _source(self) -> tuple[str, bool]:
        """The URL to fetch and whether it needs the API key (the content endpoint)."""
        state = self.task._state
        if state is not None and state.video_url:
            return state.video_url, False
        content = self.client._dialect.content_path(self.task.id)
        if content is None:
            raise DownloadError(
                f"task {self.task.id} succeeded but its object has no video URL",
                task_id=self.task.id,
            )
        return self.client._transport.url(content), True

    async def run(self) -> None:
        offset = self.part.stat().st_size if self.part.exists() else 0
        failures = 0
        policy = self.client._transport.retry
        while True:
            try:
                offset, finished = await self._attempt(offset)
                if finished:
                    return
                failures = 0  # progress was made: the next failure starts a new count
            except _Transient as exc:
                failures += 1
                offset = self.part.stat().st_size if self.part.exists() else 0
                if failures > policy.max_retries:
                    raise DownloadError(
                        f"downloading task {self.task.id} failed after {failures} attempts: {exc}",
                        task_id=self.task.id,
                    ) from exc
                delay = policy.backoff(failures)
                log.info("download of %s: %s; retry in %.1f s", self.task.id, exc, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, offset: int) -> tuple[int, bool]:
        """Fetch from ``offset``; returns (new offset, finished). Raises _Transient."""
        transport = self.client._transport
        headers = transport.auth_headers() if self.auth else {}
        # Byte offsets must mean the same thing on every attempt: no content coding.
        headers["Accept-Encoding"] = "identity"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        start_offset = offset
        try:
            async with transport.http.stream(
                "GET", self.url, headers=headers, follow_redirects=True
            ) as r:
                status = r.status_code
                if status == 416 and offset:
                    match = _UNSATISFIED.search(r.headers.get("content-range", ""))
                    if match and int(match.group(1)) == offset:
                        return offset, True  # the .part was already complete
                    self._truncate()
                    return 0, False
                if status in (401, 403, 404, 410) and not self.auth:
                    await self._refresh_url(status)
                    return offset, False
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status}")
                if status >= 400:
                    await r.aread()
                    raise DownloadError(
                        f"downloading task {self.task.id} failed: HTTP {status}: {r.text[:200]}",
                        task_id=self.task.id,
                        status=status,
                    )
                ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype in _NOT_MEDIA:
                    await r.aread()
                    raise _Transient(f"HTTP {status} with {ctype} instead of a video")
                total: int | None
                if status == 206:
                    match = _CONTENT_RANGE.search(r.headers.get("content-range", ""))
                    if not match or int(match.group(1)) != offset:
                        self._truncate()  # a range we did not ask for: start over
                        return 0, False
                    total = None if match.group(3) == "*" else int(match.group(3))
                else:
                    if offset:
                        log.info("%s ignored Range: starting over", _host(self.url))
                        offset = 0
                    length = r.headers.get("content-length")
                    total = int(length) if length and length.isdigit() else None
                with self.part.open("ab" if offset else "wb") as f:
                    async for chunk in r.aiter_raw():
                        f.write(chunk)
                        offset += len(chunk)
                        await _call(self.on_bytes, offset, total)
                    f.flush()
                    os.fsync(f.fileno())
        except httpx.TransportError as exc:
            if self.part.exists() and self.part.stat().st_size > start_offset:
                log.info("download of %s broke at %d bytes: resuming", self.task.id, offset)
                return self.part.stat().st_size, False
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if total is not None and offset != total:
            if offset > total:
                self._truncate()
                return 0, False
            raise _Transient(f"the body ended at {offset} of {total} bytes")
        return offset, True

    def _truncate(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()

    async def _refresh_url(self, status: int) -> None:
        """The signed URL is refused: get a fresh one from the task, or fall back to the
        authenticated content endpoint, or give up."""
        self.refreshes += 1
        old = self.url
        if self.refreshes <= MAX_URL_REFRESHES:
            try:
                state = await self.task.refresh()
            except NotFoundError:
                state = None
            if state is not None and state.video_url and state.video_url != old:
                log.info("result URL of %s answered %d: got a fresh one", self.task.id, status)
                self.url, self.auth = state.video_url, False
                return
        content = self.client._dialect.content_path(self.task.id)
        if content is not None:
            log.info("result URL of %s answered %d: using /content", self.task.id, status)
            self.url, self.auth = self.client._transport.url(content), True
            return
        raise DownloadError(
            f"the result URL of task {self.task.id} answered {status} (expired?) and the "
            f"{self.client.api} API gives no fresh one: results are kept only for a "
            "limited time (24 h on Ark)",
            task_id=self.task.id,
            status=status,
        )


def _host(url: str) -> str:
    return httpx.URL(url).host
