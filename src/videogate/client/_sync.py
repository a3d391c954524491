"""``Client`` and ``Task``: the blocking face of the async SDK.

Each ``Client`` owns one private event loop in a daemon thread; every blocking call runs
the ``AsyncClient`` coroutine there and waits for it. No logic lives here.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
import weakref
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx

from videogate.client._client import AsyncClient, CreateOptions
from videogate.client._models import ApiName, PreparedRequest, TaskPage, TaskState
from videogate.client._task import AsyncTask, BytesCallback, GeneratedVideo, ProgressCallback

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="videogate-client", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "a blocking videogate Client method was called from one of its own "
                "callbacks; use the AsyncClient inside callbacks"
            )
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError("this Client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt and friends: stop the coroutine too.
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is self.thread:
            return  # (a finalizer running in the loop thread) the loop stops by itself
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class Task:
    """A blocking handle on one task; see :class:`AsyncTask` for the semantics."""

    def __init__(self, inner: AsyncTask, runner: _LoopThread) -> None:
        self._inner = inner
        self._runner = runner

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.status or 'unknown'}>"

    @property
    def id(self) -> str:
        """The task id."""
        return self._inner.id

    @property
    def state(self) -> TaskState | None:
        """The last state read from the server."""
        return self._inner.state

    @property
    def status(self) -> str | None:
        """The last status read (None before the first read of a re-attached task)."""
        return self._inner.status

    def refresh(self) -> TaskState:
        """Read the task again."""
        return self._runner.run(self._inner.refresh())

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float | None = None,
    ) -> TaskState:
        """Block until the task finishes (see :meth:`AsyncTask.wait`); ``on_progress``
        runs in the client's loop thread."""
        return self._runner.run(
            self._inner.wait(timeout, on_progress=on_progress, poll_interval=poll_interval)
        )

    def download(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        on_bytes: BytesCallback | None = None,
    ) -> Path:
        """Save the video (see :meth:`AsyncTask.download`)."""
        return self._runner.run(self._inner.download(path, timeout=timeout, on_bytes=on_bytes))

    def cancel(self) -> TaskState | None:
        """Cancel the task if unfinished (see :meth:`AsyncTask.cancel`)."""
        return self._runner.run(self._inner.cancel())

    def delete(self) -> TaskState | None:
        """Cancel or delete the task (see :meth:`AsyncTask.delete`)."""
        return self._runner.run(self._inner.delete())


class Client:
    """The blocking SDK client: same arguments and methods as :class:`AsyncClient`.

    >>> with Client("http://127.0.0.1:8000", "vg-…") as client:
    ...     video = client.generate("a red fox in snow", "fox.mp4", duration=5)
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
        self._async = AsyncClient(
            base_url,
            api_key,
            api=api,
            timeout=timeout,
            max_retries=max_retries,
            poll_interval=poll_interval,
            http_client=http_client,
        )
        self._runner = _LoopThread()
        # Forgotten without close(): at least stop the loop thread.
        weakref.finalize(self, self._runner.close)

    def __repr__(self) -> str:
        return f"<Client {self.api} {self.base_url}>"

    @property
    def api(self) -> ApiName:
        """The dialect: ``videogate``, ``relay`` or ``ark``."""
        return self._async.api

    @property
    def base_url(self) -> str:
        """The API's base URL, with the dialect's path (e.g. ``…/v1``)."""
        return self._async.base_url

    @property
    def async_client(self) -> AsyncClient:
        """The underlying :class:`AsyncClient` (bound to this client's loop thread)."""
        return self._async

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if not self._runner.loop.is_closed():
            self._runner.run(self._async.aclose())
        self._runner.close()

    def _task(self, inner: AsyncTask) -> Task:
        return Task(inner, self._runner)

    def prepare(self, prompt: str, **options: Unpack[CreateOptions]) -> PreparedRequest:
        """See :meth:`AsyncClient.prepare`."""
        return self._runner.run(self._async.prepare(prompt, **options))

    def submit(self, request: PreparedRequest, *, idempotency_key: str | None = None) -> Task:
        """See :meth:`AsyncClient.submit`."""
        return self._task(
            self._runner.run(self._async.submit(request, idempotency_key=idempotency_key))
        )

    def create(
        self, prompt: str, *, idempotency_key: str | None = None, **options: Unpack[CreateOptions]
    ) -> Task:
        """Create a task and return its handle (see :meth:`AsyncClient.create`)."""
        return self._task(
            self._runner.run(self._async.create(prompt, idempotency_key=idempotency_key, **options))
        )

    def generate(
        self,
        prompt: str,
        output: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[CreateOptions],
    ) -> GeneratedVideo:
        """Create, wait and download in one call (see :meth:`AsyncClient.generate`)."""
        return self._runner.run(
            self._async.generate(
                prompt, output, timeout=timeout, on_progress=on_progress, **options
            )
        )

    def task(self, task_id: str) -> Task:
        """Re-attach to an existing task by id."""
        return self._task(self._async.task(task_id))

    def get(self, task_id: str) -> Task:
        """Re-attach and read the task now."""
        return self._task(self._runner.run(self._async.get(task_id)))

    def list(self, *, limit: int = 20, after: str | None = None) -> TaskPage:
        """See :meth:`AsyncClient.list`."""
        return self._runner.run(self._async.list(limit=limit, after=after))

    def models(self) -> builtins.list[dict[str, Any]]:
        """See :meth:`AsyncClient.models`."""
        return self._runner.run(self._async.models())

    def upload(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """See :meth:`AsyncClient.upload`."""
        return self._runner.run(self._async.upload(path))
