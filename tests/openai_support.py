"""Shared by the tests that drive the real ``openai`` SDK against a live server
(tests/compat, tests/api): the server, a key and a client as fixtures, a test picture, and
checks of a raw Video object against the installed SDK's type."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from openai.types import Video
from openai.types.video_size import VideoSize
from PIL import Image, ImageDraw

from conftest import LiveServer, make_live_key, run_live_server

POLL_MS = 200  # the server's openai-poll-after-ms (its default is 2000; the SDK's 1000)
OPENAI_SIZES = set(VideoSize.__args__)  # type: ignore[attr-defined]

# ---- fixtures (a module imports those it uses and names them in __all__) -----------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """Like conftest's ``live_server``, with a short suggested poll interval."""
    with run_live_server(tmp_path / "live", poll_after_ms=POLL_MS) as server:
        yield server


@pytest.fixture
def key(live: LiveServer) -> str:
    return make_live_key(live)


@pytest.fixture
def client(live: LiveServer, key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{live.base_url}/v1", api_key=key, max_retries=0) as c:
        yield c


# ---- helpers -------------------------------------------------------------------------------


def picture(width: int = 640, height: int = 360) -> bytes:
    """A PNG with structure (blocks and a disc), so a wrong crop or scale shows."""
    image = Image.new("RGB", (width, height), (30, 60, 160))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 2, height // 2), fill=(220, 200, 40))
    draw.rectangle((width // 2, height // 2, width, height), fill=(200, 40, 40))
    draw.ellipse((width // 3, height // 4, width * 2 // 3, height * 3 // 4), fill=(240, 240, 240))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def assert_openai_video(obj: dict[str, Any], *, openai_shape: bool = True) -> Video:
    """``obj`` is a valid ``openai.types.Video``: every declared field is present, and the
    values validate (status, object and, for OpenAI-shaped requests, size literals)."""
    missing = [name for name in Video.model_fields if name not in obj]
    assert not missing, f"fields missing from the Video object: {missing}"
    checked = dict(obj)
    if not openai_shape:  # a relay-shaped task shows its real output size
        assert isinstance(checked["size"], str)
        checked["size"] = "1280x720"
    video = Video.model_validate(checked)  # raises on a status/size/object outside the type
    assert video.status in ("queued", "in_progress", "completed", "failed")
    if openai_shape:
        assert obj["size"] in OPENAI_SIZES
    return video


def raw_get(c: OpenAI, video_id: str) -> dict[str, Any]:
    body: dict[str, Any] = c.videos.with_raw_response.retrieve(video_id).http_response.json()
    return body
