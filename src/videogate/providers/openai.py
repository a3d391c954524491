"""OpenAI-compatible ``/v1/videos`` relays of Seedance, and OpenAI-style video servers.

A route's ``request_format`` picks the create body: ``"json"`` is the relay body of
API.md §1.1 (``content`` items carry every reference), ``"multipart"`` is OpenAI's form
(upstream-protocols §2.2), which has room for one image only. Relays disagree on where the
result is: ``video_url``, ``url``, new-api's ``metadata.url``, or only behind
``GET /videos/{id}/content``, which needs our key, so the provider downloads that itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import re
from typing import Any, ClassVar
from urllib.parse import quote

from videogate.errors import Disposition, UpstreamError
from videogate.media.probe import MediaError, probe
from videogate.providers.base import (
    Capabilities,
    PollResult,
    ProviderDeps,
    Route,
    TaskContext,
    UpstreamStatus,
)
from videogate.providers.http import UpstreamHTTP
from videogate.request import resolve_output

log = logging.getLogger("videogate.providers.openai")

# fmt: off
STATUSES: dict[str, UpstreamStatus] = {
    "submitted": "queued", "queued": "queued", "pending": "queued",
    "in_progress": "running", "processing": "running", "running": "running",
    "completed": "succeeded", "succeeded": "succeeded", "failed": "failed",
    "cancelled": "cancelled", "canceled": "cancelled", "expired": "expired",
}
# fmt: on
RECOVER_SLACK = 5.0  # seconds of clock difference tolerated between us and the relay
# Upstream ids become file names: anything else is hashed (no "../" from a relay).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SIZE = re.compile(r"(\d+)x(\d+)")


class OpenAIVideosProvider:
    """Speaks ``{base_url}/videos`` with ``Authorization: Bearer {route.api_key}``."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, route: Route, deps: ProviderDeps) -> None:
        self._route = route
        self._deps = deps
        self._http = UpstreamHTTP(route, deps)
        self._base = route.base_url.rstrip("/")

    async def submit(self, ctx: TaskContext) -> str:
        self._http.headers()  # a route without its key fails over before files are read
        if self._route.request_format == "multipart":
            fields, files = await self._form(ctx)
            body = await self._http.send_json("POST", self._url(), data=fields, files=files)
        else:
            body = await self._http.send_json("POST", self._url(), json=self._body(ctx))
        upstream_id = body.get("id")
        if not isinstance(upstream_id, str) or not upstream_id.strip():
            # A 2xx we cannot use: the job may exist (looked up, never sent again).
            raise self._http.malformed("a create answer without an 'id'")
        return upstream_id

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        obj = await self._http.send_json("GET", self._url(upstream_id))
        word = obj.get("status")
        if not isinstance(word, str):
            raise self._http.malformed(f"video {upstream_id} without a 'status'")
        status = STATUSES.get(word.lower())
        if status is None:  # a new word must not lose the task: keep polling until the deadline
            log.warning("route %s: unknown status %r of %s", self._route.name, word, upstream_id)
            status = "running"
        progress = _count(obj.get("progress"), top=100)
        if status in ("failed", "cancelled", "expired"):
            error = _dict(obj.get("error"))
            code, message = _text(error.get("code")), _text(error.get("message"))
            default = "upstream_failed" if status == "failed" else None
            return PollResult(status, progress, error_code=code or default, error_message=message)
        if status != "succeeded":
            return PollResult(status, progress)
        video_url = (
            _http_url(obj.get("video_url"))
            or _http_url(obj.get("url"))
            or _http_url(_dict(obj.get("metadata")).get("url"))
            or await self._download(ctx, upstream_id)
        )
        size = _SIZE.fullmatch(str(obj.get("size") or ""))
        seconds = _number(obj.get("seconds")) or _number(obj.get("duration"))
        return PollResult(
            "succeeded",
            100,
            video_url=video_url,
            last_frame_url=_http_url(obj.get("last_frame_url")),
            completion_tokens=_count(_dict(obj.get("usage")).get("completion_tokens")),
            seconds=seconds,
            width=int(size[1]) if size else None,
            height=int(size[2]) if size else None,
            seed=_count(obj.get("seed")),
        )

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        await self._http.send("DELETE", self._url(upstream_id))

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        # Relays store no idempotency key or client reference that a list would show, so
        # a job can never be told apart from another task's with the same body: recovery
        # never adopts. It only proves absence (then submitting again is safe); a possible
        # match fails the task (refunded) rather than guess whose job it is.
        try:
            page = await self._http.send_json(
                "GET", self._url(), params={"limit": "100", "order": "desc"}
            )
        except UpstreamError as exc:
            if exc.status not in (404, 405):
                raise
            raise UpstreamError(
                f"the relay cannot list its videos, so whether route {self._route.name} "
                f"received the task cannot be checked (GET /videos answered {exc.status})",
                code="submit_uncertain",
                status=exc.status,
            ) from None
        items = [i for i in page.get("data") or [] if isinstance(i, dict)]
        cutoff = submitted_after - RECOVER_SLACK
        # Items without a usable created_at count as recent: doubt must not mean "absent".
        recent = [i for i in items if (_number(i.get("created_at")) or cutoff) >= cutoff]
        if len(recent) == len(items) and page.get("has_more") is True:
            raise UpstreamError(
                f"route {self._route.name} has over 100 videos since the attempt; "
                "whether one is this task's cannot be told",
                code="submit_uncertain",
            )
        found = [i["id"] for i in recent if self._may_be_ours(ctx, i) and i["id"] not in exclude]
        if found:
            raise UpstreamError(
                f"route {self._route.name} may have received the task ({len(found)} recent "
                f"video(s) with its model and prompt: {', '.join(found[:5])}), but a relay "
                "keeps no marker that tells this task's job from another's; none was "
                "adopted and the task was not sent again",
                code="submit_uncertain",
            )
        return None

    # Requests ---------------------------------------------------------------------------

    def _body(self, ctx: TaskContext) -> dict[str, Any]:
        """The relay JSON body. The client's ``callback_url`` is never forwarded: the relay
        would call the client directly, unsigned and with the relay's ids."""
        req = ctx.request
        body: dict[str, Any] = {"model": self._route.upstream_model, "prompt": req.prompt}
        if req.references:
            content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
            for ref in req.references:
                kind = f"{ref.kind}_url"
                url = ctx.reference_urls.get(ref.label, ref.url)
                content.append({"type": kind, kind: {"url": url}, "role": ref.role})
            body["content"] = content
        body.update(ratio=req.ratio, resolution=req.resolution, duration=req.duration)
        if req.seed is not None:
            body["seed"] = req.seed
        body.update(
            watermark=req.watermark,
            generate_audio=req.generate_audio,
            return_last_frame=req.return_last_frame,
        )
        return body

    async def _form(
        self, ctx: TaskContext
    ) -> tuple[dict[str, str], dict[str, tuple[str, bytes, str]]]:
        """OpenAI's form. ``seconds`` is left out for duration -1 ("the model chooses"):
        the field is optional and the upstream then applies its own documented default."""
        req = ctx.request
        images = req.of_kind("image")
        image = req.with_role("first_frame") or (images[0] if images else None)
        extra = [r.label for r in req.references if image is None or r.label != image.label]
        if extra:
            raise UpstreamError(
                f"route {self._route.name} sends OpenAI's multipart form, which carries one "
                f"image (as input_reference) and nothing else, so it cannot send "
                f'{", ".join(extra)}; configure the route with request_format = "json"',
                code="unsupported_request",
            )
        _, width, height = resolve_output(req)
        fields = {"model": self._route.upstream_model, "prompt": req.prompt}
        fields["size"] = f"{width}x{height}"
        if req.duration > 0:
            fields["seconds"] = str(req.duration)
        files: dict[str, tuple[str, bytes, str]] = {}
        if image is not None:
            path = ctx.reference_paths.get(image.label)
            try:
                if path is None:
                    raise FileNotFoundError(image.label)
                data = await asyncio.to_thread(path.read_bytes)
            except OSError:
                raise UpstreamError(
                    f"{image.label} has no local copy to upload to route {self._route.name}",
                    code="reference_unavailable",
                ) from None
            mime = image.mime_type or mimetypes.guess_type(path.name)[0]
            files["input_reference"] = (path.name, data, mime or "application/octet-stream")
        return fields, files

    def _url(self, upstream_id: str | None = None, suffix: str = "") -> str:
        if upstream_id is None:
            return f"{self._base}/videos"
        return f"{self._base}/videos/{quote(upstream_id, safe='')}{suffix}"

    def _may_be_ours(self, ctx: TaskContext, item: dict[str, Any]) -> bool:
        # Missing fields count as "could be": doubt ends in submit_uncertain, not a resubmit.
        model, prompt = item.get("model"), item.get("prompt")
        return (
            isinstance(item.get("id"), str)
            and bool(item["id"])
            and (not isinstance(model, str) or model == self._route.upstream_model)
            and (not isinstance(prompt, str) or prompt == ctx.request.prompt)
        )

    # The content endpoint ---------------------------------------------------------------

    async def _download(self, ctx: TaskContext, upstream_id: str) -> str:
        """Fetch ``/videos/{id}/content`` (it needs our key, which the engine's result
        copier does not send) and return a ``file://`` URL for it."""
        name = upstream_id if _SAFE_NAME.fullmatch(upstream_id) else _hashed(upstream_id)
        # Inside work_dir/<upstream id>/, which the engine removes once the task completes.
        dest = ctx.work_dir / name / "video.mp4"
        if await asyncio.to_thread(dest.exists):  # complete: written under another name
            return dest.resolve().as_uri()
        part = dest.with_name(f"{dest.name}.part")
        settings = self._deps.settings
        try:
            try:
                await self._http.download(
                    self._url(upstream_id, "/content"),
                    part,
                    max_bytes=settings.max_result_bytes,
                    timeout=settings.result_timeout_seconds,
                )
            except UpstreamError as exc:
                if exc.status is None:
                    raise
                # The video said it succeeded: an error status on its content (not ready
                # yet, gone for a moment) is asked again at the next poll, within the
                # engine's poll window.
                exc.disposition = Disposition.RETRY
                raise
            info = await asyncio.to_thread(probe, part)
            if info.kind != "video":
                raise MediaError(f"it holds {info.kind} content")
            await asyncio.to_thread(os.replace, part, dest)
        except MediaError as exc:
            raise UpstreamError(
                f"route {self._route.name}: the downloaded video is not a readable video ({exc})",
                code="result_invalid",
            ) from None
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        return dest.resolve().as_uri()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any, top: int | None = None) -> int | None:
    """A non-negative integer (at most ``top``), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value) if top is None else min(int(value), top)


def _number(value: Any) -> float | None:
    """A positive number, also from a string (OpenAI's ``seconds`` is ``"8"``)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _http_url(value: Any) -> str | None:
    # Only http(s): the engine copies file:// URLs from the local disk without checks.
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def _hashed(upstream_id: str) -> str:
    return "video-" + hashlib.sha256(upstream_id.encode()).hexdigest()[:32]


PROVIDER_CLASS = OpenAIVideosProvider
