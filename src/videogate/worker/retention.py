"""The retention sweep: what expired goes from the blob store and the database.

Each worker runs it every ``retention_sweep_seconds``; ``videogate gc`` runs it once. Work
is found in batches and every item is claimed with a compare-and-set first (see
``store/retention.py``), so several workers sweeping at once never double up. Only
finished tasks lose anything: a task's media go after it ended, never while it runs.

- Results and stored references: ``result_retention_seconds`` after the task ended.
- Uploads: ``upload_retention_seconds`` after upload, but never before the URLs issued for
  them expired and a task started with them had its deadline.
- Task records: ``task_retention_seconds`` after the task ended (their media go too).
- Per-process scratch (reference copies, renders a killed worker left) older than the task
  deadline.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from videogate.blobs.keys import reference_prefix, result_prefix
from videogate.context import AppContext
from videogate.errors import NotFound

log = logging.getLogger("videogate.retention")
MAX_BATCHES = 20  # per kind and sweep: a backlog is worked off over several sweeps


@dataclass
class SweepReport:
    results: int = 0
    uploads: int = 0
    tasks: int = 0
    scratch: int = 0

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


async def sweep(
    ctx: AppContext, now: float, *, dry_run: bool = False, max_batches: int = MAX_BATCHES
) -> SweepReport:
    """One pass over everything that expired by ``now``; with ``dry_run`` only count."""
    s, report = ctx.settings, SweepReport()
    store, batch = ctx.store.retention, s.retention_batch
    if s.result_retention_seconds:
        before = now - s.result_retention_seconds
        for _ in range(max_batches):
            if dry_run:
                report.results = len(await store.expired_media(before, batch * max_batches))
                break
            found = await store.expired_media(before, batch)
            for task_id, key_id in found:
                if await store.claim_media(task_id, now):
                    await _drop_media(ctx, task_id, key_id)
                    report.results += 1
            if len(found) < batch:
                break
    if s.upload_retention_seconds:
        before = _uploads_before(ctx, now)
        for _ in range(max_batches):
            if dry_run:
                report.uploads = len(await store.expired_uploads(before, batch * max_batches))
                break
            uploads = await store.expired_uploads(before, batch)
            for file_id, blob_key in uploads:
                if await store.claim_upload(file_id):
                    await ctx.blobs.delete(blob_key)
                    report.uploads += 1
            if len(uploads) < batch:
                break
    if s.task_retention_seconds:
        before = now - s.task_retention_seconds
        for _ in range(max_batches):
            if dry_run:
                report.tasks = len(await store.expired_tasks(before, batch * max_batches))
                break
            tasks = await store.expired_tasks(before, batch)
            for task_id, key_id, media_deleted in tasks:
                if await store.claim_task(task_id):
                    if not media_deleted:
                        await _drop_media(ctx, task_id, key_id)
                    ctx.notify_task_changed(task_id)
                    report.tasks += 1
            if len(tasks) < batch:
                break
    report.scratch = await asyncio.to_thread(
        _old_scratch, ctx.work_dir, now - s.task_deadline_seconds, dry_run
    )
    if not dry_run:
        for name in ("results", "uploads", "tasks", "scratch"):
            ctx.metrics.retention_deleted.labels(name).inc(getattr(report, name))
    return report


def _uploads_before(ctx: AppContext, now: float) -> float:
    """Uploads made before this go: kept their retention, and never before the URLs
    issued for them expired and a task started with them had its deadline."""
    s = ctx.settings
    keep = max(s.upload_retention_seconds, s.upload_ttl_seconds) + s.task_deadline_seconds
    return now - keep


@dataclass(frozen=True)
class Doomed:
    """One thing a sweep would remove, as ``videogate gc --dry-run`` lists it."""

    kind: str  # result (a task's result files and stored references), upload or task
    id: str  # the task id or file id
    key: str  # the blob key, or the prefix everything under goes with
    age_seconds: float  # since the task finished or the file was uploaded
    bytes: int | None  # None: nothing in the blob store (a task record alone)


async def preview(ctx: AppContext, now: float, limit: int) -> tuple[SweepReport, list[Doomed]]:
    """What a sweep at ``now`` would remove: every count, and the oldest ``limit`` of each
    kind itemised. A result's size is its video, thumbnail and last frame (one size
    request each); stored references are not counted."""
    s, store = ctx.settings, ctx.store.retention
    counts = await sweep(ctx, now, dry_run=True, max_batches=1_000_000)
    items: list[Doomed] = []
    if s.result_retention_seconds:
        for media in await store.media_preview(now - s.result_retention_seconds, limit):
            size = sum([await _size(ctx, key) for key in media.result_keys])
            prefix = result_prefix(media.key_id, media.task_id) + "/"
            items.append(Doomed("result", media.task_id, prefix, now - media.completed_at, size))
    if s.upload_retention_seconds:
        for up in await store.upload_preview(_uploads_before(ctx, now), limit):
            items.append(Doomed("upload", up.file_id, up.blob_key, now - up.created_at, up.bytes))
    if s.task_retention_seconds:
        for task in await store.task_preview(now - s.task_retention_seconds, limit):
            key = "" if task.media_deleted else result_prefix(task.key_id, task.task_id) + "/"
            items.append(Doomed("task", task.task_id, key, now - task.completed_at, None))
    return counts, items


async def _size(ctx: AppContext, key: str) -> int:
    try:
        return await ctx.blobs.size(key)
    except NotFound:  # already gone (a sweep elsewhere, or never written)
        return 0


async def _drop_media(ctx: AppContext, task_id: str, key_id: str) -> None:
    await ctx.blobs.delete_prefix(result_prefix(key_id, task_id))
    await ctx.blobs.delete_prefix(reference_prefix(task_id))
    ctx.notify_task_changed(task_id)


def _old_scratch(work_dir: Path, before: float, dry_run: bool) -> int:
    """This process's scratch folders untouched since before the task deadline: left by
    a worker that died or lost a task to another one."""
    count = 0
    for folder in [*work_dir.glob("*/"), *work_dir.glob("refs/*/")]:
        if folder.name == "refs" or not folder.is_dir():
            continue
        try:
            if folder.stat().st_mtime >= before:
                continue
        except FileNotFoundError:
            continue
        count += 1
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)
    return count


async def run_sweeper(ctx: AppContext, stop: asyncio.Event) -> None:
    """Sweep every ``retention_sweep_seconds`` until ``stop``."""
    interval = ctx.settings.retention_sweep_seconds
    while not stop.is_set():
        try:
            report = await sweep(ctx, ctx.clock.now())
            if report.total():
                log.info(
                    "retention sweep removed %d result sets, %d uploads, %d task records, "
                    "%d scratch folders",
                    report.results,
                    report.uploads,
                    report.tasks,
                    report.scratch,
                )
        except Exception:  # the store may be down for a while; try again next time
            log.exception("retention sweep failed; trying again in %.0f s", interval)
        await ctx.clock.wait(stop.wait(), interval)
