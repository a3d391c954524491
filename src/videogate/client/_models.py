"""The client's vocabulary, whatever the dialect: a task state, a page, a prepared request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ApiName = Literal["videogate", "relay", "ark"]


API_NAMES: tuple[str, ...] = get_args(ApiName)


Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]


TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "expired"})


_STATUS_WORDS: dict[str, Status] = {
    "submitted": "queued",
    "queued": "queued",
    "pending": "queued",
    "not_start": "queued",
    "created": "queued",
    "in_progress": "running",
    "running": "running",
    "processing": "running",
    "generating": "running",
    "completed": "succeeded",
    "succeeded": "succeeded",
    "success": "succeeded",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "expired": "expired",
}


DEFAULT_MODEL = "doubao-seedance-2-0-fast-260128"


def normalize_status(raw: str) -> Status:
    """One vocabulary for every dialect; an unknown word counts as still running."""
    return _STATUS_WORDS.get(raw.strip().lower(), "running")


@dataclass(frozen=True)
class TaskState:
    """A task as last read from the server, in one vocabulary whatever the dialect.

    ``status`` is one of ``queued``, ``running``, ``succeeded``, ``failed``,
    ``cancelled``, ``expired`` (``raw_status`` keeps the server's word; on the
    ``/v1/videos`` surface a cancelled or expired task reads ``failed`` with that
    ``error_code``, and is normalized here). ``poll_after`` is the server's suggested
    pause before the next poll, in seconds, when it sent one. ``raw`` is the JSON as
    received.
    """

    id: str
    status: Status
    raw_status: str
    model: str | None = None
    progress: int | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    expires_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    duration: float | None = None
    resolution: str | None = None
    ratio: str | None = None
    size: str | None = None
    seed: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    completed_at: int | None = None
    prompt: str | None = None
    cost: str | None = None
    currency: str | None = None
    tokens: int | None = None
    poll_after: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the task can change no more."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        """True when the video is ready."""
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        """The normalized fields as plain JSON-able data (``raw`` left out)."""
        return {
            "id": self.id,
            "status": self.status,
            "raw_status": self.raw_status,
            "model": self.model,
            "progress": self.progress,
            "video_url": self.video_url,
            "last_frame_url": self.last_frame_url,
            "expires_at": self.expires_at,
            "error": (
                {"code": self.error_code, "message": self.error_message}
                if self.error_code or self.error_message
                else None
            ),
            "duration": self.duration,
            "resolution": self.resolution,
            "ratio": self.ratio,
            "size": self.size,
            "seed": self.seed,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "cost": self.cost,
            "currency": self.currency,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class TaskPage:
    """One page of :meth:`AsyncClient.list`; pass ``next_after`` as ``after`` for more."""

    tasks: list[TaskState]
    has_more: bool
    next_after: str | None


@dataclass(frozen=True)
class PreparedRequest:
    """A create body with every reference resolved (uploaded, or inlined as ``data:``).

    Sending the same prepared request again with the same ``Idempotency-Key`` is what
    makes a retried create safe on videogate.
    """

    body: dict[str, Any]

    @property
    def model(self) -> str:
        """The model the body asks for."""
        return str(self.body.get("model", ""))
