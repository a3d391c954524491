"""Local copies of a task's stored references, for providers that read files (the sandbox
renders from them; the OpenAI multipart form uploads them).

The file backend hands out its own paths. With object storage the references are
downloaded once per worker into ``work_dir/refs/<task id>/`` and removed when the task
finishes here; a copy left by a worker that died is swept with the other scratch files.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from videogate.context import AppContext
from videogate.request import GenerationRequest

SCRATCH = "refs"


def scratch_dir(ctx: AppContext, task_id: str) -> Path:
    return ctx.work_dir / SCRATCH / task_id


async def reference_files(ctx: AppContext, task_id: str, req: GenerationRequest) -> dict[str, Path]:
    """Path of each stored reference, by label ("image 1")."""
    paths: dict[str, Path] = {}
    for ref in req.references:
        if not ref.blob_key:
            continue
        local = ctx.blobs.local_path(ref.blob_key)
        if local is None:
            local = scratch_dir(ctx, task_id) / ref.blob_key.rsplit("/", 1)[-1]
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                part = local.with_name(f".{uuid.uuid4().hex}.part")
                try:
                    await ctx.blobs.get_file(ref.blob_key, part)
                    part.replace(local)
                finally:
                    part.unlink(missing_ok=True)
        paths[ref.label] = local
    return paths


def drop_reference_files(ctx: AppContext, task_id: str) -> None:
    shutil.rmtree(scratch_dir(ctx, task_id), ignore_errors=True)
