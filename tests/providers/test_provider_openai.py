"""The OpenAI-compatible relay provider, called directly against a real FakeRelay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import pytest
from PIL import Image

from fakes import FakeRelay, Fault, sample_mp4
from videogate.errors import Disposition, UpstreamError
from videogate.media.probe import probe
from videogate.providers import load_provider
from videogate.providers.base import Provider, ProviderDeps, Route, TaskContext
from videogate.request import GenerationRequest, Reference
from videogate.settings import Settings
from videogate.worker.retry import asks_again

MODEL = "doubao-seedance-2-0-fast-260128"
UPSTREAM_MODEL = "seedance-2-fast-on-relay"
PROMPT = "a red fox runs through snow"


@pytest.fixture(scope="module")
def shared_relay() -> Iterator[FakeRelay]:
    with FakeRelay() as fake:
        yield fake


@pytest.fixture
def relay(shared_relay: FakeRelay) -> Iterator[FakeRelay]:
    shared_relay.reset()
    shared_relay.auto_advance = False
    yield shared_relay
    assert shared_relay.internal_errors == []


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[ProviderDeps]:
    async def no_cpu(*args: Any) -> None:
        raise AssertionError("the openai provider renders nothing")

    async with httpx.AsyncClient(trust_env=False) as http:
        yield ProviderDeps(settings=Settings(data_dir=tmp_path), http=http, run_cpu=no_cpu)


def make_route(relay: FakeRelay, request_format: str = "json", **kw: Any) -> Route:
    fields: dict[str, Any] = {
        "name": "relay-fast",
        "model": MODEL,
        "provider": "openai",
        "upstream_model": UPSTREAM_MODEL,
        "base_url": relay.base_url,
        "api_key": relay.api_key,
        "api_key_env": "RELAY_API_KEY",
        "request_format": request_format,
        "timeout_seconds": 5.0,
        **kw,
    }
    return Route(**fields)


def provider(route: Route, deps: ProviderDeps) -> Provider:
    return load_provider("openai", route, deps)


def png(path: Path, width: int = 640, height: int = 360) -> Path:
    Image.new("RGB", (width, height), (200, 40, 40)).save(path)
    return path


def image_ref(index: int, role: str, width: int = 640, height: int = 360) -> Reference:
    return Reference(
        kind="image",
        role=role,
        url=f"https://client.example/img{index}.png",
        index=index,
        blob_key=f"refs/t/image{index}.png",
        mime_type="image/png",
        width=width,
        height=height,
    )


def make_ctx(
    tmp_path: Path,
    route: Route,
    refs: tuple[Reference, ...] = (),
    paths: dict[str, Path] | None = None,
    **fields: Any,
) -> TaskContext:
    fields.setdefault("prompt", PROMPT)
    req = GenerationRequest(model=MODEL, references=refs, **fields)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return TaskContext(
        task_id="vid_test",
        request=req,
        route=route,
        reference_paths=paths or {},
        reference_urls={r.label: f"https://signed.example/{r.kind}{r.index}" for r in refs},
        work_dir=work,
    )


async def failure(awaitable: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await awaitable
    return info.value


# ---- submit: JSON ------------------------------------------------------------------------


async def test_json_body_without_references(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay)
    ctx = make_ctx(tmp_path, route, duration=8, resolution="480p")
    upstream_id = await provider(route, deps).submit(ctx)
    assert upstream_id in relay.tasks
    rec = relay.requests_to("create")[0]
    assert rec.bearer == relay.api_key
    assert rec.json == {
        "model": UPSTREAM_MODEL,
        "prompt": PROMPT,
        "ratio": "16:9",
        "resolution": "480p",
        "duration": 8,
        "watermark": False,
        "generate_audio": True,
        "return_last_frame": False,
    }


async def test_json_body_carries_every_reference_in_order(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay)
    refs = (
        image_ref(1, "reference_image"),
        Reference(kind="video", role="reference_video", url="https://c/v.mp4", index=1),
        image_ref(2, "reference_image"),
        Reference(kind="audio", role="reference_audio", url="https://c/a.mp3", index=1),
    )
    ctx = make_ctx(tmp_path, route, refs, seed=7, duration=-1, return_last_frame=True)
    await provider(route, deps).submit(ctx)
    body = relay.requests_to("create")[0].json
    assert body["seed"] == 7 and body["duration"] == -1 and body["return_last_frame"] is True
    assert body["content"] == [
        {"type": "text", "text": PROMPT},
        {
            "type": "image_url",
            "image_url": {"url": "https://signed.example/image1"},
            "role": "reference_image",
        },
        {
            "type": "video_url",
            "video_url": {"url": "https://signed.example/video1"},
            "role": "reference_video",
        },
        {
            "type": "image_url",
            "image_url": {"url": "https://signed.example/image2"},
            "role": "reference_image",
        },
        {
            "type": "audio_url",
            "audio_url": {"url": "https://signed.example/audio1"},
            "role": "reference_audio",
        },
    ]
    assert "callback_url" not in body


# ---- submit: multipart -------------------------------------------------------------------


async def test_multipart_form_uploads_the_first_frame(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay, "multipart")
    path = png(tmp_path / "image1.png")
    ctx = make_ctx(tmp_path, route, (image_ref(1, "first_frame"),), {"image 1": path}, duration=8)
    upstream_id = await provider(route, deps).submit(ctx)
    rec = relay.requests_to("create")[0]
    assert relay.tasks[upstream_id].kind == "multipart"
    assert rec.bearer == relay.api_key
    assert rec.form == {
        "model": UPSTREAM_MODEL,
        "prompt": PROMPT,
        "size": "1280x720",
        "seconds": "8",
    }
    [upload] = rec.files
    assert upload.field == "input_reference"
    assert (upload.filename, upload.content_type) == ("image1.png", "image/png")
    assert upload.data == path.read_bytes()


async def test_multipart_adaptive_size_and_model_chosen_duration(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay, "multipart")
    path = png(tmp_path / "tall.png", 360, 640)
    ref = image_ref(1, "reference_image", 360, 640)
    ctx = make_ctx(tmp_path, route, (ref,), {"image 1": path}, ratio="adaptive", duration=-1)
    await provider(route, deps).submit(ctx)
    rec = relay.requests_to("create")[0]
    # 9:16 at 720p; no "seconds": the upstream's own default applies.
    assert rec.form == {"model": UPSTREAM_MODEL, "prompt": PROMPT, "size": "720x1280"}
    assert rec.files[0].data == path.read_bytes()


@pytest.mark.parametrize(
    ("refs", "named"),
    [
        ((image_ref(1, "first_frame"), image_ref(2, "last_frame")), "image 2"),
        (
            (
                image_ref(1, "reference_image"),
                Reference(kind="video", role="reference_video", url="https://c/v", index=1),
            ),
            "video 1",
        ),
    ],
)
async def test_multipart_refuses_what_the_form_cannot_carry(
    relay: FakeRelay,
    deps: ProviderDeps,
    tmp_path: Path,
    refs: tuple[Reference, ...],
    named: str,
) -> None:
    route = make_route(relay, "multipart")
    paths = {"image 1": png(tmp_path / "a.png"), "image 2": png(tmp_path / "b.png")}
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route, refs, paths)))
    assert err.code == "unsupported_request" and not asks_again(err)
    assert named in err.message and 'request_format = "json"' in err.message
    assert relay.requests_to("create") == []


async def test_missing_key_is_not_sent(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay, api_key="")
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (
        err.code == "upstream_key_missing"
        and not asks_again(err)
        and (err.disposition is Disposition.FAIL_OVER)
    )
    assert "RELAY_API_KEY" in err.message
    assert relay.requests == []


# ---- submit failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "status", "maybe_submitted"),
    [
        (Fault.rate_limited(), "rate_limit_exceeded", True, 429, False),
        (Fault.server_error(), "server_error", True, 500, False),
        (Fault.error(503), "service_unavailable", True, 503, False),
        (Fault.wrong_content_type(status=502), "upstream_http_502", True, 502, False),
        (Fault.malformed_json(), "upstream_malformed", True, 200, True),
        (Fault.disconnect(), "upstream_unreachable", True, None, True),
        (Fault.error(400, "invalid_value", "Invalid 'ratio'."), "invalid_value", False, 400, False),
    ],
)
async def test_submit_errors_are_mapped(
    relay: FakeRelay,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault,
    code: str,
    retryable: bool,
    status: int | None,
    maybe_submitted: bool,
) -> None:
    relay.inject(fault, "create")
    route = make_route(relay)
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), err.status) == (code, retryable, status)
    assert (
        (err.disposition is Disposition.MAYBE_SUBMITTED),
        (err.disposition is Disposition.FAIL_OVER),
    ) == (maybe_submitted, False)
    if code == "invalid_value":
        assert err.message == "Invalid 'ratio'."


async def test_offline_relay_is_unreachable(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay)
    with relay.offline():
        err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), err.status) == ("upstream_unreachable", True, None)
    assert err.disposition is not Disposition.MAYBE_SUBMITTED  # nothing was sent


async def test_hanging_relay_times_out(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.inject(Fault.hang(10), "create")
    route = make_route(relay, timeout_seconds=0.3)
    # No wall-clock bound: had the 0.3 s limit not cut the 10 s hang, the relay would answer
    # normally afterwards and the submit would succeed.
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), (err.disposition is Disposition.MAYBE_SUBMITTED)) == (
        "upstream_timeout",
        True,
        True,
    )


async def test_rejected_key_names_the_route(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay, api_key="wrong-key")
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), err.status) == ("invalid_api_key", False, 401)
    assert err.disposition is Disposition.FAIL_OVER  # another route may serve the task
    assert "relay-fast" in err.message and "Incorrect API key" in err.message


async def test_create_without_id_is_malformed(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = make_route(relay)
    original = relay._task_object

    def no_id(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**original(*args, **kwargs), "id": ""}

    monkeypatch.setattr(relay, "_task_object", no_id)
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), (err.disposition is Disposition.MAYBE_SUBMITTED)) == (
        "upstream_malformed",
        True,
        True,
    )


async def test_unknown_upstream_model_is_a_route_fault(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.models = ["some-other-model"]
    route = make_route(relay)
    err = await failure(provider(route, deps).submit(make_ctx(tmp_path, route)))
    assert (err.code, asks_again(err), (err.disposition is Disposition.FAIL_OVER)) == (
        "model_not_found",
        False,
        True,
    )


# ---- poll ------------------------------------------------------------------------------


async def submitted(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path, timeout: float = 5.0, **kw: Any
) -> tuple[Provider, TaskContext, str]:
    route = make_route(relay, timeout_seconds=timeout)
    ctx = make_ctx(tmp_path, route, **kw)
    prov = provider(route, deps)
    return prov, ctx, await prov.submit(ctx)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("submitted", "queued"),
        ("queued", "queued"),
        ("in_progress", "running"),
        ("processing", "running"),
        ("running", "running"),
        ("cancelled", "cancelled"),
        ("expired", "expired"),
        ("thinking_hard", "running"),
    ],
)
async def test_poll_maps_statuses(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path, word: str, status: str
) -> None:
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.set_status(upstream_id, word, progress=42)
    result = await prov.poll(ctx, upstream_id)
    assert (result.status, result.progress, result.video_url) == (status, 42, None)
    assert relay.requests_to("get")[0].bearer == relay.api_key


async def test_poll_failed_keeps_the_upstream_error(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.fail(upstream_id, "content_policy_violation", "The prompt was refused.")
    result = await prov.poll(ctx, upstream_id)
    assert (result.status, result.error_code, result.error_message) == (
        "failed",
        "content_policy_violation",
        "The prompt was refused.",
    )
    relay.set_status(upstream_id, "failed", error=None)
    result = await prov.poll(ctx, upstream_id)
    assert (result.status, result.error_code) == ("failed", "upstream_failed")


@pytest.mark.parametrize("url_field", ["video_url", "url", "both", "metadata"])
async def test_poll_success_with_a_result_url(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path, url_field: Any
) -> None:
    relay.url_field = url_field
    relay.include_usage = True
    prov, ctx, upstream_id = await submitted(
        relay, deps, tmp_path, duration=8, return_last_frame=True
    )
    relay.complete(upstream_id)
    result = await prov.poll(ctx, upstream_id)
    assert result.status == "succeeded" and result.progress == 100
    assert result.video_url is not None
    assert result.video_url.startswith(f"{relay.root_url}/results/{upstream_id}.mp4?")
    assert (await deps.http.get(result.video_url)).content == sample_mp4(True)  # no key needed
    assert result.last_frame_url is not None and ".png?" in result.last_frame_url
    assert (result.width, result.height, result.seconds) == (1280, 720, 8.0)
    assert result.completion_tokens == 1280 * 720 * (24 * 8 + 1) // 1024
    assert relay.requests_to("content") == []


async def test_poll_success_downloads_the_content_endpoint(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.url_field = "none"
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.complete(upstream_id)
    result = await prov.poll(ctx, upstream_id)
    assert result.status == "succeeded" and result.video_url is not None
    assert result.video_url.startswith("file://")
    path = Path(url2pathname(urlsplit(result.video_url).path))
    assert path == (ctx.work_dir / upstream_id / "video.mp4").resolve()
    assert await asyncio.to_thread(path.read_bytes) == sample_mp4(True)
    assert (await asyncio.to_thread(probe, path)).kind == "video"
    assert [r.bearer for r in relay.requests_to("content")] == [relay.api_key]
    assert sorted(p.name for p in (ctx.work_dir / upstream_id).iterdir()) == ["video.mp4"]
    # A second poll reuses the finished file.
    assert (await prov.poll(ctx, upstream_id)).video_url == result.video_url
    assert len(relay.requests_to("content")) == 1


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (Fault.server_error(), "server_error", True),
        (Fault.not_found(), "not_found", True),
        (Fault.wrong_content_type(), "result_invalid", False),
        (Fault.oversized(0.01), "result_invalid", False),
        (Fault.oversized(0.01, declare_length=False), "result_invalid", False),
    ],
)
async def test_content_download_failures(
    relay: FakeRelay,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault,
    code: str,
    retryable: bool,
) -> None:
    relay.url_field = "none"
    deps = ProviderDeps(
        settings=Settings(data_dir=tmp_path, max_result_bytes=8 * 1024),
        http=deps.http,
        run_cpu=deps.run_cpu,
    )
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.complete(upstream_id)
    relay.inject(fault, "content")
    err = await failure(prov.poll(ctx, upstream_id))
    assert (err.code, asks_again(err)) == (code, retryable)
    assert list(ctx.work_dir.glob("*/*")) == []  # no partial file left


async def test_content_download_times_out(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.url_field = "none"
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path, timeout=0.3)
    relay.complete(upstream_id)
    relay.inject(Fault.hang(10), "content")
    err = await failure(prov.poll(ctx, upstream_id))
    assert (err.code, asks_again(err)) == ("upstream_timeout", True)
    assert list(ctx.work_dir.glob("*/*")) == []


async def test_content_that_is_not_a_video_is_refused(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.url_field = "none"
    relay.result_video = b"\0" * 4096
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.complete(upstream_id)
    err = await failure(prov.poll(ctx, upstream_id))
    assert (err.code, asks_again(err)) == ("result_invalid", False)
    assert list(ctx.work_dir.glob("*/*")) == []


async def test_unsafe_result_urls_and_ids_stay_out_of_the_filesystem(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.complete(upstream_id, video_url="file:///etc/passwd")
    result = await prov.poll(ctx, upstream_id)
    # The file:// URL is ignored: the bytes come from the content endpoint instead.
    assert result.video_url == (ctx.work_dir / upstream_id / "video.mp4").resolve().as_uri()
    err = await failure(prov.poll(ctx, "../../etc"))
    assert (err.code, err.status) == ("not_found", 404)
    # The id is one quoted path segment: it cannot climb out of /v1/videos/.
    assert relay.requests[-1].path == "/v1/videos/../../etc"


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (Fault.server_error(), "server_error", True),
        (Fault.malformed_json(), "upstream_malformed", True),
        (Fault.disconnect(), "upstream_unreachable", True),
        (Fault.error(404, "not_found"), "not_found", False),
    ],
)
async def test_poll_errors(
    relay: FakeRelay,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault,
    code: str,
    retryable: bool,
) -> None:
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    relay.inject(fault, "get")
    err = await failure(prov.poll(ctx, upstream_id))
    assert (err.code, asks_again(err)) == (code, retryable)


# ---- cancel ----------------------------------------------------------------------------


async def test_cancel_deletes_the_video(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    await prov.cancel(ctx, upstream_id)
    assert upstream_id in relay.deleted_tasks
    assert relay.requests_to("delete")[0].bearer == relay.api_key


@pytest.mark.parametrize(
    ("fault", "code", "disposition"),
    [
        (None, "video_not_finished", Disposition.FAIL_TASK),  # refused: follow it instead
        (Fault.server_error(), "server_error", Disposition.RETRY),  # as Ark's: ask again
    ],
)
async def test_cancel_errors_follow_the_shared_policy(
    relay: FakeRelay,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault | None,
    code: str,
    disposition: Disposition,
) -> None:
    relay.allow_delete_unfinished = False
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    if fault is not None:
        relay.inject(fault, "delete")
    err = await failure(prov.cancel(ctx, upstream_id))
    assert (err.code, err.disposition) == (code, disposition)


# ---- recover ---------------------------------------------------------------------------


async def test_recover_never_adopts_a_lookalike(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    """A relay keeps no marker of ours: a video with this task's model and prompt may be
    another task's (identical bodies happen), so it is never adopted; the task fails."""
    started = time.time()
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    err = await failure(prov.recover(ctx, started, frozenset()))
    assert (err.code, asks_again(err)) == ("submit_uncertain", False)
    assert upstream_id in err.message
    rec = relay.requests_to("list")[0]
    assert (rec.query_value("limit"), rec.query_value("order")) == ("100", "desc")
    assert rec.bearer == relay.api_key


