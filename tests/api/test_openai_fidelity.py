"""OpenAI fidelity with the real ``openai`` SDK against a live server: every Video object
is checked against the installed SDK's ``Video`` type (every declared field present, every
value within its declared literals), aliases, the JSON create, delete and list semantics.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from openai.types import Video
from PIL import Image

from conftest import LiveServer
from openai_support import assert_openai_video, client, key, live, picture, raw_get

__all__ = ["client", "key", "live"]  # fixtures: the live server, a key and an SDK client

pytestmark = pytest.mark.slow

FAST = "doubao-seedance-2-0-fast-260128"
STANDARD = "doubao-seedance-2-0-260128"


def wait_raw(c: OpenAI, video_id: str, *, openai_shape: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body = raw_get(c, video_id)
        assert_openai_video(body, openai_shape=openai_shape)
        if body["status"] not in ("queued", "in_progress"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def http(live: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_alias_default_model_and_nearest_size(client: OpenAI) -> None:
    raw = client.videos.with_raw_response.create(prompt="a kite", seconds="4", size="1792x1024")
    created = raw.http_response.json()
    assert_openai_video(created)
    # No model: OpenAI's default, sora-2, an alias of Seedance 2.0 fast (no 1080p), so the
    # 1080p-class size renders at the nearest size fast offers; the asked size is shown.
    assert (created["model"], created["status"], created["size"]) == (
        "sora-2",
        "queued",
        "1792x1024",
    )
    assert (created["output_size"], created["remixed_from_video_id"]) == ("1280x720", None)
    done = wait_raw(client, created["id"])
    assert (done["status"], done["model"], done["progress"]) == ("completed", "sora-2", 100)
    pro = client.videos.create(model="sora-2-pro", prompt="p", seconds="4", size="1024x1792")
    body = raw_get(client, pro.id)
    assert_openai_video(body)
    assert (body["model"], body["output_size"], body["resolution"]) == (
        "sora-2-pro",
        "1080x1920",
        "1080p",
    )


def test_json_create_with_openai_fields(live: LiveServer, key: str, client: OpenAI) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(picture(640, 360)).decode()
    with http(live, key) as h:
        r = h.post(
            "/v1/videos",
            json={
                "prompt": "the scene comes alive",
                "model": "sora-2",
                "seconds": "4",
                "size": "1280x720",
                "input_reference": {"image_url": data_url},
                "user": "user-1234",
                "quality": "high",
                "metadata": {"project": "x", "n": 3},
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert_openai_video(body)
        assert (body["status"], body["model"], body["seconds"], body["size"]) == (
            "queued",
            "sora-2",
            "4",
            "1280x720",
        )
        # seconds as a number and no model are fine too; a mixed body is refused clearly.
        r = h.post("/v1/videos", json={"prompt": "p", "seconds": 8})
        assert r.status_code == 200 and r.json()["model"] == "sora-2", r.text
        r = h.post("/v1/videos", json={"prompt": "p", "seconds": "4", "duration": 5})
        assert r.status_code == 400 and r.json()["error"]["param"] == "duration"
    done = wait_raw(client, body["id"])
    assert done["status"] == "completed"


def test_relay_shaped_tasks_are_video_objects_too(live: LiveServer, key: str) -> None:
    with http(live, key) as h, OpenAI(base_url=f"{live.base_url}/v1", api_key=key) as c:
        r = h.post("/v1/videos", json={"model": FAST, "prompt": "x", "duration": 4})
        assert r.status_code == 200
        assert r.json()["status"] == "submitted"  # the relay's create word (API.md §1.1)
        done = wait_raw(c, r.json()["id"], openai_shape=False)
        assert done["status"] == "completed" and done["size"] == "1280x720"
        # an alias works in the relay shape too, and is echoed
        r = h.post("/v1/videos", json={"model": "sora-2-pro", "prompt": "x", "duration": 4})
        assert r.json()["model"] == "sora-2-pro"


def test_delete_then_everything_is_404_and_cancel_is_separate(client: OpenAI) -> None:
    video = client.videos.create_and_poll(model="sora-2", prompt="p", seconds="4")
    assert video.status == "completed"
    running = client.videos.create(model="sora-2", prompt="slow", seconds="12")
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    for call in (
        lambda: client.videos.retrieve(video.id),
        lambda: client.videos.download_content(video.id),
        lambda: client.videos.delete(video.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert video.id not in [v.id for v in client.videos.list(limit=100)]
    cancelled = client.post(f"/videos/{running.id}/cancel", cast_to=Video)
    assert cancelled.status in ("failed", "completed")
    body = raw_get(client, running.id)
    assert_openai_video(body)
    if body["status"] == "failed":
        assert body["error"]["code"] == "cancelled"


def test_list_items_validate_and_limits(client: OpenAI) -> None:
    ids = [client.videos.create(model="sora-2", prompt=f"c{i}", seconds="4").id for i in range(3)]
    page = client.videos.with_raw_response.list(limit=100).http_response.json()
    assert [v["id"] for v in page["data"]] == ids[::-1]
    for item in page["data"]:
        assert_openai_video(item)
    assert client.videos.list(limit=0).data == []
    with pytest.raises(openai.BadRequestError) as exc:
        client.videos.list(limit=101)
    assert "limit" in str(exc.value)
    with pytest.raises(openai.BadRequestError) as exc:
        client.videos.list(after="video_unknown")
    assert "after" in str(exc.value)


def test_thumbnail_is_webp_or_jpeg_and_the_spritesheet_is_real(
    client: OpenAI, live: LiveServer, key: str, tmp_path: Path
) -> None:
    video = client.videos.create_and_poll(
        model="sora-2", prompt="a fox", seconds="4", size="1280x720"
    )
    webp = client.videos.download_content(video.id, variant="thumbnail")
    assert webp.response.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(webp.read())).format == "WEBP"
    with http(live, key) as h:
        r = h.get(
            f"/v1/videos/{video.id}/content",
            params={"variant": "thumbnail"},
            headers={"Accept": "image/jpeg"},
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:3] == b"\xff\xd8\xff"
    sheet_bytes = client.videos.download_content(video.id, variant="spritesheet").read()
    sheet = Image.open(io.BytesIO(sheet_bytes)).convert("RGB")
    assert sheet.size == (5 * 256, 2 * 144)  # 10 tiles of the 16:9 720p clip
    # Each tile is the clip's frame at (i + 0.5) / 10 of its length.
    out = tmp_path / "v.mp4"
    client.videos.download_content(video.id).write_to_file(out)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    tiles = np.asarray(sheet, dtype=np.int16)
    for i in (0, 4, 9):
        want = frames[int((i + 0.5) * len(frames) / 10)]
        small = np.asarray(Image.fromarray(want).resize((256, 144)), dtype=np.int16)
        tile = tiles[(i // 5) * 144 : (i // 5 + 1) * 144, (i % 5) * 256 : (i % 5 + 1) * 256]
        assert float(np.mean(np.abs(tile - small))) < 10, i
    client.videos.delete(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id, variant="spritesheet")
