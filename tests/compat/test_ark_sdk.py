"""The real, unmodified Volcengine Ark SDK (``volcenginesdkarkruntime``) against a live
server: only ``base_url`` changes (API.md §2)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
import uvicorn
from sqlalchemy import update
from volcenginesdkarkruntime import (  # type: ignore[import-untyped]
    Ark,
    AsyncArk,
)
from volcenginesdkarkruntime._exceptions import (  # type: ignore[import-untyped]
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkNotFoundError,
)

from ark_sdk_support import FINISHED, text, wait_done
from conftest import LiveServer, MediaServer, free_port, make_live_key
from media_factory import mp4_file, png_bytes, wav_file
from videogate.api.app import create_app
from videogate.context import open_context
from videogate.settings import Settings
from videogate.store import Store
from videogate.store.tables import Task
from videogate.worker import Worker

FAST = "doubao-seedance-2-0-fast-260128"
# The official SDK against a live server: end to end, so the slow tier (make test).
pytestmark = pytest.mark.slow


@pytest.fixture
def live_key(live_server: LiveServer) -> str:
    return make_live_key(live_server)


@pytest.fixture
def ark(live_server: LiveServer, live_key: str) -> Iterator[Any]:
    client = Ark(base_url=f"{live_server.base_url}/api/v3", api_key=live_key)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def idle_live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Like ``live_server``, without the in-process worker: tasks stay queued until
    :func:`drain` runs a worker (against the same database and storage)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=tmp_path / "idle",
        host="127.0.0.1",
        port=port,
        public_url=base,
        allow_private_urls=True,
        render_processes=1,
        key_cache_seconds=0,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, run_worker=False), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield LiveServer(base, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def drain(live: LiveServer) -> None:
    """Run a worker until no task is due."""

    async def run() -> None:
        ctx = await open_context(live.settings, migrate=False)
        worker = Worker(ctx)
        try:
            await worker.run_until_idle()
        finally:
            await worker.close()
            await ctx.close()

    asyncio.run(run())


def set_task(live: LiveServer, task_id: str, **values: Any) -> None:
    """Put a task in a state directly in the server's database."""

    async def run() -> None:
        store = Store.open(live.settings.effective_database_url)
        try:
            async with store.engine.begin() as conn:
                await conn.execute(update(Task).where(Task.id == task_id).values(**values))
        finally:
            await store.close()

    asyncio.run(run())


def test_sdk_multimodal_task_renders_and_downloads(ark: Any, media_server: MediaServer) -> None:
    root = media_server.root
    (root / "a.png").write_bytes(png_bytes(800, 600, (250, 30, 30)))
    (root / "b.png").write_bytes(png_bytes(600, 800, (30, 30, 250)))
    mp4_file(root / "c.mp4", 3.0)
    wav_file(root / "d.wav", 3.0)
    created = ark.content_generation.tasks.create(
        model=FAST,
        content=[
            text("The girl in image 1 walks down the street of video 1, to audio 1"),
            {
                "type": "image_url",
                "image_url": {"url": media_server.url("a.png")},
                "role": "reference_image",
            },
            {
                "type": "image_url",
                "image_url": {"url": media_server.url("b.png")},
                "role": "reference_image",
            },
            {
                "type": "video_url",
                "video_url": {"url": media_server.url("c.mp4")},
                "role": "reference_video",
            },
            {
                "type": "audio_url",
                "audio_url": {"url": media_server.url("d.wav")},
                "role": "reference_audio",
            },
        ],
        ratio="16:9",
        resolution="480p",
        duration=4,
        generate_audio=True,
        watermark=False,
        return_last_frame=True,
    )
    assert isinstance(created.id, str) and created.id
    task = wait_done(ark, created.id)
    assert task.status == "succeeded", task
    assert task.id == created.id and task.model == FAST and task.error is None
    assert (task.ratio, task.resolution, task.duration) == ("16:9", "480p", 4)
    assert task.framespersecond == 24 and task.generate_audio is True
    assert task.usage.completion_tokens > 0
    assert task.usage.total_tokens == task.usage.completion_tokens
    video = httpx.get(task.content.video_url)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content), "r") as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (864, 496)
        assert float(stream.average_rate or 0) == 24.0
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    frame = httpx.get(task.content.last_frame_url)
    assert frame.status_code == 200 and frame.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_sdk_list_filters_and_pages(ark: Any) -> None:
    tasks = ark.content_generation.tasks
    ids = [
        tasks.create(model=FAST, content=[text(f"clip {i}")], duration=4, resolution="480p").id
        for i in range(2)
    ]
    ids.append(tasks.create(model="sandbox", content=[text("sandbox")], duration=4).id)
    for task_id in ids:
        assert wait_done(ark, task_id).status == "succeeded"
    newest_first = ids[::-1]
    page = tasks.list(page_num=1, page_size=2)
    assert page.total == 3 and [t.id for t in page.items] == newest_first[:2]
    page = tasks.list(page_num=2, page_size=2)
    assert [t.id for t in page.items] == newest_first[2:]
    assert page.items[0].content.video_url.startswith("http")
    assert tasks.list(status="succeeded").total == 3
    assert tasks.list(status="queued").total == 0
    assert [t.id for t in tasks.list(task_ids=[ids[0], ids[2]]).items] == [ids[2], ids[0]]
    assert [t.id for t in tasks.list(task_ids=ids[1]).items] == [ids[1]]
    assert [t.id for t in tasks.list(model="sandbox").items] == [ids[2]]
    assert tasks.list(model=FAST, status="succeeded", page_size=500).total == 2
    with pytest.raises(ArkBadRequestError) as bad:
        tasks.list(status="done")
    assert bad.value.code == "InvalidParameter" and bad.value.param == "filter.status"


