"""The sandbox's frame rate setting: fewer frames, the same clip length."""

from __future__ import annotations

import io

import av
import httpx

from conftest import TEST_BASE, wait_for_status
from videogate.api.app import create_app
from videogate.service.keys import create_key
from videogate.settings import Settings


async def test_sandbox_fps_sets_the_frame_rate_not_the_length(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"sandbox_fps": 8}))
    async with app.router.lifespan_context(app):
        auth = {"Authorization": f"Bearer {(await create_key(app.state.api.ctx.store)).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as c:
            body = {"model": "sandbox", "prompt": "slow film", "duration": 4, "resolution": "480p"}
            created = await c.post("/v1/videos", json=body, headers=auth)
            assert created.status_code == 200, created.text
            done = await wait_for_status(c, created.json()["id"], auth, timeout=120)
            assert done["status"] == "completed", done
            video = await c.get(str(done["video_url"]))
            assert video.status_code == 200
    with av.open(io.BytesIO(video.content), "r") as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate or 0) == 8.0
        assert sum(1 for _ in container.decode(video=0)) == 32
        assert round((container.duration or 0) / 1_000_000, 2) == 4.0
