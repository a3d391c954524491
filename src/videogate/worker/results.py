"""Copying a finished result into our own blob store before the upstream URL expires.

The upstream URL never reaches a client: the task completes only once the bytes are ours.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from videogate.billing import charge
from videogate.blobs.keys import result_key
from videogate.context import AppContext
from videogate.errors import Disposition, InvalidRequest, ReferenceUnreachable, UpstreamError
from videogate.fetch import fetch_url
from videogate.logs import log_transition
from videogate.media.probe import SNIFF_BYTES, sniff_kind
from videogate.request import stored_output_format, stored_surface
from videogate.store.records import TaskChange, TaskRecord
from videogate.worker.reference_files import drop_reference_files

# What each result may be; an HTML error page or a JSON body is not a video.
ACCEPTED_KINDS = {"video_url": "video", "thumbnail_url": "image", "last_frame_url": "image"}
RESULT_NAMES = {
    "video_url": "video.mp4",
    "thumbnail_url": "thumbnail.jpg",
    "last_frame_url": "last_frame.png",
}

log = logging.getLogger("videogate.tasks")


def result_elsewhere(ctx: AppContext, row: TaskRecord) -> str | None:
    """The first ``file://`` result of ``row`` that is not on this worker's disk, or None.

    A local job (the sandbox, a local model, a relay's downloaded content) leaves its result
    in the work directory of the worker that ran it. With several workers, each with its own
    data directory, a worker killed between the job and the copy leaves a ``fetching`` task
    whose files only its own disk held: the job must run again here, not fail the task.
    """
    for url in (row.upstream_result or {}).values():
        path = _file_path(str(url)) if url else None
        if path is not None and (not _in_work_dir(ctx, path) or not path.is_file()):
            return str(path)
    return None


def _file_path(url: str) -> Path | None:
    """The local path a ``file://`` URL names (resolved); None for any other scheme."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(url2pathname(parts.path)).resolve()


def _in_work_dir(ctx: AppContext, path: Path) -> bool:
    # Only our own providers hand out file:// URLs, and only inside work_dir.
    return path.is_relative_to(ctx.work_dir.resolve())


async def copy_result(ctx: AppContext, field: str, url: str, key: str) -> None:
    """Put the result behind ``url`` at blob ``key``; raise an UpstreamError to retry when
    the download failed, a final one when the content is wrong."""
    path = _file_path(url)
    if path is not None:
        if not _in_work_dir(ctx, path):
            log.error("refusing to copy a result from %s (outside the work directory)", path)
            raise UpstreamError("the result could not be stored", code="result_invalid")
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
            raise UpstreamError(
                exc.message, code="result_fetch_failed", disposition=Disposition.RETRY
            ) from None
        except InvalidRequest as exc:  # too large, unsafe address, bad URL
            raise UpstreamError(exc.message, code="result_invalid") from None
        _check_kind(field, fetched.path, fetched.content_type)
        await ctx.blobs.put_file(key, fetched.path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_kind(field: str, path: Path, content_type: str | None) -> None:
    """Refuse an error page or a JSON body served as the result: its declared type, then its
    magic bytes. Not decoded: the upstream encoded it, and a decode per completion would
    take the worker's CPU at a hundred completions a second."""
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
    with path.open("rb") as f:
        kind = sniff_kind(f.read(SNIFF_BYTES))
    if kind is None:
        raise UpstreamError(
            f"the upstream's {field} is not a readable {want} (neither a video nor an image "
            "container)",
            code="result_invalid",
        )
    if kind != want:
        raise UpstreamError(
            f"the upstream's {field} holds {kind} content, not {want}", code="result_invalid"
        )


async def complete_with_result(ctx: AppContext, owner: str, row: TaskRecord) -> None:
    """Copy a ``fetching`` task's result into our storage, then complete and charge it."""
    result = row.upstream_result or {}
    # The video is stored under the container it was asked in (video.mov is served as such).
    fmt = stored_output_format(row.request)
    keys: dict[str, str | None] = {}
    for field, name in RESULT_NAMES.items():
        if field == "video_url":
            name = f"video.{fmt}"
        url = result.get(field)
        keys[field] = result_key(row.key_id, row.id, name) if url else None
        if url:
            await copy_result(ctx, field, str(url), result_key(row.key_id, row.id, name))
    now = ctx.clock.now()
    route = ctx.router.get(row.route or "")
    charged = 0
    if route is None or not route.capabilities.free:
        charged = charge(row.price, row.completion_tokens, row.width, row.height, row.seconds)
    done = await ctx.store.tasks.transition(
        row.id,
        owner,
        "fetching",
        TaskChange(
            status="succeeded",
            video_key=keys["video_url"],
            thumbnail_key=keys["thumbnail_url"],
            last_frame_key=keys["last_frame_url"],
            upstream_result=None,
            progress=100,
            updated_at=now,
            completed_at=now,
            next_run_at=None,
        ),
        charged_micros=charged,
    )
    drop_reference_files(ctx, row.id)
    if done:
        log_transition(log, row.id, "succeeded", "the result is stored", charged_micros=charged)
        metrics = ctx.metrics
        metrics.tasks_finished.labels(row.model, stored_surface(row.request), "succeeded").inc()
        metrics.task_complete.labels(row.model).observe(now - row.created_at)
        currency = row.currency or "USD"
        settled = max(0, min(charged, row.hold_micros))
        metrics.count_money(currency, "charged", settled)
        metrics.count_money(currency, "refunded", row.hold_micros - settled)
    if done and row.upstream_id:
        remove_scratch(ctx, row.upstream_id)


def remove_scratch(ctx: AppContext, upstream_id: str) -> None:
    """Delete ``work_dir/<upstream id>`` (a provider's download of the result)."""
    scratch = (ctx.work_dir / upstream_id).resolve()
    # The id comes from an upstream: never let it point outside work_dir.
    if scratch.is_relative_to(ctx.work_dir.resolve()) and scratch.is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
