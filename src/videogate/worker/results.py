"""Copying a finished result into our own blob store before the upstream URL expires.

The upstream URL never reaches a client: the task completes only once the bytes are ours.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from videogate.context import AppContext
from videogate.errors import InvalidRequest, ReferenceUnreachable, UpstreamError
from videogate.fetch import fetch_url
from videogate.media.probe import MediaError, probe

# What each result may be; an HTML error page or a JSON body is not a video.
ACCEPTED_KINDS = {"video_url": "video", "thumbnail_url": "image", "last_frame_url": "image"}
RESULT_NAMES = {
    "video_url": "video.mp4",
    "thumbnail_url": "thumbnail.jpg",
    "last_frame_url": "last_frame.png",
}


async def copy_result(ctx: AppContext, field: str, url: str, key: str) -> None:
    """Put the result behind ``url`` at blob ``key``; raise a retryable UpstreamError when
    the download failed, a final one when the content is wrong."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        # Only our own providers hand out file:// URLs, and only inside work_dir.
        path = Path(url2pathname(parts.path)).resolve()  # noqa: ASYNC240 - no I/O worth a thread
        if not path.is_relative_to(ctx.work_dir.resolve()):
            raise UpstreamError(f"refusing to copy a result from {path}", code="result_invalid")
        await ctx.blobs.put_file(key, path)
        return
    tmp = ctx.tmp_dir / f"result-{uuid.uuid4().hex}"
    try:
        try:
            fetched = await fetch_url(
                url,
                tmp,
                label=f"result {field.removesuffix('_url')}",
                client=ctx.http,
                guard=ctx.guard,
                max_bytes=ctx.settings.max_result_bytes,
                timeout=ctx.settings.result_timeout_seconds,
            )
        except ReferenceUnreachable as exc:
            raise UpstreamError(exc.message, code="result_fetch_failed", retryable=True) from None
        except InvalidRequest as exc:  # too large, unsafe address, bad URL
            raise UpstreamError(exc.message, code="result_invalid") from None
        await _check_kind(field, fetched.path, fetched.content_type)
        await ctx.blobs.put_file(key, fetched.path)
    finally:
        tmp.unlink(missing_ok=True)


async def _check_kind(field: str, path: Path, content_type: str | None) -> None:
    want = ACCEPTED_KINDS[field]
    declared = (content_type or "").split(";")[0].strip().lower()
    if (
        declared
        and not declared.startswith(f"{want}/")
        and declared
        not in (
            "application/octet-stream",
            "binary/octet-stream",
        )
    ):
        raise UpstreamError(
            f"the upstream's {field} served {declared}, not {want} content",
            code="result_invalid",
        )
    try:
        info = await asyncio.to_thread(probe, path)
    except MediaError as exc:
        raise UpstreamError(
            f"the upstream's {field} is not a readable {want} ({exc})", code="result_invalid"
        ) from None
    if info.kind != want:
        raise UpstreamError(
            f"the upstream's {field} holds {info.kind} content, not {want}", code="result_invalid"
        )
