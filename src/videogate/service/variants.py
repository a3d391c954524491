"""The derived downloads of a finished task: ``spritesheet`` and the WebP ``thumbnail``.

Made on first request from the stored video or thumbnail, kept in the blob store beside
them (so every backend, S3 included, serves them like any result), and deleted with them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from videogate.blobs.keys import result_key
from videogate.context import AppContext
from videogate.media.stills import sprite_sheet, to_webp
from videogate.store.records import TaskRecord

SPRITESHEET = "spritesheet.jpg"
THUMBNAIL_WEBP = "thumbnail.webp"


async def derived_key(ctx: AppContext, task: TaskRecord, variant: str) -> str | None:
    """The blob key of ``variant`` (``spritesheet`` or ``thumbnail_webp``), made if missing;
    None when its source is gone."""
    make: Callable[[Path, Path], None]
    if variant == "spritesheet":
        source, name, make = task.video_key, SPRITESHEET, _sheet
    else:
        source, name, make = task.thumbnail_key, THUMBNAIL_WEBP, to_webp
    if not source:
        return None
    key = result_key(task.key_id, task.id, name)
    if await ctx.blobs.exists(key):
        return key
    await _derive(ctx, source, key, make)
    return key


def _sheet(video: Path, out: Path) -> None:
    sprite_sheet(video, out)


async def _derive(
    ctx: AppContext, source_key: str, key: str, make: Callable[[Path, Path], None]
) -> None:
    tmp_in = ctx.tmp_dir / f"derive-{uuid.uuid4().hex}"
    tmp_out = ctx.tmp_dir / f"derive-{uuid.uuid4().hex}"
    try:
        local = ctx.blobs.local_path(source_key)
        if local is None:
            await ctx.blobs.get_file(source_key, tmp_in)
            local = tmp_in
        await asyncio.to_thread(make, local, tmp_out)
        await ctx.blobs.put_file(key, tmp_out)
    finally:
        tmp_in.unlink(missing_ok=True)
        tmp_out.unlink(missing_ok=True)
