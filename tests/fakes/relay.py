"""A fake OpenAI-compatible Seedance relay: ``/v1/videos``.

Accepts both the relay JSON body (API.md §1.1) and the OpenAI SDK's multipart form
(reference §2), answers in OpenAI's ``Video`` shape with the relay variations that matter
to a client: the create status word (``submitted`` / ``queued``), the word for a task not
yet started, and where the result URL is (``video_url``, ``url``, both, ``metadata.url``,
or nowhere — then only ``GET /v1/videos/{id}/content`` serves the bytes).

Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``.
Choices where the references are silent: unknown model → ``404 model_not_found``;
``/content`` before completion → ``400 video_not_ready``; an unknown ``after`` cursor
gives an empty page.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .ark import SIZES
from .server import (
    ApiError,
    BaseTask,
    FakeServer,
    RecordedRequest,
    UploadedFile,
    bytes_response,
    json_response,
)

UrlField = Literal["video_url", "url", "both", "metadata", "none"]

_ERROR_TYPES = {401: "invalid_request_error", 429: "requests"}
_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


@dataclass
class RelayTask(BaseTask):
    """One relay task. ``body`` is the JSON body, or the form's text fields for multipart."""

    kind: Literal["json", "multipart"] = "json"
    prompt: str | None = None
    seconds: str = "5"
    size: str = "1280x720"
    form: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    progress: int | None = None  # forced progress (set_status), else computed
    return_last_frame: bool = False


