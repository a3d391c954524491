"""Retention: what expired goes from the blob store and the database, once, even with
several sweepers; unfinished tasks keep everything; expired results answer 410."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import update

from conftest import wait_for_status
from media_factory import png_bytes
from videogate.api.state import ApiState
from videogate.store.tables import Task
from videogate.worker.retention import sweep

DAY = 86_400.0


async def test_sweep_removes_expired_results_uploads_and_records(
    client: httpx.AsyncClient, auth: dict[str, str], state: ApiState, tmp_path: Path
) -> None:
    ctx = state.ctx
    up = await client.post(
        "/v1/files", headers=auth, files={"file": ("f.png", png_bytes(400, 400), "image/png")}
    )
    assert up.status_code == 200, up.text
    body = {"model": "sandbox", "prompt": "keep me a while", "duration": 4, "resolution": "480p"}
    done_id = (await client.post("/v1/videos", json=body, headers=auth)).json()["id"]
    done = await wait_for_status(client, done_id, auth, timeout=120)
    assert done["status"] == "completed", done
    video_url = str(done["video_url"])
    task = await ctx.store.tasks.get(done_id)
    assert task is not None and task.video_key
    upload_key = (await ctx.store.files.get(up.json()["id"], task.key_id)).blob_key  # type: ignore[union-attr]

    # Nothing is due yet.
    now = time.time()
    assert (await sweep(ctx, now)).total() == 0

    # After the result retention: a dry run counts, two sweepers at once delete it once.
    later = now + ctx.settings.result_retention_seconds + 60
    preview = await sweep(ctx, later, dry_run=True)
    assert preview.results == 1 and preview.tasks == 0
    assert await ctx.blobs.exists(task.video_key)  # a dry run removes nothing
    first, second = await asyncio.gather(sweep(ctx, later), sweep(ctx, later))
    assert first.results + second.results == 1
    assert not await ctx.blobs.exists(task.video_key)
    content = await client.get(f"/v1/videos/{done_id}/content", headers=auth)
    assert content.status_code == 410 and content.json()["error"]["code"] == "gone"
    assert (await client.get(video_url)).status_code == 410
    polled = (await client.get(f"/v1/videos/{done_id}", headers=auth)).json()
    assert polled["status"] == "completed" and polled["video_url"] is None

    # Uploads go once their URLs and any task started with them are over.
    settings = ctx.settings
    upload_due = (
        now
        + max(settings.upload_retention_seconds, settings.upload_ttl_seconds)
        + settings.task_deadline_seconds
        + 60
    )
    assert (await sweep(ctx, upload_due - 120)).uploads == 0
    assert (await sweep(ctx, upload_due)).uploads == 1
    assert not await ctx.blobs.exists(upload_key)
    assert (await client.get(f"/v1/files/{up.json()['id']}", headers=auth)).status_code == 404

    # Records go after the task retention; a queued task is never touched.
    queued = (await client.post("/v1/videos", json=body, headers=auth)).json()["id"]
    async with ctx.store.sessions.begin() as s:  # park it: no worker takes it
        await s.execute(update(Task).where(Task.id == queued).values(next_run_at=now + 10 * DAY))
    records_due = now + settings.task_retention_seconds + 60
    report = await sweep(ctx, records_due)
    assert report.tasks == 1
    assert await ctx.store.tasks.get(done_id) is None
    assert (await ctx.store.tasks.get(queued)) is not None


def test_gc_dry_run_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOGATE_")}
    env["VIDEOGATE_DATA_DIR"] = str(tmp_path / "var")
    videogate = str(Path(sys.executable).parent / "videogate")
    done = subprocess.run(
        [videogate, "gc", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would remove: 0 result sets" in done.stdout, done.stdout
