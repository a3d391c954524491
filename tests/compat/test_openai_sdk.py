"""The real, unmodified ``openai`` SDK against a live server (API.md §1.3).

Every ``client.videos`` method is marked deprecated by the SDK (Sora shuts down); that one
warning is ignored in pyproject.toml, the calls themselves are what existing clients run.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types import Video
from PIL import Image, ImageOps

from conftest import LiveServer
from openai_support import POLL_MS, client, key, live, picture
from videogate.api.openai_form import DEFAULT_MODEL, SUPPORTED_SIZES

pytestmark = pytest.mark.slow
__all__ = ["client", "key", "live"]  # fixtures

FAST = "doubao-seedance-2-0-fast-260128"
# Values beyond the SDK's Literal types (Seedance sizes and durations) pass through at runtime.
SMALL: Any = "864x496"
FIVE: Any = "5"


def mp4_facts(path: Path) -> tuple[tuple[int, int], float, np.ndarray[Any, Any]]:
    """(width, height), duration in seconds and the decoded first frame (RGB)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        duration = (container.duration or 0) / 1_000_000
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return size, duration, first


def mean_abs_diff(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def test_create_and_poll_download_retrieve_delete(client: OpenAI, tmp_path: Path) -> None:
    video = client.videos.create_and_poll(
        model=FAST, prompt="a red fox in snow", seconds="4", size="1280x720"
    )
    assert isinstance(video, Video)
    assert video.status == "completed", video
    assert (video.seconds, video.size, video.progress, video.error) == ("4", "1280x720", 100, None)
    assert video.model == FAST and video.prompt == "a red fox in snow"
    assert video.completed_at is not None and video.completed_at >= video.created_at
    assert video.expires_at is not None and video.expires_at > time.time()

    out = tmp_path / "out.mp4"
    client.videos.download_content(video.id).write_to_file(out)
    size, duration, _ = mp4_facts(out)
    assert size == (1280, 720)
    assert abs(duration - 4) < 0.2
    thumb = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"  # OpenAI's thumbnail type

    again = client.videos.retrieve(video.id)
    assert (again.id, again.status, again.size) == (video.id, "completed", "1280x720")

    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (video.id, "video.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_doesnotexist")


def test_the_documented_manual_poll_loop(client: OpenAI) -> None:
    # OpenAI's guide polls from the create response: `while status in (queued, in_progress)`.
    # The form create therefore answers "queued" rather than the relay's "submitted".
    video = client.videos.create(prompt="a calm lake", seconds="4", size=SMALL)
    assert video.status == "queued" and video.model == DEFAULT_MODEL
    deadline = time.monotonic() + 120
    while video.status in ("in_progress", "queued"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        video = client.videos.retrieve(video.id)
    assert video.status == "completed", video
    assert 0 <= video.progress <= 100


def test_list_paginates_with_the_auto_paginator(client: OpenAI) -> None:
    created = [
        client.videos.create(model=FAST, prompt=f"clip {i}", seconds="4", size=SMALL).id
        for i in range(5)
    ]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == created[::-1][:2]
    assert first.has_more is True
    pages = list(first.iter_pages())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    # Iterating the page fetches the following pages (after=last_id) until has_more is false.
    assert [v.id for v in client.videos.list(limit=2)] == created[::-1]
    assert [v.id for v in client.videos.list(limit=2, order="asc")] == created
    assert all(isinstance(v, Video) for v in client.videos.list(limit=3))


def test_input_reference_file_is_the_first_frame(client: OpenAI, tmp_path: Path) -> None:
    png = tmp_path / "first.png"
    png.write_bytes(picture(640, 360))
    video = client.videos.create_and_poll(
        model=FAST,
        prompt="the scene comes alive",
        seconds="4",
        size="1280x720",
        input_reference=png,
    )
    assert video.status == "completed", video
    out = tmp_path / "out.mp4"
    client.videos.download_content(video.id).write_to_file(out)
    size, _, first = mp4_facts(out)
    assert size == (1280, 720)
    expected = np.asarray(ImageOps.fit(Image.open(png).convert("RGB"), size), np.uint8)
    assert mean_abs_diff(first, expected) < 6


def test_input_reference_as_an_image_url_object(client: OpenAI) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(picture(480, 640)).decode()
    try:
        # Newer SDKs accept {"image_url": ...}; the installed one may refuse a dict client-side.
        video = client.videos.create(
            prompt="p", seconds="4", input_reference={"image_url": data_url}
        )
    except RuntimeError as exc:
        assert "input_reference" in str(exc)
        # What an SDK sends for a nested object in a form: input_reference[image_url].
        video = client.videos.create(
            prompt="p", seconds="4", extra_body={"input_reference": {"image_url": data_url}}
        )
    # No size: the frame follows the 3:4 image; `size` shows OpenAI's portrait size.
    assert (video.status, video.size) == ("queued", "720x1280")
    assert getattr(video, "output_size", None) == "834x1112"
    assert client.videos.poll(video.id).status == "completed"


def test_unsupported_size_is_a_bad_request_listing_the_sizes(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="p", size=cast(Any, "640x480"))
    error = info.value
    assert (error.status_code, error.code, error.param) == (400, "invalid_request", "size")
    for size in SUPPORTED_SIZES:
        assert size in error.message
    with pytest.raises(openai.BadRequestError) as info:
        client.videos.create(prompt="p", seconds=cast(Any, "2"))
    assert info.value.param == "seconds" and "4-15" in info.value.message
    with pytest.raises(openai.NotFoundError) as not_found:
        client.videos.create(prompt="p", model="veo-3")
    assert not_found.value.code == "model_not_found"


def test_the_poller_honours_openai_poll_after_ms(
    client: OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(client.videos, "_sleep", sleep)
    video = client.videos.create_and_poll(model=FAST, prompt="p", seconds="4", size="1280x720")
    assert video.status == "completed"
    assert sleeps and set(sleeps) == {POLL_MS / 1000}, sleeps
    raw = client.videos.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == str(POLL_MS)


async def test_async_client_create_and_poll_and_download(
    live: LiveServer, key: str, tmp_path: Path
) -> None:
    async with AsyncOpenAI(base_url=f"{live.base_url}/v1", api_key=key, max_retries=0) as client:
        video = await client.videos.create_and_poll(
            model=FAST,
            prompt="a paper boat",
            seconds=FIVE,
            size="720x1280",
            input_reference=("boat.png", picture(720, 1280), "image/png"),
        )
        assert video.status == "completed", video
        assert (video.seconds, video.size) == ("5", "720x1280")
        content = await client.videos.download_content(video.id)
        out = tmp_path / "async.mp4"
        out.write_bytes(content.content)
        size, duration, _ = mp4_facts(out)
        assert size == (720, 1280) and abs(duration - 5) < 0.2
        page = await client.videos.list(limit=1)
        assert [v.id async for v in page] == [video.id]
        assert (await client.videos.delete(video.id)).deleted is True
