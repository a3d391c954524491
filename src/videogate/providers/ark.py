"""Volcengine Ark and BytePlus ModelArk: the Seedance "content generation tasks" API.

Both platforms speak the same protocol (reference/upstream-protocols.md §1); a route
differs only in ``base_url`` and model names (``doubao-…`` vs ``dreamina-…``), so one code
path serves both. Every call goes through :class:`~videogate.providers.http.UpstreamHTTP`,
which turns each failure into an :class:`UpstreamError` with the shared disposition.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, cast
from urllib.parse import quote

from videogate.errors import UpstreamError
from videogate.media.sizes import RATIOS, RESOLUTIONS, output_size
from videogate.providers.base import (
    Capabilities,
    PollResult,
    ProviderDeps,
    Route,
    TaskContext,
    UpstreamStatus,
    attempt_marker,
)
from videogate.providers.http import UpstreamHTTP

log = logging.getLogger("videogate.providers.ark")

TASKS_PATH = "/contents/generations/tasks"
STATUSES: frozenset[str] = frozenset(
    {"queued", "running", "succeeded", "failed", "cancelled", "expired"}
)
# ``created_at`` is whole seconds on the upstream's clock: allow for truncation and skew.
# The marker is exact, so a wide window costs only list pages, never a wrong adoption.
RECOVER_SLACK_SECONDS = 120
RECOVER_PAGE_SIZE = 500  # Ark's largest page
RECOVER_MAX_PAGES = 10
# Where this task's marker travels: Ark stores ``safety_identifier`` and echoes it on GET
# and in the task list (reference §1.8); nothing else a create sends comes back.
MARKER_FIELD = "safety_identifier"
_SIZES = {(r, res) for r in RATIOS for res in RESOLUTIONS}


class ArkProvider:
    """Submits, polls, cancels and recovers Ark tasks over ``deps.http``."""

    # Ark resolves its own asset library and renders mov itself: both are passed through.
    capabilities: ClassVar[Capabilities] = Capabilities(
        accepts_callbacks=True, resolves_assets=True, output_formats=("mp4", "mov")
    )

    def __init__(self, route: Route, deps: ProviderDeps) -> None:
        self._route = route
        self._http = UpstreamHTTP(route, deps)
        self._tasks_url = route.base_url.rstrip("/") + TASKS_PATH

    def _task_url(self, upstream_id: str) -> str:
        return f"{self._tasks_url}/{quote(upstream_id, safe='')}"

    async def submit(self, ctx: TaskContext) -> str:
        route, req = self._route, ctx.request
        content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
        for ref in req.references:
            kind = f"{ref.kind}_url"
            url = ctx.reference_urls[ref.label]
            content.append({"type": kind, kind: {"url": url}, "role": ref.role})
        fields: dict[str, Any] = {
            "model": route.upstream_model,
            "content": content,
            "ratio": req.ratio,
            "resolution": req.resolution,
            "duration": req.duration,
            "seed": req.seed,
            # Sent explicitly: Ark's defaults differ by model and by documentation source.
            "watermark": req.watermark,
            "generate_audio": req.generate_audio,
            "return_last_frame": req.return_last_frame,
            "callback_url": ctx.callback_url,
            # The client's own end-user id goes to Ark as sent (Ark's abuse tracking needs
            # it); only where there is none does the field carry this attempt's marker.
            MARKER_FIELD: _client_identifier(ctx)
            or (attempt_marker(ctx.attempt_id) if ctx.attempt_id else None),
        }
        # Ark fields a client sent on the Ark surface go to Ark unchanged; a remix, edit or
        # extend made on the OpenAI surface is Ark's omni reference task of that type.
        for name, value in req.extras.items():
            fields.setdefault(name, value)
        if req.operation in ("edit", "extend"):
            fields["omni_reference_task_type"] = req.operation
        # The SDK sends nulls and Ark tolerates them; we send only what is set.
        body = await self._http.send_json(
            "POST", self._tasks_url, json={k: v for k, v in fields.items() if v is not None}
        )
        upstream_id = body.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            # A 2xx we cannot use: the job was most likely created (looked up by its
            # marker, never sent again).
            raise self._http.malformed("a create answer without an id")
        return upstream_id

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        task = await self._http.send_json("GET", self._task_url(upstream_id))
        status = task.get("status")
        if not isinstance(status, str):
            raise self._http.malformed(f"task {upstream_id} without a status")
        if status not in STATUSES:
            # A new word must not lose the task: keep polling until its deadline.
            log.warning(
                "task %s: unknown Ark status %r; treating it as running", ctx.task_id, status
            )
            return PollResult(status="running")
        if status == "succeeded":
            return self._succeeded(ctx, upstream_id, task)
        if status in ("queued", "running"):
            return PollResult(status=cast(UpstreamStatus, status))
        raw_error = task.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code = error.get("code") or status
        message = error.get("message") or {
            "expired": "the upstream expired the task: it did not finish within its "
            "execution window (execution_expires_after)",
            "cancelled": "the upstream reports the task cancelled",
        }.get(status, "the upstream reports the task failed without saying why")
        return PollResult(
            status=cast(UpstreamStatus, status), error_code=str(code), error_message=str(message)
        )

    def _succeeded(self, ctx: TaskContext, upstream_id: str, task: dict[str, Any]) -> PollResult:
        content, usage = task.get("content"), task.get("usage")
        video_url = content.get("video_url") if isinstance(content, dict) else None
        if not isinstance(video_url, str) or not video_url:
            raise self._http.malformed(f"succeeded task {upstream_id} without a video_url")
        last_frame = content.get("last_frame_url") if isinstance(content, dict) else None
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        duration, seed = task.get("duration"), task.get("seed")
        # Ark reports the resolved ratio; "adaptive" or an unknown size leaves it unknown.
        ratio = task.get("ratio") or ctx.request.ratio
        resolution = task.get("resolution") or ctx.request.resolution
        size = output_size(ratio, resolution) if (ratio, resolution) in _SIZES else None
        return PollResult(
            status="succeeded",
            video_url=video_url,
            last_frame_url=last_frame if isinstance(last_frame, str) and last_frame else None,
            completion_tokens=tokens if isinstance(tokens, int) else None,
            seconds=float(duration) if isinstance(duration, int | float) and duration > 0 else None,
            width=size[0] if size else None,
            height=size[1] if size else None,
            seed=seed if isinstance(seed, int) else None,
        )

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        # Ark cancels queued tasks, deletes finished ones and refuses running ones with a
        # 400: that surfaces as a FAIL_TASK UpstreamError carrying Ark's code.
        await self._http.send("DELETE", self._task_url(upstream_id))

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        """Look through the jobs created since the attempt (newest first) for the one
        carrying this attempt's marker. "Not there" is believed only when the list is
        complete back to the attempt and the upstream shows it echoes markers."""
        route = self._route
        if not ctx.attempt_id:
            raise UpstreamError(
                f"route {route.name}: no attempt marker to look for", code="submit_uncertain"
            )
        # With the client's identifier in the field, no job can be told for ours: only a
        # list proving that no job was created since the attempt lets it be sent again.
        marker = None if _client_identifier(ctx) else attempt_marker(ctx.attempt_id)
        cutoff = submitted_after - RECOVER_SLACK_SECONDS
        recent_items = 0
        echoes = False
        for page in range(1, RECOVER_MAX_PAGES + 1):
            body = await self._http.send_json(
                "GET",
                self._tasks_url,
                params={
                    "page_num": page,
                    "page_size": RECOVER_PAGE_SIZE,
                    "filter.model": route.upstream_model,
                },
            )
            items = body.get("items")
            if not isinstance(items, list) or not all(
                isinstance(i, dict)
                and isinstance(i.get("id"), str)
                and isinstance(i.get("created_at"), int | float)
                for i in items
            ):
                raise self._http.malformed("a task list without items, ids or created_at")
            for item in items:
                if marker is not None and item.get(MARKER_FIELD) == marker:
                    return str(item["id"])
            stamps = [i["created_at"] for i in items]
            if stamps != sorted(stamps, reverse=True):
                # Stopping early is only sound newest-first; never guess (double payment).
                raise UpstreamError(
                    f"route {route.name}: the task list is not sorted newest first, so it "
                    "cannot tell whether this task's job exists",
                    code="submit_uncertain",
                )
            recent = [i for i in items if i["created_at"] >= cutoff]
            recent_items += len(recent)
            echoes = echoes or any(isinstance(i.get(MARKER_FIELD), str) for i in recent)
            # Newest first: a page with older items or a short page is the last one needed.
            if len(recent) < len(items) or len(items) < RECOVER_PAGE_SIZE:
                break
        else:
            raise UpstreamError(
                f"route {route.name}: more than {RECOVER_MAX_PAGES * RECOVER_PAGE_SIZE} "
                f"{route.upstream_model} tasks were created since the interrupted submit, "
                "so it cannot tell whether this task's job exists",
                code="submit_uncertain",
            )
        if recent_items and marker is None:
            raise UpstreamError(
                f"route {route.name}: {recent_items} {route.upstream_model} tasks were created "
                f"around the interrupted submit, which carried the client's own "
                f"{MARKER_FIELD} instead of an attempt marker, so this task's job cannot be "
                "told apart; it was not resubmitted and nothing was adopted",
                code="submit_uncertain",
            )
        if recent_items and not echoes:
            # Jobs were created meanwhile but none shows a marker: this upstream may not
            # echo it, so "not found" proves nothing. Fail rather than pay twice.
            raise UpstreamError(
                f"route {route.name}: {recent_items} {route.upstream_model} tasks were created "
                f"around the interrupted submit and the upstream shows no {MARKER_FIELD} to "
                "tell this task's job apart; it was not resubmitted and nothing was adopted",
                code="submit_uncertain",
            )
        return None


def _client_identifier(ctx: TaskContext) -> str | None:
    """The ``safety_identifier`` the client sent on the Ark surface, if any."""
    value = ctx.request.extras.get(MARKER_FIELD)
    return value if isinstance(value, str) and value else None


PROVIDER_CLASS = ArkProvider