class FakeRelay(FakeServer[RelayTask]):
    """Fake relay: ``with FakeRelay() as relay: relay.base_url  # http://127.0.0.1:PORT/v1``."""

    QUEUED: ClassVar[str] = "queued"
    RUNNING: ClassVar[str] = "in_progress"
    SUCCEEDED: ClassVar[str] = "completed"
    FAILED: ClassVar[str] = "failed"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"completed", "failed"})
    ENDPOINTS: ClassVar[frozenset[str]] = frozenset(
        {"create", "get", "list", "delete", "content", "result"}
    )
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "models",
        "create_status",
        "queued_status",
        "url_field",
        "url_ttl",
        "allow_delete_unfinished",
        "poll_after_ms",
        "include_usage",
    )

    def __init__(
        self,
        *,
        api_key: str = "relay-test-key",
        models: Iterable[str] | None = None,
        create_status: str = "submitted",
        queued_status: str = "queued",
        url_field: UrlField = "video_url",
        auto_advance: bool = True,
        queued_seconds: float = 0.1,
        running_seconds: float = 0.3,
        max_running: int | None = None,
        url_ttl: int = 86400,
        allow_delete_unfinished: bool = True,
        poll_after_ms: int | None = None,
        include_usage: bool = False,
        tick: float = 0.02,
        port: int = 0,
    ) -> None:
        self.models = None if models is None else list(models)
        self.create_status = create_status
        self.queued_status = queued_status
        self.url_field: UrlField = url_field
        self.url_ttl = url_ttl
        self.allow_delete_unfinished = allow_delete_unfinished
        self.poll_after_ms = poll_after_ms
        self.include_usage = include_usage
        super().__init__(
            api_key=api_key,
            auto_advance=auto_advance,
            queued_seconds=queued_seconds,
            running_seconds=running_seconds,
            max_running=max_running,
            tick=tick,
            port=port,
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — what an OpenAI client takes as ``base_url``."""
        return f"{self.root_url}/v1"

    # ---- control -------------------------------------------------------------------

    def set_status(
        self,
        task_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        hold: bool = True,
        progress: int | None = None,
    ) -> None:
        """Any status string (``submitted``, ``queued``, ``in_progress``, ``completed``,
        ``failed`` or made up), optionally with a forced ``progress``."""
        with self._lock:
            super().set_status(task_id, status, error=error, hold=hold)
            self._get_task_locked(task_id).progress = progress

    def video_object(self, task_id: str) -> dict[str, Any]:
        """The JSON a GET would return now."""
        with self._lock:
            task = self._get_task_locked(task_id)
            self._advance_locked(task)
            return self._task_object(task)

    # ---- hooks ---------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            self._route("/v1/videos", "create", self._create, ["POST"]),
            self._route("/v1/videos", "list", self._list, ["GET"]),
            self._route("/v1/videos/{task_id}", "get", self._get, ["GET"]),
            self._route("/v1/videos/{task_id}", "delete", self._delete, ["DELETE"]),
            self._route("/v1/videos/{task_id}/content", "content", self._content, ["GET"]),
        ]

    def _default_code(self, status: int) -> str:
        return _DEFAULT_CODES.get(status, "server_error")

    def _error_body(self, err: ApiError, rec: RecordedRequest) -> dict[str, Any]:
        if err.status >= 500:
            kind = "server_error"
        else:
            kind = _ERROR_TYPES.get(err.status, "invalid_request_error")
        return {
            "error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}
        }

    def _auth_error(self) -> ApiError:
        return ApiError(401, "invalid_api_key", "Incorrect API key provided.")

    def _on_transition_locked(self, task: RelayTask, old: str | None) -> None:
        task.progress = None

    def _response_headers(self, rec: RecordedRequest) -> dict[str, str]:
        headers = {"x-request-id": f"req_{rec.request_id[-16:]}"}
        if self.poll_after_ms is not None and rec.endpoint in ("create", "get"):
            headers["openai-poll-after-ms"] = str(self.poll_after_ms)
        return headers

    # ---- the video object ----------------------------------------------------------

    def _progress(self, task: RelayTask) -> int:
        if task.progress is not None:
            return task.progress
        if task.status == self.SUCCEEDED:
            return 100
        if task.status == self.RUNNING:
            if self.running_seconds <= 0:
                return 99
            done = (self.now() - task.phase_since) / self.running_seconds
            return max(1, min(99, int(done * 100)))
        return 0

    def _task_object(self, task: RelayTask, status: str | None = None) -> dict[str, Any]:
        shown = status or (self.queued_status if task.status == self.QUEUED else task.status)
        completed = task.status == self.SUCCEEDED
        done = task.completed_at or task.updated_at
        obj: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "model": task.model,
            "status": shown,
            "progress": self._progress(task),
            "created_at": int(task.created_at),
            "completed_at": int(done) if completed else None,
            "expires_at": int(done) + self.url_ttl if completed else None,
            "prompt": task.prompt,
            "seconds": task.seconds,
            "size": task.size,
            "remixed_from_video_id": None,
            "error": task.error,
        }
        if completed:
            url = task.video_url or self.result_url(task.id, "mp4", done, self.url_ttl)
            if self.url_field in ("video_url", "both"):
                obj["video_url"] = url
            if self.url_field in ("url", "both"):
                obj["url"] = url
            if self.url_field == "metadata":
                obj["metadata"] = {"url": url}
            if task.return_last_frame and self.url_field != "none":
                obj["last_frame_url"] = task.last_frame_url or self.result_url(
                    task.id, "png", done, self.url_ttl
                )
            if self.include_usage:
                tokens = _tokens(task.size, task.seconds)
                obj["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        return obj

    # ---- handlers ------------------------------------------------------------------

    async def _create(self, request: Request, rec: RecordedRequest) -> Response:
        content_type = request.headers.get("content-type", "")
        files: list[UploadedFile] = []
        form: dict[str, str] = {}
        return_last_frame = False
        if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            kind: Literal["json", "multipart"] = "multipart"
            async with request.form() as parsed:
                for key, value in parsed.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        files.append(UploadedFile(key, value.filename, value.content_type, data))
                    else:
                        form.setdefault(key, value)
            rec.form, rec.files = form, files
            body: dict[str, Any] = dict(form)
            model: Any = form.get("model")
            prompt: Any = form.get("prompt")
            seconds = form.get("seconds", "4")
            size = form.get("size", "720x1280")
            if not seconds.isdigit():
                raise ApiError(
                    400, "invalid_value", f"Invalid value for 'seconds': {seconds!r}.", "seconds"
                )
            if not re.fullmatch(r"\d+x\d+", size):
                raise ApiError(400, "invalid_value", f"Invalid value for 'size': {size!r}.", "size")
        else:
            kind = "json"
            if not isinstance(rec.json, dict):
                raise ApiError(
                    400, "invalid_json", "We could not parse the JSON body of your request."
                )
            body = rec.json
            model = body.get("model")
            prompt = body.get("prompt")
            content = body.get("content")
            if content is not None and not isinstance(content, list):
                raise ApiError(400, "invalid_type", "'content' must be an array.", "content")
            if prompt is None and content:
                texts = [
                    c.get("text")
                    for c in content
                    if isinstance(c, dict) and c.get("type") == "text"
                ]
                prompt = next((t for t in texts if isinstance(t, str)), None)
            duration = body.get("duration", 5)
            if not isinstance(duration, int) or isinstance(duration, bool):
                raise ApiError(400, "invalid_type", "'duration' must be an integer.", "duration")
            seconds = str(duration)
            ratio = body.get("ratio") or "16:9"
            resolution = body.get("resolution") or "720p"
            width, height = SIZES.get(ratio, SIZES["16:9"]).get(resolution, (1280, 720))
            size = f"{width}x{height}"
            return_last_frame = body.get("return_last_frame") is True
        if not isinstance(model, str) or not model:
            raise ApiError(
                400, "missing_required_parameter", "Missing required parameter: 'model'.", "model"
            )
        if self.models is not None and model not in self.models:
            raise ApiError(404, "model_not_found", f"The model '{model}' does not exist.", "model")
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(
                400, "missing_required_parameter", "Missing required parameter: 'prompt'.", "prompt"
            )
        with self._lock:
            now = self.now()
            task = RelayTask(
                id=self._new_id(),
                model=model,
                body=body,
                status=self.QUEUED,
                created_at=now,
                updated_at=now,
                seq=self._next_seq(),
                phase_since=now,
                kind=kind,
                prompt=prompt,
                seconds=seconds,
                size=size,
                form=form,
                files=files,
                return_last_frame=return_last_frame,
            )
            self._add_task_locked(task)
            obj = self._task_object(task, status=self.create_status)
        return json_response(obj)

    def _new_id(self) -> str:
        while True:
            task_id = f"video_{secrets.token_hex(16)}"
            if task_id not in self._tasks and task_id not in self._deleted:
                return task_id

    def _lookup_locked(self, rec: RecordedRequest) -> RelayTask:
        task_id = rec.path_params["task_id"]
        task = self._tasks.get(task_id)
        if task is None:
            raise ApiError(404, "not_found", f"Video with id '{task_id}' not found.", "video_id")
        self._advance_locked(task)
        return task

    async def _get(self, request: Request, rec: RecordedRequest) -> Response:
        with self._lock:
            obj = self._task_object(self._lookup_locked(rec))
        return json_response(obj)

    async def _list(self, request: Request, rec: RecordedRequest) -> Response:
        raw_limit = rec.query_value("limit") or "20"
        if not raw_limit.isdigit() or not 0 <= int(raw_limit) <= 100:
            raise ApiError(400, "invalid_value", "'limit' must be an integer in [0, 100].", "limit")
        limit = int(raw_limit)
        order = rec.query_value("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(400, "invalid_value", "'order' must be 'asc' or 'desc'.", "order")
        after = rec.query_value("after")
        with self._lock:
            self._advance_all_locked()
            items = list(self._tasks.values())
            if order == "desc":
                items.reverse()
            if after is not None:
                ids = [t.id for t in items]
                items = items[ids.index(after) + 1 :] if after in ids else []
            page = items[:limit]
            data = [self._task_object(t) for t in page]
        return json_response(
            {
                "object": "list",
                "data": data,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(items) > limit,
            }
        )

    async def _delete(self, request: Request, rec: RecordedRequest) -> Response:
        with self._lock:
            task = self._lookup_locked(rec)
            if task.status not in self.TERMINAL and not self.allow_delete_unfinished:
                raise ApiError(
                    400,
                    "video_not_finished",
                    f"Video '{task.id}' is {task.status}; only completed or failed videos"
                    " can be deleted.",
                    "video_id",
                )
            del self._tasks[task.id]
            self._counts[task.status] -= 1
            self._active.pop(task.id, None)
            self._deleted[task.id] = task
        return json_response({"id": task.id, "object": "video.deleted", "deleted": True})

    async def _content(self, request: Request, rec: RecordedRequest) -> Response:
        variant = rec.query_value("variant") or "video"
        if variant not in ("video", "thumbnail"):
            raise ApiError(400, "invalid_value", f"Invalid variant {variant!r}.", "variant")
        with self._lock:
            task = self._lookup_locked(rec)
            status = task.status
        if status != self.SUCCEEDED:
            raise ApiError(
                400, "video_not_ready", f"Video '{task.id}' is {status}, not completed.", None
            )
        data, content_type = self._served_bytes(task.id, "mp4" if variant == "video" else "png")
        return bytes_response(request, data, content_type)


def _tokens(size: str, seconds: str) -> int:
    try:
        width, height = (int(x) for x in size.split("x"))
        return int(width * height * (24 * int(seconds) + 1) // 1024)
    except ValueError:
        return 0
