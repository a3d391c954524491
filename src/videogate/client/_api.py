"""The three API dialects and the one task state they map onto.

* ``videogate``: the ``/v1/videos`` relay shape, plus ``POST /v1/files`` uploads and an
  ``Idempotency-Key`` the server honours.
* ``relay``: any Seedance relay with the OpenAI-style ``/v1/videos`` shape (statuses
  ``submitted|queued|in_progress|completed|failed``; the URL in ``video_url``, ``url``,
  ``metadata.url`` or only behind ``/videos/{id}/content``).
* ``ark``: Volcengine Ark / BytePlus ModelArk ``/contents/generations/tasks`` (statuses
  ``queued|running|succeeded|failed|cancelled|expired``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from videogate.client._errors import ConfigurationError, ProtocolError, UnsupportedOperation
from videogate.client._models import (
    API_NAMES,
    ApiName,
    TaskPage,
    TaskState,
    normalize_status,
)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        return _str(value.get("code")) or _str(value.get("type")), _str(value.get("message"))
    if isinstance(value, str) and value:
        return None, value
    return None, None


def _poll_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("openai-poll-after-ms")
    if value is None:
        return None
    try:
        return max(0.0, float(value) / 1000)
    except ValueError:
        return None


def _require_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ProtocolError(f"the {what} response has no task id: {str(body)[:200]}")
    return body


def _with_default_path(base_url: str, default_path: str) -> str:
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base URL {base_url!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    if not path:
        path = default_path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class Dialect:
    """How one API family spells create / get / cancel / list and its task object."""

    name: ApiName
    default_path: str
    uploads: bool = False  # local files go through POST /files
    honours_idempotency: bool = False  # a retried create with the same key is safe
    has_content_endpoint: bool = False

    def base_url(self, url: str) -> str:
        """A bare host gets the dialect's usual prefix (``/v1``, ``/api/v3``)."""
        return _with_default_path(url, self.default_path)

    def create_body(
        self, model: str, prompt: str, items: list[dict[str, Any]], options: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    create_path: str = ""

    def task_path(self, task_id: str) -> str:
        return f"{self.create_path}/{task_id}"

    def parse_created(self, body: Any, headers: Mapping[str, str]) -> TaskState:
        return self.parse_task(body, headers)

    def parse_task(self, body: Any, headers: Mapping[str, str]) -> TaskState:
        raise NotImplementedError

    def list_params(self, limit: int, after: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def parse_list(self, body: Any, limit: int, after: str | None) -> TaskPage:
        raise NotImplementedError

    models_path: str | None = None

    def parse_models(self, body: Any) -> list[dict[str, Any]]:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ProtocolError(f"the model list is not {{'data': [...]}}: {str(body)[:200]}")
        return [m for m in data if isinstance(m, dict)]

    def content_path(self, task_id: str) -> str | None:
        return None

    def cancel_path(self, task_id: str) -> str | None:
        """A POST that cancels without deleting, where the API has one."""
        return None

    def matches(self, body: Mapping[str, Any], state: TaskState) -> bool:
        """Could ``state`` be the task that ``body`` created? (for crash recovery)"""
        if state.model is not None and state.model != body.get("model"):
            return False
        for name in ("duration", "resolution", "seed"):
            want = body.get(name)
            got = getattr(state, name)
            if want is None or got is None or want == -1:
                continue
            if (float(want) != float(got)) if name == "duration" else (want != got):
                return False
        ratio = body.get("ratio")
        return ratio in (None, "adaptive") or state.ratio in (None, ratio)


class RelayDialect(Dialect):
    name: ApiName = "relay"
    default_path = "/v1"
    create_path = "videos"
    has_content_endpoint = True
    models_path = "models"

    def cancel_path(self, task_id: str) -> str | None:
        return f"{self.task_path(task_id)}/cancel"

    def create_body(
        self, model: str, prompt: str, items: list[dict[str, Any]], options: dict[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        if items:
            # Relays document the prompt both top-level and as the first content item.
            body["content"] = [{"type": "text", "text": prompt}, *items]
        body.update(options)
        return body

    def parse_task(self, body: Any, headers: Mapping[str, str]) -> TaskState:
        obj = _require_object(body, "task")
        raw_status = str(obj.get("status") or "queued")
        status = normalize_status(raw_status)
        code, message = _error(obj.get("error"))
        if status == "failed" and code in ("cancelled", "expired"):
            status = "cancelled" if code == "cancelled" else "expired"
        url = _str(obj.get("video_url")) or _str(obj.get("url"))
        metadata = obj.get("metadata")
        if url is None and isinstance(metadata, dict):
            url = _str(metadata.get("url"))
        billing = _dict(obj.get("billing_detail"))
        usage = _dict(obj.get("usage"))
        cost = billing.get("amount")
        if cost is None:
            cost = billing.get("estimated_amount")
        return TaskState(
            id=obj["id"],
            status=status,
            raw_status=raw_status,
            model=_str(obj.get("model")),
            progress=_int(obj.get("progress")),
            video_url=url,
            last_frame_url=_str(obj.get("last_frame_url")),
            expires_at=_int(obj.get("expires_at")),
            error_code=code,
            error_message=message,
            duration=_float(obj.get("duration")) or _float(obj.get("seconds")),
            resolution=_str(obj.get("resolution")),
            ratio=_str(obj.get("ratio")),
            size=_str(obj.get("size")),
            seed=_int(obj.get("seed")),
            created_at=_int(obj.get("created_at")),
            updated_at=_int(obj.get("updated_at")),
            completed_at=_int(obj.get("completed_at")),
            prompt=_str(obj.get("prompt")),
            cost=None if cost is None else str(cost),
            currency=_str(billing.get("currency")),
            tokens=_int(usage.get("completion_tokens")),
            poll_after=_poll_after(headers),
            raw=obj,
        )

    def list_params(self, limit: int, after: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "order": "desc"}
        if after:
            params["after"] = after
        return params

    def parse_list(self, body: Any, limit: int, after: str | None) -> TaskPage:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ProtocolError(f"the task list is not {{'data': [...]}}: {str(body)[:200]}")
        tasks = [self.parse_task(item, {}) for item in data if isinstance(item, dict)]
        has_more = bool(body.get("has_more"))
        last = _str(body.get("last_id")) or (tasks[-1].id if tasks else None)
        return TaskPage(tasks, has_more, last if has_more else None)

    def content_path(self, task_id: str) -> str | None:
        return f"videos/{task_id}/content"

    def matches(self, body: Mapping[str, Any], state: TaskState) -> bool:
        if state.prompt is not None and state.prompt != body.get("prompt"):
            return False
        return super().matches(body, state)


class VideogateDialect(RelayDialect):
    name: ApiName = "videogate"
    uploads = True
    honours_idempotency = True


class ArkDialect(Dialect):
    name: ApiName = "ark"
    default_path = "/api/v3"
    create_path = "contents/generations/tasks"

    def create_body(
        self, model: str, prompt: str, items: list[dict[str, Any]], options: dict[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "content": [{"type": "text", "text": prompt}, *items],
        }
        body.update(options)
        return body

    def parse_created(self, body: Any, headers: Mapping[str, str]) -> TaskState:
        obj = _require_object(body, "create")
        return TaskState(id=obj["id"], status="queued", raw_status="queued", raw=obj)

    def parse_task(self, body: Any, headers: Mapping[str, str]) -> TaskState:
        obj = _require_object(body, "task")
        raw_status = str(obj.get("status") or "queued")
        content = _dict(obj.get("content"))
        usage = _dict(obj.get("usage"))
        code, message = _error(obj.get("error"))
        if code is None and message is None:
            code, message = _error(obj.get("failure_reason"))
        status = normalize_status(raw_status)
        done = status == "succeeded"
        return TaskState(
            id=obj["id"],
            status=status,
            raw_status=raw_status,
            model=_str(obj.get("model")),
            progress=100 if done else None,
            video_url=_str(content.get("video_url")),
            last_frame_url=_str(content.get("last_frame_url")),
            error_code=code,
            error_message=message,
            duration=_float(obj.get("duration")),
            resolution=_str(obj.get("resolution")),
            ratio=_str(obj.get("ratio")),
            seed=_int(obj.get("seed")),
            created_at=_int(obj.get("created_at")),
            updated_at=_int(obj.get("updated_at")),
            completed_at=_int(obj.get("updated_at")) if done else None,
            tokens=_int(usage.get("completion_tokens")),
            poll_after=_poll_after(headers),
            raw=obj,
        )

    def list_params(self, limit: int, after: str | None) -> dict[str, Any]:
        page = int(after) if after and after.isdigit() else 1
        return {"page_num": page, "page_size": limit}

    def parse_list(self, body: Any, limit: int, after: str | None) -> TaskPage:
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(f"the task list is not {{'items': [...]}}: {str(body)[:200]}")
        tasks = [self.parse_task(item, {}) for item in items if isinstance(item, dict)]
        page = int(after) if after and after.isdigit() else 1
        total = _int(body.get("total")) or 0
        has_more = page * limit < total
        return TaskPage(tasks, has_more, str(page + 1) if has_more else None)


_DIALECTS: dict[str, type[Dialect]] = {
    "videogate": VideogateDialect,
    "relay": RelayDialect,
    "ark": ArkDialect,
}


def dialect_for(api: str) -> Dialect:
    try:
        return _DIALECTS[api]()
    except KeyError:
        raise ConfigurationError(
            f"unknown api {api!r}: use one of {', '.join(API_NAMES)}"
        ) from None


def models_unsupported(dialect: Dialect) -> UnsupportedOperation:
    return UnsupportedOperation(
        f"the {dialect.name} API has no model list; Seedance 2.0 is "
        "doubao-seedance-2-0-260128 / doubao-seedance-2-0-fast-260128 on Volcengine Ark and "
        "dreamina-seedance-2-0-260128 / dreamina-seedance-2-0-fast-260128 on BytePlus"
    )
