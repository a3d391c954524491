"""Multimodal references: fetched, probed, checked against the limits, rendered."""

from __future__ import annotations

import base64

import httpx
import pytest

from conftest import MediaServer, free_port, wait_for_status
from media_factory import mp4_file, png_bytes, wav_file

FAST = "doubao-seedance-2-0-fast-260128"


def image_item(url: str, role: str | None = "reference_image") -> dict[str, object]:
    item: dict[str, object] = {"type": "image_url", "image_url": {"url": url}}
    if role:
        item["role"] = role
    return item


@pytest.mark.slow
async def test_multimodal_body_is_accepted_and_rendered(
    client: httpx.AsyncClient, auth: dict[str, str], media_server: MediaServer
) -> None:
    root = media_server.root
    (root / "a.png").write_bytes(png_bytes(800, 600, (250, 30, 30)))
    (root / "b.png").write_bytes(png_bytes(600, 800, (30, 30, 250)))
    mp4_file(root / "c.mp4", 4.0)
    wav_file(root / "d.wav", 5.0)
    prompt = "The girl from image 1 walks through the street of video 1, to audio 1"
    body = {
        "model": FAST,
        "prompt": prompt,
        "content": [
            {"type": "text", "text": prompt},
            image_item(media_server.url("a.png")),
            image_item(media_server.url("b.png")),
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
        "resolution": "480p",
        "duration": 11,
        "generate_audio": True,
    }
    r = await client.post("/v1/videos", json=body, headers=auth)
    assert r.status_code == 200, r.text
    done = await wait_for_status(client, r.json()["id"], auth, timeout=120)
    assert done["status"] == "completed", done
    assert done["duration"] == 11 and done["size"] == "864x496"


async def test_data_urls_and_uploads_are_references(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(640, 640)).decode()
    up = await client.post(
        "/v1/files",
        headers=auth,
        files={"file": ("f.png", png_bytes(400, 400, (0, 200, 0)), "image/png")},
    )
    assert up.status_code == 200, up.text
    assert up.json()["object"] == "file" and up.json()["mime_type"] == "image/png"
    body = {
        "model": FAST,
        "prompt": "two frames",
        "resolution": "480p",
        "duration": 4,
        "content": [
            image_item(data_url, "first_frame"),
            image_item(up.json()["url"], "last_frame"),
        ],
    }
    r = await client.post("/v1/videos", json=body, headers=auth)
    assert r.status_code == 200, r.text
    done = await wait_for_status(client, r.json()["id"], auth)
    assert done["status"] == "completed", done
    # adaptive ratio follows the square first frame
    assert done["ratio"] == "1:1" and done["size"] == "640x640"


async def test_reference_limits_are_400s_naming_the_item(
    client: httpx.AsyncClient, auth: dict[str, str], media_server: MediaServer
) -> None:
    root = media_server.root
    mp4_file(root / "v8.mp4", 8.0, 640, 640)
    mp4_file(root / "v9.mp4", 9.0, 640, 640)
    mp4_file(root / "v1.mp4", 1.0, 640, 640)
    (root / "tiny.png").write_bytes(png_bytes(100, 100))
    (root / "img.png").write_bytes(png_bytes(640, 640))
    (root / "not-media.txt").write_text("hello")

    def video(name: str) -> dict[str, object]:
        return {"type": "video_url", "video_url": {"url": media_server.url(name)}}

    cases = [
        (
            [video("v8.mp4"), video("v9.mp4")],
            "video 2: 17.0 s is over the 15 s total for reference videos",
        ),
        ([video("v1.mp4")], "video 1: 1.0 s is under the 2 s minimum"),
        ([image_item(media_server.url("tiny.png"))], "image 1: 100x100 px"),
        (
            [
                image_item(media_server.url("img.png")),
                image_item(media_server.url("not-media.txt")),
            ],
            "image 2: not a readable image",
        ),
        (
            [image_item(media_server.url("img.png")), video("img.png")],
            "video 1: expected a video, but the URL holds an image",
        ),
    ]
    for content, message in cases:
        r = await client.post(
            "/v1/videos", headers=auth, json={"model": FAST, "prompt": "refs", "content": content}
        )
        assert r.status_code == 400, (message, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert message in error["message"], (message, error)


async def test_unreachable_reference_fails_the_task(
    client: httpx.AsyncClient, auth: dict[str, str], media_server: MediaServer
) -> None:
    (media_server.root / "ok.png").write_bytes(png_bytes(640, 640))
    dead = f"http://127.0.0.1:{free_port()}/gone.png"
    r = await client.post(
        "/v1/videos",
        headers=auth,
        json={
            "model": FAST,
            "prompt": "x",
            "content": [image_item(media_server.url("ok.png")), image_item(dead)],
        },
    )
    assert r.status_code == 200, r.text
    task = await wait_for_status(client, r.json()["id"], auth)
    assert task["status"] == "failed"
    assert task["error"] == {
        "code": "reference_unreachable",
        "message": "image 2: connection refused",
    }
    missing = await client.post(
        "/v1/videos",
        headers=auth,
        json={"model": FAST, "prompt": "x", "content": [image_item(media_server.url("nope.png"))]},
    )
    task = await wait_for_status(client, missing.json()["id"], auth)
    assert task["error"]["code"] == "reference_unreachable"  # type: ignore[index]
    assert "404" in task["error"]["message"]  # type: ignore[index]


async def test_private_urls_are_refused_unless_allowed(
    app: object,
    auth: dict[str, str],
    client: httpx.AsyncClient,
    media_server: MediaServer,
    state: object,
) -> None:
    from dataclasses import replace

    from videogate.api.state import ApiState
    from videogate.fetch import UrlGuard

    assert isinstance(state, ApiState)
    (media_server.root / "ok.png").write_bytes(png_bytes(640, 640))
    state.ctx.guard = UrlGuard(allow_private=False)
    _ = replace  # settings stay frozen; the guard is what decides
    for url in (
        media_server.url("ok.png"),
        "http://10.0.0.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
    ):
        r = await client.post(
            "/v1/videos",
            headers=auth,
            json={"model": FAST, "prompt": "x", "content": [image_item(url)]},
        )
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["message"].startswith("image 1: "), r.text