def test_sdk_delete_semantics(idle_live_server: LiveServer) -> None:
    live = idle_live_server
    ark = Ark(base_url=f"{live.base_url}/api/v3", api_key=make_live_key(live))
    tasks = ark.content_generation.tasks

    def create(prompt: str) -> str:
        task_id: str = tasks.create(
            model=FAST, content=[text(prompt)], duration=4, resolution="480p"
        ).id
        return task_id

    finished = create("finished")
    drain(live)
    assert tasks.get(task_id=finished).status == "succeeded"
    queued, running = create("queued"), create("running")
    set_task(live, running, status="running", next_run_at=None)  # as if an upstream had it
    assert tasks.get(task_id=queued).status == "queued"

    # running: refused with the SDK's 400 error, and nothing changes
    with pytest.raises(ArkBadRequestError) as refused:
        tasks.delete(task_id=running)
    assert refused.value.code == "InvalidParameter"
    assert "running" in refused.value.message and "cannot be cancelled" in refused.value.message
    assert tasks.get(task_id=running).status == "running"

    # queued: cancelled; a cancelled task cannot be deleted
    tasks.delete(task_id=queued)  # Ark answers {} (the SDK makes an empty object of it)
    assert tasks.get(task_id=queued).status == "cancelled"
    with pytest.raises(ArkBadRequestError):
        tasks.delete(task_id=queued)

    # finished: deleted, then unknown
    video_url = tasks.get(task_id=finished).content.video_url
    tasks.delete(task_id=finished)
    with pytest.raises(ArkNotFoundError) as gone:
        tasks.get(task_id=finished)
    assert gone.value.code == "ResourceNotFound"
    assert httpx.get(video_url).status_code == 410  # the signed URL says the media is gone
    assert tasks.list(task_ids=[finished]).total == 0
    ark.close()


def test_sdk_errors(ark: Any, live_server: LiveServer) -> None:
    tasks = ark.content_generation.tasks
    with pytest.raises(ArkNotFoundError) as unknown_model:
        tasks.create(model="doubao-seedance-9-0", content=[text("x")])
    assert unknown_model.value.code == "InvalidEndpointOrModel.NotFound"
    with pytest.raises(ArkBadRequestError) as bad:
        tasks.create(model=FAST, content=[text("x")], duration=99)
    assert bad.value.code == "InvalidParameter" and bad.value.param == "duration"
    with pytest.raises(ArkBadRequestError) as unsupported:
        tasks.create(model=FAST, content=[text("x")], frames=121)
    assert unsupported.value.code == "InvalidParameter.UnsupportedParameter"
    with pytest.raises(ArkNotFoundError):
        tasks.get(task_id="cgt-20260101000000-abcde")
    stranger = Ark(base_url=f"{live_server.base_url}/api/v3", api_key="vg-not-a-key")
    try:
        with pytest.raises(ArkAuthenticationError) as denied:
            stranger.content_generation.tasks.list()
        assert denied.value.code == "AuthenticationError"
    finally:
        stranger.close()


async def test_async_sdk(live_server: LiveServer) -> None:
    key = await asyncio.to_thread(make_live_key, live_server)
    client = AsyncArk(base_url=f"{live_server.base_url}/api/v3", api_key=key)
    try:
        tasks = client.content_generation.tasks
        created = await tasks.create(
            model=FAST,
            content=[text("a paper boat on a pond")],
            ratio="1:1",
            duration=4,
            resolution="480p",
            generate_audio=False,
            return_last_frame=True,
        )
        deadline = time.monotonic() + 90
        task = await tasks.get(task_id=created.id)
        while task.status not in FINISHED and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            task = await tasks.get(task_id=created.id)
        assert task.status == "succeeded", task
        assert task.ratio == "1:1" and task.generate_audio is False
        async with httpx.AsyncClient() as http:
            video = await http.get(task.content.video_url)
            assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        listed = await tasks.list(task_ids=[created.id], status="succeeded")
        assert listed.total == 1 and listed.items[0].id == created.id
        await tasks.delete(task_id=created.id)
        with pytest.raises(ArkNotFoundError):
            await tasks.get(task_id=created.id)
    finally:
        await client.close()