async def test_recover_ignores_other_videos(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    started = time.time()
    prov, ctx, upstream_id = await submitted(relay, deps, tmp_path)
    assert await prov.recover(ctx, started, frozenset({upstream_id})) is None  # another task's
    assert await prov.recover(ctx, started + 60, frozenset()) is None  # older than the attempt
    other_model = make_route(relay, upstream_model="another-model")
    await provider(other_model, deps).submit(make_ctx(tmp_path, other_model))
    await prov.submit(make_ctx(tmp_path, make_route(relay), prompt="something else"))
    assert len(relay.tasks) == 3
    assert await prov.recover(ctx, started, frozenset({upstream_id})) is None


async def test_recover_with_nothing_submitted(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(relay)
    assert await provider(route, deps).recover(make_ctx(tmp_path, route), 0, frozenset()) is None


async def test_recover_refuses_to_guess(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    started = time.time()
    prov, ctx, first = await submitted(relay, deps, tmp_path)
    second = await prov.submit(ctx)
    err = await failure(prov.recover(ctx, started, frozenset()))
    assert (err.code, asks_again(err)) == ("submit_uncertain", False)
    assert first in err.message and second in err.message


@pytest.mark.parametrize("status", [404, 405])
async def test_recover_without_a_list_endpoint(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path, status: int
) -> None:
    relay.inject(Fault.error(status), "list")
    route = make_route(relay)
    err = await failure(provider(route, deps).recover(make_ctx(tmp_path, route), 0, frozenset()))
    assert (err.code, asks_again(err), err.status) == ("submit_uncertain", False, status)
    assert "cannot list its videos" in err.message


async def test_recover_list_outage_is_retryable(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    relay.inject(Fault.server_error(), "list")
    route = make_route(relay)
    err = await failure(provider(route, deps).recover(make_ctx(tmp_path, route), 0, frozenset()))
    assert (err.code, asks_again(err)) == ("server_error", True)


async def test_recover_refuses_when_the_window_overflows_one_page(
    relay: FakeRelay, deps: ProviderDeps, tmp_path: Path
) -> None:
    started = time.time()
    prov, ctx, _ = await submitted(relay, deps, tmp_path)
    others = make_ctx(tmp_path, make_route(relay), prompt="someone else's video")
    await asyncio.gather(*(prov.submit(others) for _ in range(100)))
    err = await failure(prov.recover(ctx, started, frozenset()))
    assert (err.code, asks_again(err)) == ("submit_uncertain", False)
    assert "over 100 videos" in err.message
