"""The SDK end to end: against a live videogate (sandbox), the fake Ark and the fake relay.

Create / wait / download with local references, typed errors, retries, the poll hint,
downloads broken mid-body and resumed with ``Range``, and expired URLs refreshed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from client_support import (
    ARK_MODEL,
    SHORT,
    CuttingServer,
    Videogate,
    cutting_server,
    png,
    record_sleeps,
    relay,
    shared_ark,
    shared_relay,
    vg,
    wav,
)
from fakes import FakeArk, FakeRelay, Fault, sample_mp4
from media_factory import mp4_file
from videogate.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    DownloadError,
    Image,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskFailed,
    TaskTimeout,
    Video,
    VideogateClientError,
    mp4_duration,
)
from videogate.client._transport import RetryPolicy

__all__ = ["cutting_server", "relay", "shared_ark", "shared_relay", "vg"]  # fixtures

FAST_RETRY = RetryPolicy(max_retries=6, backoff_base=0.05, backoff_max=0.4)
# The SDK end to end against live servers: the slow tier (make test).
pytestmark = pytest.mark.slow


@pytest.fixture
def ark(shared_ark: FakeArk) -> FakeArk:
    shared_ark.reset()
    return shared_ark


def quick(client: AsyncClient) -> AsyncClient:
    client._transport.retry = FAST_RETRY
    return client


# ---- videogate ------------------------------------------------------------------------


def test_sync_client_generates_from_a_prompt_and_a_local_image(
    vg: Videogate, tmp_path: Path
) -> None:
    seen: list[str] = []
    with Client(vg.base_url, vg.key) as client:
        video = client.generate(
            "the red field in image 1 at dusk",
            tmp_path / "out" / "clip.mp4",
            references=[Image(png(tmp_path / "a.png"))],
            on_progress=lambda s: seen.append(s.status),
            **SHORT,
        )
        assert video.path == tmp_path / "out" / "clip.mp4"
        assert video.bytes == video.path.stat().st_size > 1000
        assert video.seconds == pytest.approx(4.0, abs=0.1)
        assert video.state.succeeded and seen[-1] == "succeeded"
        assert not list((tmp_path / "out").glob(".*part"))  # renamed into place
        # Re-attach by id: same task, downloadable again.
        again = client.get(video.state.id)
        assert again.status == "succeeded"
        again.download(tmp_path / "again.mp4")
        assert (tmp_path / "again.mp4").read_bytes() == video.path.read_bytes()
        page = client.list(limit=5)
        assert video.state.id in [t.id for t in page.tasks]
        assert {"sandbox", ARK_MODEL} <= {m["id"] for m in client.models()}


async def test_local_files_are_uploaded_to_videogate(vg: Videogate, tmp_path: Path) -> None:
    clip = mp4_file(tmp_path / "b.mp4", 2.5, 320, 320)
    async with AsyncClient(vg.base_url, vg.key) as client:
        prepared = await client.prepare(
            "image 1 moves like video 1, to audio 1",
            references=[Image(png(tmp_path / "a.png")), Video(clip), wav(tmp_path / "c.wav")],
            **SHORT,
        )
        urls = [item[item["type"]]["url"] for item in prepared.body["content"][1:]]
        assert all(u.startswith(f"{vg.base_url}/files/") for u in urls), urls
        assert [i.get("role") for i in prepared.body["content"]] == [
            None,
            "reference_image",
            "reference_video",
            "reference_audio",
        ]
        # The same file is uploaded once per client.
        again = await client.prepare("x", references=[Image(tmp_path / "a.png")], **SHORT)
        assert again.body["content"][1]["image_url"]["url"] == urls[0]
        task = await client.submit(prepared)
        state = await task.wait(timeout=60)
        assert state.succeeded


async def test_the_same_idempotency_key_returns_the_same_task(vg: Videogate) -> None:
    async with AsyncClient(vg.base_url, vg.key) as client:
        prepared = await client.prepare("a fox", **SHORT)
        first = await client.submit(prepared, idempotency_key="batch-line-7")
        second = await client.submit(prepared, idempotency_key="batch-line-7")
        third = await client.submit(prepared)
        assert first.id == second.id != third.id
        for task in (first, third):
            await task.cancel()


async def test_typed_errors_from_videogate(vg: Videogate) -> None:
    async with AsyncClient(vg.base_url, vg.key) as client:
        with pytest.raises(BadRequestError) as bad:
            await client.create("a fox", model="sandbox", duration=99)
        assert bad.value.status == 400 and bad.value.param
        with pytest.raises(NotFoundError) as missing:
            await client.get("video_nope")
        assert isinstance(missing.value, VideogateClientError)
    async with AsyncClient(vg.base_url, "vg-wrong") as client:
        with pytest.raises(AuthenticationError):
            await client.list()


async def test_cancel_and_timeout_keep_the_task_id(vg: Videogate) -> None:
    async with AsyncClient(vg.base_url, vg.key) as client:
        task = await client.create("a long one", **SHORT)
        with pytest.raises(TaskTimeout) as timeout:
            await task.wait(timeout=0.2)
        assert timeout.value.task_id == task.id and task.id in str(timeout.value)
        state = await task.cancel()
        assert state is not None and state.status == "cancelled"
        with pytest.raises(TaskFailed) as failed:
            await client.task(task.id).wait(timeout=10)
        assert (failed.value.task_id, failed.value.status, failed.value.code) == (
            task.id,
            "cancelled",
            "cancelled",
        )


async def test_an_expired_signed_url_is_refreshed(vg: Videogate, tmp_path: Path) -> None:
    responses: list[tuple[str, int]] = []

    async def record(response: httpx.Response) -> None:
        responses.append((response.request.url.path, response.status_code))

    async with httpx.AsyncClient(event_hooks={"response": [record]}) as http:
        client = AsyncClient(vg.base_url, vg.key, http_client=http)
        task = await client.create("a fox", **SHORT)
        state = await task.wait(timeout=60)
        assert state.video_url
        parsed = vg.signer.parse_own_url(state.video_url)
        assert parsed is not None
        expired, exp = vg.signer.sign(parsed[0], -120)
        assert exp < time.time()
        task._state = dataclasses.replace(state, video_url=expired)
        responses.clear()
        path = await task.download(tmp_path / "fresh.mp4")
    statuses = [status for _, status in responses]
    assert statuses[0] == 403  # the expired URL
    assert (f"/v1/videos/{task.id}", 200) in responses  # re-read for a fresh one
    assert statuses[-1] == 200
    assert mp4_duration(path) == pytest.approx(4.0, abs=0.1)


# ---- relay ----------------------------------------------------------------------------


async def test_relay_create_wait_download_with_data_urls(
    relay: FakeRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.poll_after_ms = 80
    async with AsyncClient(relay.base_url, relay.api_key, api="relay") as client:
        task = await client.create(
            "the cat in image 1",
            model="seedance-relay",
            references=[Image(png(tmp_path / "cat.png")), wav(tmp_path / "purr.wav")],
            duration=5,
            ratio="16:9",
        )
        created = relay.requests_to("create")[0]
        assert created.headers["idempotency-key"].startswith("vg-")
        body = created.json
        assert body["prompt"] == "the cat in image 1"
        assert body["content"][0] == {"type": "text", "text": "the cat in image 1"}
        assert body["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
        assert body["content"][2]["audio_url"]["url"].startswith("data:audio/wav;base64,")
        assert task.status == "queued"  # "submitted" normalized
        sleeps = record_sleeps(monkeypatch)
        state = await task.wait(timeout=10)
        # The 80 ms hint was followed: every wait between two polls is the hint (not the
        # 1 s default back-off), and each one is followed by one poll.
        assert sleeps and all(s == pytest.approx(0.08) for s in sleeps), sleeps
        assert len(relay.requests_to("get")) == len(sleeps) + 1
        path = await task.download(tmp_path / "r.mp4")
        assert path.read_bytes() == sample_mp4(True)
        assert state.duration == 5


async def test_relay_url_only_behind_the_content_endpoint(relay: FakeRelay, tmp_path: Path) -> None:
    relay.url_field = "none"
    async with AsyncClient(relay.base_url, relay.api_key, api="relay", poll_interval=0.05) as c:
        task = await c.create("a fox", model="m")
        await task.wait(timeout=10)
        await task.download(tmp_path / "c.mp4")
    content = relay.requests_to("content")
    assert content and content[0].bearer == relay.api_key
    assert (tmp_path / "c.mp4").read_bytes() == sample_mp4(True)


async def test_relay_failures_and_cancel(relay: FakeRelay) -> None:
    relay.auto_advance = False
    async with AsyncClient(relay.base_url, relay.api_key, api="relay", poll_interval=0.02) as c:
        task = await c.create("a fox", model="m")
        with pytest.raises(TaskTimeout) as timeout:
            await task.wait(timeout=0.1)
        assert timeout.value.status == "queued"
        relay.fail(task.id, "content_policy_violation", "the output was blocked")
        with pytest.raises(TaskFailed) as failed:
            await task.wait(timeout=5)
        assert failed.value.code == "content_policy_violation"
        assert "blocked" in str(failed.value) and task.id in str(failed.value)
        other = await c.create("another", model="m")
        state = await other.cancel()
        assert state is None  # the relay deleted it
        assert relay.requests_to("delete")[0].path.endswith(other.id)


async def test_gets_retry_5xx_429_and_refused_connections(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.auto_advance = False
    async with AsyncClient(relay.base_url, relay.api_key, api="relay") as client:
        quick(client)
        task = await client.create("a fox", model="m")
        relay.inject(Fault.server_error(), on="get", times=2)
        assert (await task.refresh()).status == "queued"
        assert [r.status for r in relay.requests_to("get")] == [500, 500, 200]
        relay.inject(Fault.rate_limited(retry_after="0.3"), on="get", times=1)
        sleeps = record_sleeps(monkeypatch)
        await task.refresh()
        assert len(sleeps) == 1 and sleeps[0] >= 0.3, sleeps  # Retry-After honoured
        monkeypatch.undo()
        relay.offline_for(0.15)
        assert (await task.refresh()).id == task.id
        relay.inject(Fault.server_error(), on="get", times=None)
        with pytest.raises(ServerError):
            await task.refresh()
        relay.clear_faults()
        relay.inject(Fault.disconnect(), on="get", times=1)
        relay.inject(Fault.malformed_json(), on="get", times=1)
        assert (await task.refresh()).id == task.id


async def test_a_create_is_not_retried_when_it_may_have_happened(ark: FakeArk) -> None:
    async with AsyncClient(ark.base_url, ark.api_key, api="ark") as client:
        quick(client)
        ark.inject(Fault.server_error(process=True), on="create")
        with pytest.raises(ServerError):
            await client.create("a fox", model=ARK_MODEL)
        assert len(ark.requests_to("create")) == 1  # Ark has no idempotency: no retry
        ark.inject(Fault.rate_limited(), on="create")
        task = await client.create("a fox", model=ARK_MODEL)  # 429: surely not done
        assert len(ark.requests_to("create")) == 3 and task.id in ark.tasks
        ark.inject(Fault.rate_limited(), on="create", times=None)
        with pytest.raises(RateLimitError):
            await client.create("a fox", model=ARK_MODEL)


# ---- Ark ------------------------------------------------------------------------------


async def test_ark_end_to_end(ark: FakeArk, tmp_path: Path) -> None:
    async with AsyncClient(ark.base_url, ark.api_key, api="ark", poll_interval=0.05) as client:
        task = await client.create(
            "image 1 dances to audio 1",
            model=ARK_MODEL,
            references=[Image(png(tmp_path / "a.png")), wav(tmp_path / "b.wav")],
            duration=5,
            generate_audio=False,
        )
        body = ark.requests_to("create")[0].json
        assert "prompt" not in body
        assert [i["type"] for i in body["content"]] == ["text", "image_url", "audio_url"]
        assert body["content"][1]["role"] == "reference_image"
        assert body["generate_audio"] is False
        state = await task.wait(timeout=10)
        assert (state.status, state.raw_status, state.duration) == ("succeeded", "succeeded", 5)
        assert state.tokens and state.tokens > 0
        path = await task.download(tmp_path / "a.mp4")
        assert path.read_bytes() == sample_mp4(False)
        page = await client.list(limit=10)
        assert [t.id for t in page.tasks] == [task.id]
        with pytest.raises(VideogateClientError, match="no model list"):
            await client.models()


async def test_ark_expired_and_failed(ark: FakeArk, tmp_path: Path) -> None:
    ark.expire_next_tasks(1)
    async with AsyncClient(ark.base_url, ark.api_key, api="ark", poll_interval=0.05) as client:
        expired = await client.create("a fox", model=ARK_MODEL)
        with pytest.raises(TaskFailed) as info:
            await expired.wait(timeout=10)
        assert info.value.status == "expired"
        # A result URL past its 24 h cannot be refreshed on Ark: a clear error.
        task = await client.create("a fox", model=ARK_MODEL)
        await task.wait(timeout=10)
        ark.advance(86400 + 60)
        with pytest.raises(DownloadError, match="24 h") as gone:
            await task.download(tmp_path / "late.mp4")
        assert gone.value.status == 403 and gone.value.task_id == task.id
        assert not (tmp_path / "late.mp4").exists()


# ---- broken downloads ------------------------------------------------------------------


async def test_a_broken_download_resumes_with_range(
    relay: FakeRelay, cutting_server: CuttingServer, tmp_path: Path
) -> None:
    relay.auto_advance = False
    async with AsyncClient(relay.base_url, relay.api_key, api="relay") as client:
        quick(client)
        task = await client.create("a fox", model="m")
        relay.complete(task.id, video_url=cutting_server.url)
        await task.refresh()
        path = await task.download(tmp_path / "cut.mp4")
    assert path.read_bytes() == cutting_server.payload
    assert cutting_server.ranges == [None, f"bytes={cutting_server.cut}-"]
    assert not list(tmp_path.glob(".*part"))  # noqa: ASYNC240


async def test_a_leftover_part_file_is_continued(
    relay: FakeRelay, cutting_server: CuttingServer, tmp_path: Path
) -> None:
    cutting_server.cuts_left = 0
    relay.auto_advance = False
    async with AsyncClient(relay.base_url, relay.api_key, api="relay") as client:
        task = await client.create("a fox", model="m")
        relay.complete(task.id, video_url=cutting_server.url)
        await task.refresh()
        part = tmp_path / f".clip.mp4.{task.id}.part"
        part.write_bytes(cutting_server.payload[:1000])
        await task.download(tmp_path / "clip.mp4")
    assert (tmp_path / "clip.mp4").read_bytes() == cutting_server.payload
    assert cutting_server.ranges == ["bytes=1000-"]


async def test_a_download_cut_by_the_fake_is_retried(ark: FakeArk, tmp_path: Path) -> None:
    async with AsyncClient(ark.base_url, ark.api_key, api="ark", poll_interval=0.05) as client:
        quick(client)
        task = await client.create("a fox", model=ARK_MODEL)
        await task.wait(timeout=10)
        ark.inject(Fault.disconnect(), on="result", times=1)
        ark.inject(Fault.server_error(), on="result", times=1)
        await task.download(tmp_path / "x.mp4")
    assert (tmp_path / "x.mp4").read_bytes() == sample_mp4(True)
    assert len(ark.requests_to("result")) == 3


def test_sync_client_from_inside_an_event_loop(relay: FakeRelay, tmp_path: Path) -> None:
    async def inside() -> None:
        with Client(relay.base_url, relay.api_key, api="relay", poll_interval=0.05) as client:
            task = client.create("a fox", model="m")
            assert task.wait(timeout=10).succeeded
            task.download(tmp_path / "s.mp4")

    asyncio.run(inside())
    assert (tmp_path / "s.mp4").read_bytes() == sample_mp4(True)
