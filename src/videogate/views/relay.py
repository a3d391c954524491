"""The task object as the ``/v1/videos`` surface shows it (API.md §1.2).

It is OpenAI's ``Video`` object (every field that type declares, ``remixed_from_video_id``
included, statuses ``queued|in_progress|completed|failed``) with the Seedance relay fields
beside it. Tasks created in OpenAI's shape (the form, or a JSON body with OpenAI's fields)
show ``size`` as one of OpenAI's four sizes (the one asked for, else the one of the output's
orientation); relay-shaped ones show the real output size, and their create response says
``submitted`` as the Seedance relays document.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from videogate.media.sizes import openai_size
from videogate.money import format_money
from videogate.request import GenerationRequest, resolve_output
from videogate.signing import UrlSigner, window_expiry
from videogate.statuses import RELAY_STATUS
from videogate.store.records import TaskRecord


def signed_url(signer: UrlSigner, key: str | None, ttl: int) -> tuple[str | None, int | None]:
    """The URL of ``key`` as handed out now: the same for every poll of one signing window,
    and valid for at least ``ttl`` seconds (see ``signing.window_expiry``)."""
    if not key:
        return None, None
    expires = window_expiry(time.time(), ttl)
    return signer.download_url_until(key, expires), expires


def billing_detail(task: TaskRecord) -> dict[str, Any]:
    """The money side of a task: held at create, settled or refunded at the end."""
    currency = task.currency or "USD"
    if task.billing_state == "settled":
        return {
            "currency": currency,
            "amount": format_money(task.charged_micros),
            "state": "settled",
        }
    if task.billing_state == "refunded":
        return {
            "currency": currency,
            "amount": "0.00",
            "refunded_amount": format_money(task.refunded_micros),
            "state": "refunded",
        }
    return {
        "currency": currency,
        "estimated_amount": format_money(task.hold_micros),
        "state": "held",
    }


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a task's body shows of its stored request (which never changes after the
    create): parsed and resolved once per task by :class:`RequestViews`."""

    public_model: str
    prompt: str
    ratio: str
    width: int
    height: int
    resolution: str
    duration: int
    # OpenAI's ``seconds`` of an extend before the task knows its own: the stitched total.
    extended_seconds: float | None
    openai_size: str | None  # the size shown to OpenAI-shaped tasks; None: the real one
    remixed_from: str | None
    generate_audio: bool
    relay_surface: bool

    @classmethod
    def of(cls, request: dict[str, Any]) -> RequestView:
        """From a task's stored request (its JSON form)."""
        return cls.of_request(GenerationRequest.model_validate(request))

    @classmethod
    def of_request(cls, req: GenerationRequest) -> RequestView:
        """From the request itself (a create has it validated already)."""
        ratio, width, height = resolve_output(req)
        extended = None
        if req.operation == "extend" and req.source_seconds:
            extended = req.duration + req.source_seconds
        return cls(
            public_model=req.public_model,
            prompt=req.prompt,
            ratio=ratio,
            width=width,
            height=height,
            resolution=req.resolution,
            duration=req.duration,
            extended_seconds=extended,
            openai_size=(
                openai_size(ratio, req.resolution, req.size) if req.surface == "openai" else None
            ),
            remixed_from=req.source_task_id if req.operation == "remix" else None,
            generate_audio=req.generate_audio,
            relay_surface=req.surface == "relay",
        )


class RequestViews:
    """Task id → :class:`RequestView`, at most ``max_entries`` (the oldest dropped first):
    a poll of a running task parses its stored request once, not on every poll."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._views: dict[str, RequestView] = {}

    def of(self, task: TaskRecord) -> RequestView:
        view = self._views.get(task.id)
        if view is None:
            view = RequestView.of(task.request)
            self.remember(task.id, view)
        return view

    def remember(self, task_id: str, view: RequestView) -> None:
        if self._max <= 0 or task_id in self._views:
            return
        if len(self._views) >= self._max:
            del self._views[next(iter(self._views))]
        self._views[task_id] = view

    def __len__(self) -> int:
        return len(self._views)


def relay_task(
    task: TaskRecord,
    signer: UrlSigner,
    ttl: int,
    *,
    on_create: bool = False,
    views: RequestViews | None = None,
) -> dict[str, Any]:
    """The task as ``/v1/videos`` shows it; ``views`` memoizes the request's part."""
    req = views.of(task) if views is not None else RequestView.of(task.request)
    ratio, width, height = req.ratio, req.width, req.height
    if task.width and task.height:
        width, height = task.width, task.height
    status = RELAY_STATUS[task.status]
    if on_create and task.status == "queued" and req.relay_surface:
        status = "submitted"
    video_url = expires_at = last_frame_url = thumbnail_url = None
    if task.status == "succeeded" and not task.media_deleted:
        video_url, expires_at = signed_url(signer, task.video_key, ttl)
        last_frame_url, _ = signed_url(signer, task.last_frame_key, ttl)
        thumbnail_url, _ = signed_url(signer, task.thumbnail_key, ttl)
    seconds = task.seconds if task.seconds is not None else req.duration
    if task.seconds is None and req.extended_seconds is not None:
        seconds = req.extended_seconds  # OpenAI: the stitched total
    error = None
    if task.error_code:
        error = {"code": task.error_code, "message": task.error_message or task.error_code}
    progress = 100 if task.status == "succeeded" else task.progress
    size = req.openai_size if req.openai_size is not None else f"{width}x{height}"
    return {
        "id": task.id,
        "object": "video",
        "model": req.public_model,
        "status": status,
        "progress": progress,
        "created_at": int(task.created_at),
        "updated_at": int(task.updated_at),
        "completed_at": int(task.completed_at) if task.completed_at else None,
        "video_url": video_url,
        "url": video_url,
        "expires_at": expires_at,
        "last_frame_url": last_frame_url,
        "thumbnail_url": thumbnail_url,
        "prompt": req.prompt,
        "ratio": ratio,
        "resolution": req.resolution,
        "duration": int(seconds) if seconds and seconds > 0 else req.duration,
        "seconds": str(int(seconds)) if seconds and seconds > 0 else str(req.duration),
        "size": size,
        "output_size": f"{width}x{height}",
        "remixed_from_video_id": req.remixed_from,
        "seed": task.seed,
        "generate_audio": req.generate_audio,
        "usage": {"completion_tokens": task.completion_tokens} if task.completion_tokens else None,
        "billing_detail": billing_detail(task),
        "error": error,
    }
