"""The /v1/videos relay flow end to end, through the ASGI app with its in-process worker."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import wait_for_status
from media_factory import probe_mp4

FAST = "doubao-seedance-2-0-fast-260128"


# The slow tier (make test, not make test-fast): the relay surface end to end with renders.
pytestmark = pytest.mark.slow


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], **body: object
) -> dict[str, object]:
    payload: dict[str, object] = {
        "model": FAST,
        "prompt": "a red fox in snow",
        "duration": 4,
        "resolution": "480p",
    }
    payload.update(body)
    r = await client.post("/v1/videos", json=payload, headers=auth)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


@pytest.mark.slow
async def test_relay_flow_renders_the_documented_mp4(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {
        "model": FAST,
        "prompt": "a red fox running through snow",
        "ratio": "16:9",
        "duration": 8,
        "watermark": False,
        "generate_audio": True,
    }
    r = await client.post("/v1/videos", json=body, headers=auth)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "submitted" and created["object"] == "video"
    assert created["model"] == FAST and isinstance(created["created_at"], int)
    assert created["id"].startswith("video_")
    assert int(r.headers["openai-poll-after-ms"]) > 0
    done = await wait_for_status(client, created["id"], auth)
    assert done["status"] == "completed", done
    assert done["video_url"] == done["url"] and done["progress"] == 100
    assert done["size"] == "1280x720" and done["seconds"] == "8"
    video = await client.get(str(done["video_url"]))  # no auth header
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    facts = probe_mp4(video.content)
    assert facts == {
        "size": (1280, 720),
        "fps": 24.0,
        "codec": "h264",
        "duration": 8.0,
        "audio": ["aac"],
    }


@pytest.mark.parametrize("model", ["doubao-seedance-2-0-260128", "sandbox"])
async def test_other_models_and_no_audio(
    client: httpx.AsyncClient, auth: dict[str, str], model: str
) -> None:
    created = await create(
        client, auth, model=model, ratio="9:16", generate_audio=False, return_last_frame=True
    )
    done = await wait_for_status(client, str(created["id"]), auth)
    assert done["status"] == "completed", done
    assert done["size"] == "496x864"
    facts = probe_mp4((await client.get(str(done["video_url"]))).content)
    assert facts["size"] == (496, 864) and facts["audio"] == [] and facts["duration"] == 4.0
    frame = await client.get(str(done["last_frame_url"]))
    assert frame.status_code == 200 and frame.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_status_reads_queued_before_a_worker_runs(settings: object, tmp_path: Path) -> None:
    from videogate.api.app import create_app
    from videogate.service.keys import create_key
    from videogate.settings import Settings
    from videogate.worker import Worker

    assert isinstance(settings, Settings)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        ctx = app.state.api.ctx
        key = (await create_key(ctx.store)).key
        auth = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            created = await create(c, auth)
            assert created["status"] == "submitted"
            polled = (await c.get(f"/v1/videos/{created['id']}", headers=auth)).json()
            assert polled["status"] == "queued" and polled["video_url"] is None
            worker = Worker(ctx)
            try:
                await worker.run_until_idle()
            finally:
                await worker.close()
            polled = (await c.get(f"/v1/videos/{created['id']}", headers=auth)).json()
            assert polled["status"] == "completed"


async def test_signed_urls_ranges_tampering_and_expiry(
    client: httpx.AsyncClient, auth: dict[str, str], state: object
) -> None:
    created = await create(client, auth)
    done = await wait_for_status(client, str(created["id"]), auth)
    url = str(done["video_url"])
    full = await client.get(url)
    size = len(full.content)
    part = await client.get(url, headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == full.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{size}"
    tail = await client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == full.content[-50:]
    bad_range = await client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert bad_range.status_code == 416
    tampered = url.replace("sig=", "sig=0")
    r = await client.get(tampered)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    other_file = url.replace("video.mp4", "last_frame.png")
    assert (await client.get(other_file)).status_code == 403
    from videogate.api.state import ApiState

    assert isinstance(state, ApiState)
    key = url.split("/files/", 1)[1].split("?", 1)[0]
    expired, _ = state.ctx.signer.sign(key, 60, now=0)
    r = await client.get(expired)
    assert r.status_code == 403 and "expired" in r.json()["error"]["message"]
    # the authenticated content endpoint serves the same bytes, with ranges
    content = await client.get(f"/v1/videos/{created['id']}/content", headers=auth)
    assert content.content == full.content
    thumb = await client.get(f"/v1/videos/{created['id']}/content?variant=thumbnail", headers=auth)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    jpeg = {**auth, "Accept": "image/jpeg"}
    thumb = await client.get(f"/v1/videos/{created['id']}/content?variant=thumbnail", headers=jpeg)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    ranged = await client.get(
        f"/v1/videos/{created['id']}/content", headers={**auth, "Range": "bytes=0-3"}
    )
    assert ranged.status_code == 206 and ranged.content == full.content[:4]
    no_frame = await client.get(
        f"/v1/videos/{created['id']}/content?variant=last_frame", headers=auth
    )
    assert no_frame.status_code == 404


async def test_list_pagination(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ids = [str((await create(client, auth, prompt=f"clip {i}"))["id"]) for i in range(5)]
    page = (await client.get("/v1/videos?limit=2", headers=auth)).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [t["id"] for t in page["data"]] == ids[::-1][:2]
    assert page["first_id"] == ids[-1] and page["last_id"] == ids[-2]
    rest = (await client.get(f"/v1/videos?limit=10&after={page['last_id']}", headers=auth)).json()
    assert [t["id"] for t in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    asc = (await client.get("/v1/videos?order=asc&limit=3", headers=auth)).json()
    assert [t["id"] for t in asc["data"]] == ids[:3]
    for bad in ("limit=-1", "limit=101", "limit=x", "order=up"):
        r = await client.get(f"/v1/videos?{bad}", headers=auth)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_request"
    empty = (await client.get("/v1/videos?limit=0", headers=auth)).json()
    assert (empty["data"], empty["first_id"], empty["has_more"]) == ([], None, True)
    full = (await client.get("/v1/videos?limit=100", headers=auth)).json()
    assert len(full["data"]) == 5 and full["has_more"] is False


async def test_list_refuses_unknown_or_deleted_cursors_and_never_repeats(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ids = [str((await create(client, auth, prompt=f"clip {i}"))["id"]) for i in range(6)]
    newest_first = ids[::-1]
    r = await client.get("/v1/videos?after=video_nosuchtask", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    assert "video_nosuchtask" in r.json()["error"]["message"]
    page = (await client.get("/v1/videos?limit=2", headers=auth)).json()
    seen = [t["id"] for t in page["data"]]
    # Tasks on both sides of the cursor are deleted while paging: no task shows up twice.
    for victim in (newest_first[0], newest_first[3]):
        assert (await client.delete(f"/v1/videos/{victim}", headers=auth)).status_code == 200
    while page["has_more"]:
        page = (
            await client.get(f"/v1/videos?limit=2&after={page['last_id']}", headers=auth)
        ).json()
        seen += [t["id"] for t in page["data"]]
    assert len(seen) == len(set(seen))
    assert seen == [newest_first[0], newest_first[1], newest_first[2], *newest_first[4:]]
    r = await client.get(f"/v1/videos?after={newest_first[0]}", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


async def test_delete_is_openais_and_cancel_is_separate(
    settings: object,
) -> None:
    from videogate.api.app import create_app
    from videogate.service.keys import create_key
    from videogate.settings import Settings
    from videogate.worker import Worker

    assert isinstance(settings, Settings)
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        ctx = app.state.api.ctx
        auth = {"Authorization": f"Bearer {(await create_key(ctx.store)).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            pending = await create(c, auth)
            to_cancel = await create(c, auth)
            finished = await create(c, auth)
            r = await c.delete(f"/v1/videos/{pending['id']}", headers=auth)
            assert r.json() == {"id": pending["id"], "object": "video.deleted", "deleted": True}
            r = await c.post(f"/v1/videos/{to_cancel['id']}/cancel", headers=auth)
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["error"]["code"]) == ("failed", "cancelled")
            worker = Worker(ctx)
            try:
                await worker.run_until_idle()
            finally:
                await worker.close()
            # Deleted while unfinished: gone at once, never rendered, its hold refunded.
            for path in (f"/v1/videos/{pending['id']}", f"/v1/videos/{pending['id']}/content"):
                assert (await c.get(path, headers=auth)).status_code == 404, path
            row = await ctx.store.tasks.get(pending["id"])
            assert row is not None and row.status == "cancelled"
            assert row.billing_state == "refunded"
            cancelled = (await c.get(f"/v1/videos/{to_cancel['id']}", headers=auth)).json()
            assert cancelled["status"] == "failed"
            assert cancelled["error"]["code"] == "cancelled"
            done = (await c.get(f"/v1/videos/{finished['id']}", headers=auth)).json()
            assert done["status"] == "completed"
            url = str(done["video_url"])
            assert (await c.get(url)).status_code == 200
            r = await c.delete(f"/v1/videos/{finished['id']}", headers=auth)
            assert r.status_code == 200 and r.json()["deleted"] is True
            for path in (f"/v1/videos/{finished['id']}", f"/v1/videos/{finished['id']}/content"):
                assert (await c.get(path, headers=auth)).status_code == 404, path
            assert (await c.get(url)).status_code == 410  # gone, not unknown
            r = await c.delete(f"/v1/videos/{finished['id']}", headers=auth)
            assert r.status_code == 404, r.text
            listed = (await c.get("/v1/videos", headers=auth)).json()["data"]
            assert [t["id"] for t in listed] == [to_cancel["id"]]
            # The Ark surface does not see them either.
            r = await c.get(f"/api/v3/contents/generations/tasks/{finished['id']}", headers=auth)
            assert r.status_code == 404


async def test_keys_see_only_their_own_tasks_and_files(
    client: httpx.AsyncClient, auth: dict[str, str], state: object
) -> None:
    from media_factory import png_bytes
    from videogate.api.state import ApiState
    from videogate.service.keys import create_key

    assert isinstance(state, ApiState)
    other = {"Authorization": f"Bearer {(await create_key(state.ctx.store)).key}"}
    created = await create(client, auth)
    tid = created["id"]
    for method, path in [
        ("GET", f"/v1/videos/{tid}"),
        ("DELETE", f"/v1/videos/{tid}"),
        ("GET", f"/v1/videos/{tid}/content"),
    ]:
        r = await client.request(method, path, headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
    assert (await client.get("/v1/videos", headers=other)).json()["data"] == []
    up = await client.post(
        "/v1/files", headers=auth, files={"file": ("a.png", png_bytes(), "image/png")}
    )
    assert up.status_code == 200, up.text
    file_obj = up.json()
    assert (await client.get(f"/v1/files/{file_obj['id']}", headers=other)).status_code == 404
    # another key cannot use it as a reference either
    r = await client.post(
        "/v1/videos",
        headers=other,
        json={
            "model": FAST,
            "prompt": "x",
            "content": [{"type": "image_url", "image_url": {"url": file_obj["url"]}}],
        },
    )
    assert r.status_code == 400 and "another key" in r.json()["error"]["message"]


async def test_auth_errors(client: httpx.AsyncClient, state: object) -> None:
    from videogate.api.state import ApiState
    from videogate.service.keys import create_key

    assert isinstance(state, ApiState)
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ):
        r = await client.get("/v1/videos", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    new = await create_key(state.ctx.store)
    headers = {"Authorization": f"Bearer {new.key}"}
    assert (await client.get("/v1/videos", headers=headers)).status_code == 200
    import time

    await state.ctx.store.keys.revoke(new.id, time.time())
    assert (await client.get("/v1/videos", headers=headers)).status_code == 401


async def test_models_and_health(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    models = (await client.get("/v1/models", headers=auth)).json()
    names = {m["id"] for m in models["data"]}
    assert names == {
        "doubao-seedance-2-0-260128",
        FAST,
        "dreamina-seedance-2-0-mini-260615",
        "doubao-seedance-2-5-260628",
        "sandbox",
    }
    fast = next(m for m in models["data"] if m["id"] == FAST)
    assert fast["capabilities"]["resolutions"] == ["480p", "720p"]
    assert fast["aliases"] == ["sora-2", "sora-2-2025-10-06", "sora-2-2025-12-08"]
    v25 = next(m for m in models["data"] if m["id"] == "doubao-seedance-2-5-260628")
    assert v25["capabilities"]["durations"] == {"min": 4, "max": 30, "auto": -1}
    assert v25["capabilities"]["references"]["images"] == 30
    assert "extend" in v25["capabilities"]["task_types"]
    assert v25["capabilities"]["output_formats"] == ["mp4", "mov"]
    assert fast["capabilities"]["output_formats"] == ["mp4"]
    assert (await client.get("/healthz")).json() == {"status": "ok", "database": "ok"}
    r = await client.post("/v1/videos", headers=auth, json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
