"""The service on S3: uploads, references and results live in the bucket; downloads are
redirects to presigned URLs, presigned URLs, or streamed, as the operator chose."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE, wait_for_status
from fakes.s3 import S3Server
from media_factory import png_bytes
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import Settings

FAST = "doubao-seedance-2-0-fast-260128"


# The slow tier (make test, not make test-fast): downloads through a live S3 server.
pytestmark = pytest.mark.slow


def s3_app_settings(tmp_path: Path, s3: S3Server, mode: str) -> Settings:
    env = s3.env()
    return Settings(
        data_dir=tmp_path / "var",
        public_url=TEST_BASE,
        allow_private_urls=True,
        worker_poll_interval=0.05,
        render_processes=1,
        key_cache_seconds=0,
        blob_url=f"s3://{s3.new_bucket()}/deploy",
        s3_endpoint_url=env["AWS_ENDPOINT_URL"],
        s3_region=env["AWS_REGION"],
        s3_access_key_id=env["AWS_ACCESS_KEY_ID"],
        s3_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        download_mode=mode,
    )


@pytest.fixture(params=["redirect", "presigned"])
async def s3_app(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> AsyncIterator[FastAPI]:
    application = create_app(s3_app_settings(tmp_path, s3_server, request.param))
    async with application.router.lifespan_context(application):
        yield application


async def test_task_with_upload_and_reference_is_served_from_the_bucket(
    s3_app: FastAPI, s3_server: S3Server, tmp_path: Path
) -> None:
    state: ApiState = s3_app.state.api
    settings = state.ctx.settings
    auth = {"Authorization": f"Bearer {(await create_key(state.ctx.store, name='t')).key}"}
    transport = httpx.ASGITransport(app=s3_app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
        up = await client.post(
            "/v1/files",
            headers=auth,
            files={"file": ("f.png", png_bytes(400, 400, (0, 200, 0)), "image/png")},
        )
        assert up.status_code == 200, up.text
        data_url = "data:image/png;base64," + base64.b64encode(png_bytes(640, 640)).decode()
        body = {
            "model": FAST,
            "prompt": "two frames from the bucket",
            "resolution": "480p",
            "duration": 4,
            "return_last_frame": True,
            "content": [
                {"type": "image_url", "image_url": {"url": data_url}, "role": "first_frame"},
                {"type": "image_url", "image_url": {"url": up.json()["url"]}, "role": "last_frame"},
            ],
        }
        created = await client.post("/v1/videos", json=body, headers=auth)
        assert created.status_code == 200, created.text
        done = await wait_for_status(client, created.json()["id"], auth, timeout=120)
        assert done["status"] == "completed", done
        task_id = str(done["id"])

        # Nothing went to the local disk: every blob is in the bucket.
        assert not settings.blob_dir.exists() or not any(settings.blob_dir.rglob("*.*"))
        task = await state.ctx.store.tasks.get(task_id)
        assert task is not None and task.video_key
        size = await state.ctx.blobs.size(task.video_key)
        assert size > 1000
        assert await state.ctx.blobs.exists(task.last_frame_key or "")

        # The authenticated content endpoint streams from the bucket, Range included.
        whole = await client.get(f"/v1/videos/{task_id}/content", headers=auth)
        assert whole.status_code == 200 and len(whole.content) == size
        part = await client.get(
            f"/v1/videos/{task_id}/content", headers={**auth, "Range": "bytes=100-199"}
        )
        assert part.status_code == 206 and part.content == whole.content[100:200]

        video_url = str(done["video_url"])
        expires_at = int(str(done["expires_at"]))
        assert abs(expires_at - (time.time() + settings.url_ttl_seconds)) < 120
        async with httpx.AsyncClient() as direct:
            if settings.download_mode == "presigned":
                # Straight to the store: no byte passes through videogate.
                assert video_url.startswith(s3_server.endpoint)
                # Signed for the TTL from the end of its signing window (signing.py).
                signed_for = int(video_url.split("X-Amz-Expires=", 1)[1].split("&", 1)[0])
                assert settings.url_ttl_seconds <= signed_for <= settings.url_ttl_seconds + 60
                got = await direct.get(video_url, headers={"Range": "bytes=100-199"})
            else:
                assert video_url.startswith(f"{TEST_BASE}/files/")
                hop = await client.get(video_url.removeprefix(TEST_BASE))
                assert hop.status_code == 302
                location = hop.headers["location"]
                assert location.startswith(s3_server.endpoint) and "X-Amz-Signature" in location
                got = await direct.get(location, headers={"Range": "bytes=100-199"})
            assert got.status_code == 206 and got.content == whole.content[100:200]
            assert got.headers["content-type"] == "video/mp4"

        # Our own URLs keep their expiry and signature rules, redirect or not.
        stale, _ = state.ctx.signer.sign(task.video_key, 60, now=time.time() - 120)
        assert (await client.get(stale.removeprefix(TEST_BASE))).status_code == 403
        forged = video_url.replace("sig=", "sig=0") if "sig=" in video_url else None
        if forged:
            assert (await client.get(forged.removeprefix(TEST_BASE))).status_code == 403


async def test_presigned_urls_name_the_public_endpoint(tmp_path: Path, s3_server: S3Server) -> None:
    # videogate reaches the store at one address (127.0.0.1 here, http://minio:9000 in
    # compose), clients at another (localhost here, the host's port outside compose).
    public = s3_server.endpoint.replace("127.0.0.1", "localhost")
    assert public != s3_server.endpoint
    settings = s3_app_settings(tmp_path, s3_server, "presigned").model_copy(
        update={"s3_public_endpoint_url": public}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        blobs = app.state.api.ctx.blobs
        await blobs.put_bytes("results/k/t/video.mp4", b"0123456789" * 100)
        url = blobs.presign_get("results/k/t/video.mp4", 300)
        assert url is not None and url.startswith(public + "/"), url
        async with httpx.AsyncClient() as direct:
            got = await direct.get(url, headers={"Range": "bytes=10-19"})
        # Clients fetch it there, Range and all.
        assert got.status_code == 206 and got.content == b"0123456789", got.text
        # Handed back (as a reference), it is known for ours, at either address; another
        # bucket's or an unsigned one is not.
        key, expires = blobs.presigned_key(url) or ("", 0)
        assert key == "results/k/t/video.mp4" and abs(expires - (time.time() + 300)) < 120
        inside = url.replace(public, s3_server.endpoint)
        assert (blobs.presigned_key(inside) or ("",))[0] == key
        bucket = settings.effective_blob_url.removeprefix("s3://").split("/", 1)[0]
        assert blobs.presigned_key(url.replace(bucket, "elsewhere")) is None
        assert blobs.presigned_key(url.partition("?")[0]) is None


@pytest.mark.parametrize("mode", ["redirect", "presigned"])
async def test_our_result_urls_as_references_are_read_from_the_bucket(
    tmp_path: Path, s3_server: S3Server, mode: str
) -> None:
    # The store is on loopback, where the address guard refuses to fetch from: a result
    # URL of ours is read from the bucket, only by its owner, and only while it is valid.
    settings = s3_app_settings(tmp_path, s3_server, mode).model_copy(
        update={"allow_private_urls": False}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ctx = app.state.api.ctx
        owner = {"Authorization": f"Bearer {(await create_key(ctx.store, name='o')).key}"}
        other = {"Authorization": f"Bearer {(await create_key(ctx.store, name='x')).key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            body: dict[str, object] = {
                "model": FAST,
                "prompt": "a first clip",
                "resolution": "480p",
                "duration": 4,
                "return_last_frame": True,
            }
            created = await client.post("/v1/videos", json=body, headers=owner)
            assert created.status_code == 200, created.text
            done = await wait_for_status(client, created.json()["id"], owner, timeout=120)
            assert done["status"] == "completed", done
            frame_url = str(done["last_frame_url"])
            if mode == "redirect":
                # The redirect's target, which a client may well keep instead.
                hop = await client.get(frame_url.removeprefix(TEST_BASE))
                assert hop.status_code == 302, hop.text
                frame_url = hop.headers["location"]
            assert frame_url.startswith(s3_server.endpoint), frame_url
            first = await ctx.store.tasks.get(str(done["id"]))
            assert first is not None and first.last_frame_key

            def again(url: str) -> dict[str, object]:
                frame = {"type": "image_url", "image_url": {"url": url}, "role": "first_frame"}
                return {**body, "prompt": "the next clip", "content": [frame]}

            # Another key cannot use it, an expired one is refused: both before any fetch.
            theirs = await client.post("/v1/videos", json=again(frame_url), headers=other)
            assert theirs.status_code == 400, theirs.text
            assert "belongs to another key" in theirs.text
            date = frame_url.split("X-Amz-Date=", 1)[1].split("&", 1)[0]
            stale = frame_url.replace(date, "20200101T000000Z")
            expired = await client.post("/v1/videos", json=again(stale), headers=owner)
            assert expired.status_code == 400 and "expired" in expired.text, expired.text

            made = await client.post("/v1/videos", json=again(frame_url), headers=owner)
            assert made.status_code == 200, made.text
            follow = await wait_for_status(client, made.json()["id"], owner, timeout=120)
            assert follow["status"] == "completed", follow
            row = await ctx.store.tasks.get(str(follow["id"]))
            assert row is not None
            (ref,) = row.request["references"]
            assert ref["blob_key"] == first.last_frame_key  # the stored blob itself, no copy
