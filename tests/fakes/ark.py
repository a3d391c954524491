"""A fake Volcengine Ark / BytePlus ModelArk content-generation-tasks API.

Implements ``/api/v3/contents/generations/tasks`` as documented in
``reference/upstream-protocols.md`` §1. Choices where the reference is silent:

* unknown task id (GET/DELETE) → ``404 ResourceNotFound`` (``param: "id"``);
* DELETE of a running / cancelled (or unknown-status) task → ``400 InvalidParameter``
  (``param: "id"``);
* error messages end with `` Request id: <X-Request-Id>`` as Ark's do; ``param`` is ``""``
  when there is none; ``type`` is ``BadRequest``/``Unauthorized``/``Forbidden``/
  ``NotFound``/``TooManyRequests``/``InternalServiceError`` by status;
* callbacks go out on creation (``queued``) and on every later status change except
  ``cancelled``; terminal ones are retried 3 times without a 2xx;
* ``expired`` tasks carry ``error: null`` unless :meth:`FakeArk.expire` is given a code;
* ``content`` and ``usage`` are present only once ``succeeded``;
* ``ratio: "adaptive"`` is reported as the resolved ratio (``adaptive_ratio``, default
  ``16:9``) and ``duration: -1`` as ``auto_duration`` (default 8).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .server import (
    ApiError,
    BaseTask,
    FakeServer,
    RecordedRequest,
    json_response,
    sample_mp4,
)

DEFAULT_MODELS = (
    "doubao-seedance-2-0-260128",
    "doubao-seedance-2-0-fast-260128",
    "dreamina-seedance-2-0-260128",
    "dreamina-seedance-2-0-fast-260128",
    "doubao-seedance-1-5-pro-251215",
    "seedance-1-5-pro-251215",
    "doubao-seedance-1-0-pro-250528",
    "seedance-1-0-pro-250528",
)

STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
IMAGE_ROLES = ("first_frame", "last_frame", "reference_image")

# Output sizes (W, H): Seedance 1.5 / 2.0 (API.md §4) and Seedance 1.0 (reference §1.6).
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "16:9": {"480p": (864, 496), "720p": (1280, 720), "1080p": (1920, 1080)},
    "4:3": {"480p": (752, 560), "720p": (1112, 834), "1080p": (1664, 1248)},
    "1:1": {"480p": (640, 640), "720p": (960, 960), "1080p": (1440, 1440)},
    "3:4": {"480p": (560, 752), "720p": (834, 1112), "1080p": (1248, 1664)},
    "9:16": {"480p": (496, 864), "720p": (720, 1280), "1080p": (1080, 1920)},
    "21:9": {"480p": (992, 432), "720p": (1470, 630), "1080p": (2206, 946)},
}
SIZES_1_0: dict[str, dict[str, tuple[int, int]]] = {
    "16:9": {"480p": (864, 480), "720p": (1248, 704), "1080p": (1920, 1088)},
    "4:3": {"480p": (736, 544), "720p": (1120, 832), "1080p": (1664, 1248)},
    "1:1": {"480p": (640, 640), "720p": (960, 960), "1080p": (1440, 1440)},
    "3:4": {"480p": (544, 736), "720p": (832, 1120), "1080p": (1248, 1664)},
    "9:16": {"480p": (480, 864), "720p": (704, 1248), "1080p": (1088, 1920)},
    "21:9": {"480p": (960, 416), "720p": (1504, 640), "1080p": (2176, 928)},
}

_ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
}
_DEFAULT_CODES = {
    400: "InvalidParameter",
    401: "AuthenticationError",
    403: "AccessDenied",
    404: "ResourceNotFound",
    429: "RateLimitExceeded.EndpointRPMExceeded",
}


def model_family(model: str) -> str:
    """``2.0`` | ``2.0-fast`` | ``1.5`` | ``1.0`` from a model id (anything else: ``2.0``)."""
    name = model.lower()
    if "seedance-2-0-fast" in name or "seedance-2-0-mini" in name:
        return "2.0-fast"
    if "seedance-1-5" in name:
        return "1.5"
    if "seedance-1-0" in name:
        return "1.0"
    return "2.0"


@dataclass
class ArkTask(BaseTask):
    """One Ark task. ``body`` is the create body verbatim; the rest is what Ark resolved."""

    family: str = "2.0"
    resolution: str = "720p"
    ratio: str = "16:9"  # as requested (may be "adaptive")
    reported_ratio: str = "16:9"  # what the task object shows
    duration: int = 5  # resolved (never -1)
    seed: int = 0
    generate_audio: bool | None = True  # None: the model has no audio
    return_last_frame: bool = False
    service_tier: str = "default"
    execution_expires_after: int = 172800
    draft: bool = False
    callback_url: str | None = None
    reference_videos: int = 0
    reference_video_seconds: float = 0.0
    width: int = 1280
    height: int = 720

    @property
    def completion_tokens(self) -> int:
        """W × H × (24 × (duration + reference video seconds) + 1) / 1024."""
        frames = 24 * (self.duration + self.reference_video_seconds) + 1
        return int(self.width * self.height * frames // 1024)


class FakeArk(FakeServer[ArkTask]):
    """Fake Ark: ``with FakeArk() as ark: ark.base_url  # http://127.0.0.1:PORT/api/v3``."""

    QUEUED: ClassVar[str] = "queued"
    RUNNING: ClassVar[str] = "running"
    SUCCEEDED: ClassVar[str] = "succeeded"
    FAILED: ClassVar[str] = "failed"
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"succeeded", "failed", "cancelled", "expired"})
    ENDPOINTS: ClassVar[frozenset[str]] = frozenset({"create", "get", "list", "delete", "result"})
    RESULT_TTL: ClassVar[int] = 86400
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "models",
        "max_queued",
        "callback_retries",
        "reference_video_seconds",
        "auto_duration",
        "adaptive_ratio",
    )

    def __init__(
        self,
        *,
        api_key: str = "ark-test-key",
        models: Iterable[str] = DEFAULT_MODELS,
        auto_advance: bool = True,
        queued_seconds: float = 0.1,
        running_seconds: float = 0.3,
        max_queued: int = 120,
        max_running: int | None = None,
        callback_retries: int = 3,
        callback_retry_delay: float = 0.2,
        callback_timeout: float = 5.0,
        reference_video_seconds: float = 5.0,
        auto_duration: int = 8,
        adaptive_ratio: str | None = "16:9",
        tick: float = 0.02,
        port: int = 0,
    ) -> None:
        self.models = list(models)
        self.max_queued = max_queued
        self.callback_retries = callback_retries
        self.reference_video_seconds = reference_video_seconds
        self.auto_duration = auto_duration
        self.adaptive_ratio = adaptive_ratio
        super().__init__(
            api_key=api_key,
            auto_advance=auto_advance,
            queued_seconds=queued_seconds,
            running_seconds=running_seconds,
            max_running=max_running,
            tick=tick,
            port=port,
            callback_timeout=callback_timeout,
            callback_retry_delay=callback_retry_delay,
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v3`` — what an Ark client takes as ``base_url``."""
        return f"{self.root_url}/api/v3"

    # ---- control -------------------------------------------------------------------

    def expire(self, task_id: str, code: str | None = None, message: str | None = None) -> None:
        """``expired`` now (as if ``execution_expires_after`` passed); ``error`` stays null
        unless ``code`` is given."""
        with self._lock:
            task = self._get_task_locked(task_id)
            error = None if code is None else {"code": code, "message": message or ""}
            self._set_status_locked(task, "expired", self.now(), error=error)

    def expire_next_tasks(self, count: int) -> None:
        """The next ``count`` created tasks end ``expired`` instead of ``succeeded``."""
        with self._lock:
            self._next_outcomes.extend([("expired", None, None)] * count)

    def task_object(self, task_id: str) -> dict[str, Any]:
        """The JSON a GET would return now."""
        with self._lock:
            task = self._get_task_locked(task_id)
            self._advance_locked(task)
            return self._task_object(task)

    # ---- hooks ---------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        base = "/api/v3/contents/generations/tasks"
        return [
            self._route(base, "create", self._create, ["POST"]),
            self._route(base, "list", self._list, ["GET"]),
            self._route(base + "/{task_id}", "get", self._get, ["GET"]),
            self._route(base + "/{task_id}", "delete", self._delete, ["DELETE"]),
        ]

    def _default_code(self, status: int) -> str:
        return _DEFAULT_CODES.get(status, "InternalServiceError")

    def _error_body(self, err: ApiError, rec: RecordedRequest) -> dict[str, Any]:
        return {
            "error": {
                "code": err.code,
                "message": f"{err.message} Request id: {rec.request_id}",
                "param": err.param or "",
                "type": _ERROR_TYPES.get(err.status, "InternalServiceError"),
            }
        }

    def _auth_error(self) -> ApiError:
        return ApiError(
            401,
            "AuthenticationError",
            "The API key or AK/SK in the request is missing or invalid.",
        )

    def _deadline(self, task: ArkTask) -> float | None:
        return task.created_at + task.execution_expires_after

    def _expire_locked(self, task: ArkTask, at: float) -> None:
        self._set_status_locked(task, "expired", at)

    def _on_transition_locked(self, task: ArkTask, old: str | None) -> None:
        if task.callback_url and task.status != "cancelled":
            retries = self.callback_retries if task.status in self.TERMINAL else 0
            self._send_callback_locked(
                task.id, task.callback_url, self._task_object(task), task.status, retries
            )

    def _result_bytes(self, task_id: str, ext: str) -> tuple[bytes, str]:
        if ext == "mp4" and self.result_video is None:
            with self._lock:
                task = self._tasks.get(task_id) or self._deleted.get(task_id)
                audio = task is None or task.generate_audio is not False
            return sample_mp4(audio), "video/mp4"
        return super()._result_bytes(task_id, ext)

    # ---- the task object -----------------------------------------------------------

    def _task_object(self, task: ArkTask) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": task.status,
            "error": task.error,
        }
        if task.status == "succeeded":
            done = task.completed_at or task.updated_at
            content = {"video_url": task.video_url or self.result_url(task.id, "mp4", done)}
            if task.return_last_frame:
                content["last_frame_url"] = task.last_frame_url or self.result_url(
                    task.id, "png", done
                )
            obj["content"] = content
            tokens = task.completion_tokens
            obj["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        obj.update(
            {
                "created_at": int(task.created_at),
                "updated_at": int(task.updated_at),
                "seed": task.seed,
                "resolution": task.resolution,
                "ratio": task.reported_ratio,
                "duration": task.duration,
                "framespersecond": 24,
                "service_tier": task.service_tier,
                "execution_expires_after": task.execution_expires_after,
            }
        )
        if task.generate_audio is not None:
            obj["generate_audio"] = task.generate_audio
        obj["draft"] = task.draft
        for echoed in ("priority", "tools", "safety_identifier"):
            if task.body.get(echoed) is not None:
                obj[echoed] = task.body[echoed]
        return obj

    # ---- handlers ------------------------------------------------------------------

    def _new_id(self, now: float) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        alphabet = string.ascii_lowercase + string.digits
        while True:
            task_id = f"cgt-{stamp}-{''.join(secrets.choice(alphabet) for _ in range(5))}"
            if task_id not in self._tasks and task_id not in self._deleted:
                return task_id

    async def _create(self, request: Request, rec: RecordedRequest) -> Response:
        body = rec.json
        if not isinstance(body, dict):
            raise ApiError(
                400, "InvalidParameter", "we could not parse the JSON body of your request"
            )
        fields = self._validate(body)
        with self._lock:
            if self._counts.get("queued", 0) >= self.max_queued:
                raise ApiError(
                    429,
                    "QuotaExceeded",
                    f"The number of queued tasks has reached the limit of {self.max_queued}."
                    " Please try again later.",
                )
            now = self.now()
            task = ArkTask(
                id=self._new_id(now),
                model=str(body["model"]),
                body=body,
                status="queued",
                created_at=now,
                updated_at=now,
                seq=self._next_seq(),
                phase_since=now,
                **fields,
            )
            self._add_task_locked(task)
        return json_response({"id": task.id})

    async def _get(self, request: Request, rec: RecordedRequest) -> Response:
        task_id = rec.path_params["task_id"]
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise _not_found(task_id)
            self._advance_locked(task)
            obj = self._task_object(task)
        return json_response(obj)

    async def _list(self, request: Request, rec: RecordedRequest) -> Response:
        page_num = _int_query(rec, "page_num", 1, 1, 500)
        page_size = _int_query(rec, "page_size", 10, 1, 500)
        status = rec.query_value("filter.status")
        if status is not None and status not in STATUSES:
            raise ApiError(
                400,
                "InvalidParameter",
                f"The parameter `filter.status` specified in the request is not valid: {status}.",
                "filter.status",
            )
        ids = set(rec.query_values("filter.task_ids"))
        model = rec.query_value("filter.model")
        tier = rec.query_value("filter.service_tier")
        with self._lock:
            self._advance_all_locked()
            matches = [
                t
                for t in reversed(self._tasks.values())
                if (status is None or t.status == status)
                and (not ids or t.id in ids)
                and (model is None or t.model == model)
                and (tier is None or t.service_tier == tier)
            ]
            start = (page_num - 1) * page_size
            items = [self._task_object(t) for t in matches[start : start + page_size]]
        return json_response({"total": len(matches), "items": items})

    async def _delete(self, request: Request, rec: RecordedRequest) -> Response:
        task_id = rec.path_params["task_id"]
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise _not_found(task_id)
            self._advance_locked(task)
            if task.status == "queued":
                self._set_status_locked(task, "cancelled", self.now())
            elif task.status in ("succeeded", "failed", "expired"):
                del self._tasks[task_id]
                self._counts[task.status] -= 1
                self._active.pop(task_id, None)
                self._deleted[task_id] = task
            else:
                raise ApiError(
                    400,
                    "InvalidParameter",
                    f"The task {task_id} is {task.status} and cannot be cancelled or deleted:"
                    " only queued tasks can be cancelled and only succeeded, failed or expired"
                    " tasks deleted.",
                    "id",
                )
        return json_response({})

    # ---- validation ----------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ark's checks; returns the resolved ArkTask fields or raises ApiError."""
        model = body.get("model")
        if model is None or model == "":
            raise _missing("model")
        if not isinstance(model, str) or model not in self.models:
            raise ApiError(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {model} does not exist or you do not have access to it.",
                "model",
            )
        family = model_family(model)
        is_2 = family.startswith("2.0")

        content = body.get("content")
        if content is None or content == []:
            raise _missing("content")
        if not isinstance(content, list):
            raise _invalid("content", "it must be an array of content items")
        images: list[tuple[int, str | None]] = []
        videos = audios = texts = 0
        for i, item in enumerate(content):
            where = f"content[{i}]"
            if not isinstance(item, dict):
                raise _invalid(where, "each content item must be an object")
            kind = item.get("type")
            role = item.get("role")
            if kind == "text":
                if not isinstance(item.get("text"), str):
                    raise _invalid(f"{where}.text", "a text item needs a string `text`")
                texts += 1
            elif kind in ("image_url", "video_url", "audio_url"):
                obj = item.get(kind)
                url = obj.get("url") if isinstance(obj, dict) else None
                if not isinstance(url, str) or not url:
                    raise _invalid(f"{where}.{kind}.url", "the url is empty")
                schemes = {
                    "image_url": ("http://", "https://", "data:image/", "asset://"),
                    "video_url": ("http://", "https://", "asset://"),
                    "audio_url": ("http://", "https://", "data:audio/", "asset://"),
                }[kind]
                if not url.startswith(schemes):
                    raise _invalid(f"{where}.{kind}.url", f"unsupported url {url[:40]!r}")
                if kind == "image_url":
                    if role is not None and role not in IMAGE_ROLES:
                        raise _invalid(f"{where}.role", f"unknown image role {role!r}")
                    images.append((i, role))
                elif kind == "video_url":
                    if not is_2:
                        raise _invalid(where, f"model {model} does not accept video input")
                    if role not in (None, "reference_video"):
                        raise _invalid(f"{where}.role", f"unknown video role {role!r}")
                    videos += 1
                else:
                    if not is_2:
                        raise _invalid(where, f"model {model} does not accept audio input")
                    if role not in (None, "reference_audio"):
                        raise _invalid(f"{where}.role", f"unknown audio role {role!r}")
                    audios += 1
            elif kind == "draft_task":
                if family != "1.5":
                    raise _invalid(f"{where}.type", f"model {model} does not accept draft_task")
            else:
                raise _invalid(f"{where}.type", f"unknown content type {kind!r}")

        if len(images) > 1 and any(role is None for _, role in images):
            i = next(i for i, role in images if role is None)
            raise _invalid(f"content[{i}].role", "role is required when several images are given")
        roles = [role for _, role in images]
        if len(images) == 1 and roles[0] is None:
            roles = ["reference_image" if (videos or audios) else "first_frame"]
        firsts, lasts = roles.count("first_frame"), roles.count("last_frame")
        refs = roles.count("reference_image")
        if firsts > 1 or lasts > 1:
            raise _invalid("content", "at most one first_frame and one last_frame image")
        if lasts and not firsts:
            raise _invalid("content", "a last_frame image needs a first_frame image")
        if (firsts or lasts) and (refs or videos or audios):
            raise _invalid("content", "first/last-frame mode and reference mode cannot be mixed")
        if refs > (9 if is_2 else 4):
            raise _invalid("content", f"too many reference images ({refs})")
        if videos > 3:
            raise _invalid("content", f"at most 3 reference videos ({videos} given)")
        if audios > 3:
            raise _invalid("content", f"at most 3 reference audios ({audios} given)")
        if audios and not (videos or refs):
            raise _invalid("content", "reference audio needs at least one image or video")

        def opt(name: str) -> Any:
            return body.get(name)

        for name in ("watermark", "generate_audio", "return_last_frame", "draft", "camera_fixed"):
            if opt(name) is not None and not isinstance(opt(name), bool):
                raise _invalid(name, "it must be a boolean")

        ratio = opt("ratio")
        if ratio is None:
            ratio = "adaptive" if firsts else "16:9"
        if ratio not in (*RATIOS, "adaptive"):
            raise _invalid("ratio", f"{ratio!r} is not one of {', '.join(RATIOS)}, adaptive")

        resolution = opt("resolution")
        if resolution is None:
            resolution = "1080p" if family == "1.0" else "720p"
        allowed_res = ("480p", "720p") if family == "2.0-fast" else ("480p", "720p", "1080p")
        if resolution not in allowed_res:
            raise _invalid(
                "resolution",
                f"{resolution!r} is not supported by {model} ({', '.join(allowed_res)})",
            )

        duration = opt("duration")
        low, high = {"1.0": (2, 12), "1.5": (4, 12)}.get(family, (4, 15))
        if duration is None:
            duration = 5
        if (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or not (low <= duration <= high or (duration == -1 and family != "1.0"))
        ):
            allowed = f"[{low}, {high}]" + (" or -1" if family != "1.0" else "")
            raise _invalid("duration", f"{duration!r} is out of range {allowed} for {model}")

        if opt("frames") is not None:
            frames = opt("frames")
            if family != "1.0":
                raise ApiError(
                    400,
                    "InvalidParameter.UnsupportedParameter",
                    f"The parameter `frames` is not supported by model {model}.",
                    "frames",
                )
            if not isinstance(frames, int) or not (29 <= frames <= 289) or (frames - 25) % 4:
                raise _invalid("frames", "frames must be 25+4n in [29, 289]")

        seed = opt("seed")
        if seed is not None and (
            not isinstance(seed, int) or isinstance(seed, bool) or not -1 <= seed <= 2**32 - 1
        ):
            raise _invalid("seed", "seed must be an integer in [-1, 4294967295]")
        if seed is None or seed == -1:
            seed = secrets.randbelow(2**31)

        tier = opt("service_tier") or "default"
        if tier not in ("default", "flex"):
            raise _invalid("service_tier", f"{tier!r} is not one of default, flex")
        if tier == "flex" and is_2:
            raise _invalid("service_tier", f"model {model} does not support service_tier flex")

        expires = opt("execution_expires_after")
        if expires is None:
            expires = 172800
        if (
            not isinstance(expires, int)
            or isinstance(expires, bool)
            or not (3600 <= expires <= 259200)
        ):
            raise _invalid("execution_expires_after", "it must be an integer in [3600, 259200]")

        draft = bool(opt("draft"))
        if draft and family != "1.5":
            raise _invalid("draft", f"model {model} does not support draft")
        return_last_frame = bool(opt("return_last_frame"))
        if draft and (resolution != "480p" or return_last_frame or tier == "flex"):
            raise _invalid("draft", "draft needs 480p, no return_last_frame and no flex")

        priority = opt("priority")
        if priority is not None and (
            not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9
        ):
            raise _invalid("priority", "priority must be an integer in [0, 9]")

        callback_url = opt("callback_url")
        if callback_url is not None and (
            not isinstance(callback_url, str)
            or not callback_url.startswith(("http://", "https://"))
        ):
            raise _invalid("callback_url", "it must be an http(s) URL")

        generate_audio: bool | None = None
        if family in ("2.0", "2.0-fast", "1.5"):
            generate_audio = opt("generate_audio") is not False

        reported = ratio
        if ratio == "adaptive" and self.adaptive_ratio is not None:
            reported = self.adaptive_ratio
        table = SIZES_1_0 if family == "1.0" else SIZES
        width, height = table.get(reported, table["16:9"])[resolution]
        ref_seconds = min(15.0, videos * self.reference_video_seconds)
        return {
            "family": family,
            "resolution": resolution,
            "ratio": ratio,
            "reported_ratio": reported,
            "duration": self.auto_duration if duration == -1 else duration,
            "seed": seed,
            "generate_audio": generate_audio,
            "return_last_frame": return_last_frame,
            "service_tier": tier,
            "execution_expires_after": expires,
            "draft": draft,
            "callback_url": callback_url,
            "reference_videos": videos,
            "reference_video_seconds": ref_seconds,
            "width": width,
            "height": height,
        }


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        param,
    )


def _invalid(param: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        param,
    )


def _not_found(task_id: str) -> ApiError:
    return ApiError(404, "ResourceNotFound", f"The specified task {task_id} is not found.", "id")


def _int_query(rec: RecordedRequest, name: str, default: int, low: int, high: int) -> int:
    raw = rec.query_value(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _invalid(name, f"it must be an integer in [{low}, {high}]")
    return value
