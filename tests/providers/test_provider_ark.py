"""The Ark / BytePlus ModelArk provider against a real :class:`fakes.FakeArk` over HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes import FakeArk, Fault
from videogate.errors import Disposition, UpstreamError
from videogate.providers import ark as ark_module
from videogate.providers import load_provider
from videogate.providers.base import Provider, ProviderDeps, Route, TaskContext
from videogate.request import GenerationRequest, Reference
from videogate.settings import Settings
from videogate.worker.retry import asks_again

V2 = "doubao-seedance-2-0-260128"
V2_FAST = "doubao-seedance-2-0-fast-260128"
BP_FAST = "dreamina-seedance-2-0-fast-260128"
CALLBACK = "http://127.0.0.1:9/v1/callbacks/ark/tsk_1.abc"  # nothing listens: a hint only


# ---- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_ark() -> Iterator[FakeArk]:
    with FakeArk() as fake:
        yield fake


@pytest.fixture
def ark(shared_ark: FakeArk) -> Iterator[FakeArk]:
    shared_ark.reset()
    shared_ark.auto_advance = False  # statuses move only when a test says so
    yield shared_ark
    assert shared_ark.internal_errors == []


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[ProviderDeps]:
    async def no_cpu(*args: Any) -> None:
        raise AssertionError("the ark provider never renders")

    async with httpx.AsyncClient(trust_env=False) as http:
        yield ProviderDeps(settings=Settings(data_dir=tmp_path), http=http, run_cpu=no_cpu)


def make_route(ark: FakeArk, **overrides: Any) -> Route:
    fields: dict[str, Any] = {
        "name": "volc-std",
        "model": V2,
        "provider": "ark",
        "upstream_model": V2,
        "base_url": ark.base_url,
        "api_key_env": "ARK_API_KEY",
        "api_key": ark.api_key,
        "timeout_seconds": 5.0,
        **overrides,
    }
    return Route(**fields)


def provider_for(route: Route, deps: ProviderDeps) -> Provider:
    return load_provider("ark", route, deps)


def make_ctx(
    route: Route,
    tmp_path: Path,
    hook: str | None = None,
    attempt_id: str | None = None,
    **request: Any,
) -> TaskContext:
    req = GenerationRequest(model=route.model, prompt=request.pop("prompt", "a cat"), **request)
    # Upstream URLs deliberately differ from the client's: the provider must use these.
    urls = {ref.label: f"https://signed.example/{ref.kind}/{ref.index}" for ref in req.references}
    return TaskContext(
        task_id="tsk_1",
        request=req,
        route=route,
        reference_paths={},
        reference_urls=urls,
        work_dir=tmp_path,
        callback_url=hook,  # our own callback URL, not the client's
        attempt_id=attempt_id,
    )


def ref(kind: Any, role: str, index: int) -> Reference:
    return Reference(kind=kind, role=role, url=f"https://client.example/{kind}{index}", index=index)


async def submitted(ark: FakeArk, deps: ProviderDeps, tmp_path: Path, **request: Any) -> str:
    route = make_route(ark)
    return await provider_for(route, deps).submit(make_ctx(route, tmp_path, **request))


# ---- submit -----------------------------------------------------------------------------


async def test_submit_passes_every_field_through(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    refs = (
        ref("image", "reference_image", 1),
        ref("image", "reference_image", 2),
        ref("video", "reference_video", 1),
        ref("audio", "reference_audio", 1),
    )
    ctx = make_ctx(
        route,
        tmp_path,
        CALLBACK,
        prompt="image 1 walks through video 1, image 2 sings audio 1",
        references=refs,
        ratio="9:16",
        resolution="480p",
        duration=8,
        seed=42,
        watermark=True,
        generate_audio=False,
        return_last_frame=True,
        callback_url="https://client.example/hook",  # the client's hook is ours to call
    )
    upstream_id = await provider_for(route, deps).submit(ctx)

    assert upstream_id in ark.tasks
    (rec,) = ark.requests_to("create")
    assert rec.method == "POST" and rec.path == "/api/v3/contents/generations/tasks"
    assert rec.bearer == ark.api_key
    assert rec.headers["content-type"] == "application/json"
    assert rec.json == {
        "model": V2,
        "content": [
            {"type": "text", "text": "image 1 walks through video 1, image 2 sings audio 1"},
            {
                "type": "image_url",
                "image_url": {"url": "https://signed.example/image/1"},
                "role": "reference_image",
            },
            {
                "type": "image_url",
                "image_url": {"url": "https://signed.example/image/2"},
                "role": "reference_image",
            },
            {
                "type": "video_url",
                "video_url": {"url": "https://signed.example/video/1"},
                "role": "reference_video",
            },
            {
                "type": "audio_url",
                "audio_url": {"url": "https://signed.example/audio/1"},
                "role": "reference_audio",
            },
        ],
        "ratio": "9:16",
        "resolution": "480p",
        "duration": 8,
        "seed": 42,
        "watermark": True,
        "generate_audio": False,
        "return_last_frame": True,
        "callback_url": CALLBACK,
    }


async def test_submit_sends_no_nulls(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    route = make_route(ark)
    ctx = make_ctx(route, tmp_path, references=(ref("image", "first_frame", 1),))
    await provider_for(route, deps).submit(ctx)
    (rec,) = ark.requests_to("create")
    assert b"null" not in rec.body
    assert "seed" not in rec.json and "callback_url" not in rec.json
    assert rec.json["content"][1]["role"] == "first_frame"
    assert rec.json["generate_audio"] is True and rec.json["watermark"] is False


async def test_submit_without_a_key_never_calls(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark, api_key="", api_key_env="BYTEPLUS_API_KEY")
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).submit(make_ctx(route, tmp_path))
    assert err.value.code == "upstream_key_missing" and not asks_again(err.value)
    assert "BYTEPLUS_API_KEY" in err.value.message
    assert ark.requests == []


# ---- poll -------------------------------------------------------------------------------


async def test_poll_queued_running_succeeded(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    provider = provider_for(route, deps)
    ctx = make_ctx(route, tmp_path, ratio="9:16", seed=7, return_last_frame=True, duration=6)
    upstream_id = await provider.submit(ctx)

    queued = await provider.poll(ctx, upstream_id)
    assert queued.status == "queued" and queued.progress is None and queued.video_url is None
    ark.set_status(upstream_id, "running")
    running = await provider.poll(ctx, upstream_id)
    assert running.status == "running" and running.progress is None
    ark.complete(upstream_id)
    done = await provider.poll(ctx, upstream_id)

    obj = ark.task_object(upstream_id)
    assert done.status == "succeeded"
    assert done.video_url == obj["content"]["video_url"]
    assert done.last_frame_url == obj["content"]["last_frame_url"]
    assert done.completion_tokens == obj["usage"]["completion_tokens"] == 720 * 1280 * 145 // 1024
    assert (done.width, done.height, done.seconds, done.seed) == (720, 1280, 6.0, 7)
    assert done.error_code is None and done.thumbnail_url is None
    (get, *_) = ark.requests_to("get")
    assert get.bearer == ark.api_key and get.path.endswith(f"/tasks/{upstream_id}")


async def test_poll_resolved_values_come_from_the_upstream(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    provider = provider_for(route, deps)
    # "adaptive" and "-1" are resolved upstream: Ark reports 16:9 and 8 s here.
    ctx = make_ctx(route, tmp_path, ratio="adaptive", duration=-1)
    upstream_id = await provider.submit(ctx)
    ark.complete(upstream_id)
    done = await provider.poll(ctx, upstream_id)
    assert (done.width, done.height, done.seconds) == (1280, 720, 8.0)
    assert done.last_frame_url is None

    ark.adaptive_ratio = None  # the upstream keeps reporting "adaptive": size unknown
    upstream_id = await provider.submit(ctx)
    ark.complete(upstream_id)
    done = await provider.poll(ctx, upstream_id)
    assert done.status == "succeeded" and done.width is None and done.height is None


async def test_poll_failed_keeps_the_upstream_code(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    code = "OutputVideoSensitiveContentDetected.PolicyViolation"
    message = "The request failed because the output video may be related to copyright."
    ark.fail(upstream_id, code, message)
    result = await provider_for(make_route(ark), deps).poll(
        make_ctx(make_route(ark), tmp_path), upstream_id
    )
    assert (result.status, result.error_code, result.error_message) == ("failed", code, message)
    assert result.video_url is None


@pytest.mark.parametrize(
    ("status", "code", "in_message"),
    [("cancelled", "cancelled", "cancelled"), ("expired", "expired", "execution window")],
)
async def test_poll_cancelled_and_expired_without_an_error(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, status: str, code: str, in_message: str
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    if status == "expired":
        ark.expire(upstream_id)
    else:
        ark.set_status(upstream_id, status)
    assert ark.task_object(upstream_id)["error"] is None
    route = make_route(ark)
    result = await provider_for(route, deps).poll(make_ctx(route, tmp_path), upstream_id)
    assert result.status == status and result.error_code == code
    assert result.error_message is not None and in_message in result.error_message


async def test_poll_expired_with_an_error_keeps_it(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    ark.expire(upstream_id, "TaskExpired", "ran out of time")
    route = make_route(ark)
    result = await provider_for(route, deps).poll(make_ctx(route, tmp_path), upstream_id)
    assert (result.status, result.error_code, result.error_message) == (
        "expired",
        "TaskExpired",
        "ran out of time",
    )


async def test_poll_unknown_status_keeps_the_task_running(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    ark.set_status(upstream_id, "not_start")
    route = make_route(ark)
    with caplog.at_level(logging.WARNING, logger="videogate.providers.ark"):
        result = await provider_for(route, deps).poll(make_ctx(route, tmp_path), upstream_id)
    assert result.status == "running" and result.error_code is None
    assert "not_start" in caplog.text


async def test_poll_unknown_task_is_final(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    route = make_route(ark)
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).poll(make_ctx(route, tmp_path), "cgt-nope")
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "ResourceNotFound",
        False,
        404,
    )


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (Fault.server_error(), "InternalServiceError", 500),
        (Fault.rate_limited(), "RateLimitExceeded.EndpointRPMExceeded", 429),
        (Fault.malformed_json(), "upstream_malformed", 200),
        (Fault.disconnect(), "upstream_unreachable", None),
    ],
)
async def test_poll_transient_failures_are_retryable(
    ark: FakeArk,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault,
    code: str,
    status: int | None,
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    ark.inject(fault, on="get")
    route = make_route(ark)
    provider, ctx = provider_for(route, deps), make_ctx(route, tmp_path)
    with pytest.raises(UpstreamError) as err:
        await provider.poll(ctx, upstream_id)
    assert (err.value.code, asks_again(err.value), err.value.status) == (code, True, status)
    assert (await provider.poll(ctx, upstream_id)).status == "queued"  # the next poll works


async def test_poll_succeeded_without_a_video_is_malformed(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream_id = await submitted(ark, deps, tmp_path)
    ark.complete(upstream_id)
    task_object = ark._task_object

    def without_content(task: Any) -> dict[str, Any]:
        return {k: v for k, v in task_object(task).items() if k != "content"}

    monkeypatch.setattr(ark, "_task_object", without_content)
    route = make_route(ark)
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).poll(make_ctx(route, tmp_path), upstream_id)
    assert err.value.code == "upstream_malformed" and asks_again(err.value)


# ---- error mapping on submit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (Fault.rate_limited(), "RateLimitExceeded.EndpointRPMExceeded", 429),
        (Fault.quota_exceeded(), "QuotaExceeded", 429),
        (Fault.server_error(), "InternalServiceError", 500),
        (Fault.wrong_content_type(status=502), "upstream_http_502", 502),
        (Fault.malformed_json(), "upstream_malformed", 200),
        (Fault.wrong_content_type(), "upstream_malformed", 200),
        (Fault.disconnect(), "upstream_unreachable", None),
    ],
)
async def test_submit_transient_failures_are_retryable(
    ark: FakeArk,
    deps: ProviderDeps,
    tmp_path: Path,
    fault: Fault,
    code: str,
    status: int | None,
) -> None:
    ark.inject(fault, on="create")
    with pytest.raises(UpstreamError) as err:
        await submitted(ark, deps, tmp_path)
    assert (err.value.code, asks_again(err.value), err.value.status) == (code, True, status)


async def test_submit_connection_refused(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    ark.go_offline()
    with pytest.raises(UpstreamError) as err:
        await submitted(ark, deps, tmp_path)
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "upstream_unreachable",
        True,
        None,
    )
    assert f"127.0.0.1:{ark.port}" in err.value.message and "volc-std" in err.value.message


async def test_submit_hang_times_out(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    ark.inject(Fault.hang(5), on="create")
    route = make_route(ark, timeout_seconds=0.3)
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).submit(make_ctx(route, tmp_path))
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "upstream_timeout",
        True,
        None,
    )
    assert "0.3 s" in err.value.message


async def test_submit_rejected_request_is_final_with_the_upstream_code(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    # 2.0-fast has no 1080p: the fake (like Ark) answers 400 InvalidParameter.
    route = make_route(ark, model=V2_FAST, upstream_model=V2_FAST)
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).submit(make_ctx(route, tmp_path, resolution="1080p"))
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "InvalidParameter",
        False,
        400,
    )
    assert "resolution" in err.value.message

    ark.inject(Fault.error(400, "InputTextSensitiveContentDetected", "no"), on="create")
    with pytest.raises(UpstreamError) as err:
        await submitted(ark, deps, tmp_path)
    assert (err.value.code, asks_again(err.value)) == ("InputTextSensitiveContentDetected", False)
    assert err.value.message.startswith("no")


async def test_submit_with_a_wrong_key(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    route = make_route(ark, api_key="not-the-key")
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).submit(make_ctx(route, tmp_path))
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "AuthenticationError",
        False,
        401,
    )
    assert "rejected route volc-std's key" in err.value.message
    assert ark.requests_to("create")[0].bearer == "not-the-key"


# ---- cancel -----------------------------------------------------------------------------


async def test_cancel_queued_then_running_is_refused(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    provider, ctx = provider_for(route, deps), make_ctx(route, tmp_path)
    queued = await provider.submit(ctx)
    await provider.cancel(ctx, queued)
    assert ark.task(queued).status == "cancelled"
    (rec,) = ark.requests_to("delete")
    assert rec.method == "DELETE" and rec.bearer == ark.api_key
    assert rec.path.endswith(f"/tasks/{queued}")

    running = await provider.submit(ctx)
    ark.set_status(running, "running")
    with pytest.raises(UpstreamError) as err:
        await provider.cancel(ctx, running)
    assert (err.value.code, asks_again(err.value), err.value.status) == (
        "InvalidParameter",
        False,
        400,
    )
    assert "running" in err.value.message
    assert ark.task(running).status == "running"


# ---- recover ----------------------------------------------------------------------------


async def test_recover_finds_the_job_by_its_attempt_marker(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    provider = provider_for(route, deps)
    mine, theirs = (make_ctx(route, tmp_path, attempt_id=a) for a in ("att_mine", "att_theirs"))
    submitted_after = ark.now()
    # Two in-flight submits with identical bodies: only the marker tells them apart.
    ours = await provider.submit(mine)
    other = await provider.submit(theirs)
    assert ark.task(ours).body["safety_identifier"] == "videogate-att_mine"

    assert await provider.recover(mine, submitted_after, frozenset()) == ours
    assert await provider.recover(theirs, submitted_after, frozenset()) == other
    rec = ark.requests_to("list")[0]
    assert rec.bearer == ark.api_key
    assert dict(rec.query) == {"page_num": "1", "page_size": "500", "filter.model": V2}


async def test_recover_finds_nothing(ark: FakeArk, deps: ProviderDeps, tmp_path: Path) -> None:
    route = make_route(ark)
    provider = provider_for(route, deps)
    ctx = make_ctx(route, tmp_path, attempt_id="att_lost")
    assert await provider.recover(ctx, ark.now(), frozenset()) is None  # nothing at all
    await provider.submit(make_ctx(route, tmp_path, attempt_id="att_other"))
    assert await provider.recover(ctx, ark.now(), frozenset()) is None  # only others' markers


async def test_recover_never_adopts_by_the_body(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    """A recent job with this task's very body but no marker (another client of the same
    account, or an upstream that does not echo markers) is never taken for ours, nor is
    its presence taken for absence."""
    route = make_route(ark)
    provider = provider_for(route, deps)
    submitted_after = ark.now()
    lookalike = await provider.submit(make_ctx(route, tmp_path))  # no marker
    with pytest.raises(UpstreamError) as err:
        await provider.recover(
            make_ctx(route, tmp_path, attempt_id="att_x"), submitted_after, frozenset()
        )
    assert err.value.code == "submit_uncertain" and not asks_again(err.value)
    assert lookalike not in err.value.message


async def test_recover_without_a_marker_cannot_tell(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).recover(make_ctx(route, tmp_path), ark.now(), frozenset())
    assert err.value.code == "submit_uncertain"


async def test_recover_pages_while_items_are_recent(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ark_module, "RECOVER_PAGE_SIZE", 2)
    route = make_route(ark)
    provider = provider_for(route, deps)
    for n in range(3):
        await provider.submit(make_ctx(route, tmp_path, attempt_id=f"att_old{n}"))
    ark.advance(600)
    submitted_after = ark.now()
    lost = make_ctx(route, tmp_path, attempt_id="att_lost")
    for n in range(3):
        await provider.submit(make_ctx(route, tmp_path, attempt_id=f"att_new{n}"))

    assert await provider.recover(lost, submitted_after, frozenset()) is None
    pages = [r.query_value("page_num") for r in ark.requests_to("list")]
    assert pages == ["1", "2"]  # page 2 reaches older tasks: no page 3

    monkeypatch.setattr(ark_module, "RECOVER_MAX_PAGES", 1)
    with pytest.raises(UpstreamError) as err:
        await provider.recover(lost, submitted_after, frozenset())
    assert err.value.code == "submit_uncertain" and not asks_again(err.value)


async def test_create_answered_2xx_but_unreadable_may_have_submitted(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(ark)
    ark.inject(Fault.malformed_json(process=True), on="create")
    with pytest.raises(UpstreamError) as err:
        await provider_for(route, deps).submit(make_ctx(route, tmp_path, attempt_id="att_2xx"))
    assert (err.value.disposition is Disposition.MAYBE_SUBMITTED) and err.value.status == 200
    assert len(ark.tasks) == 1  # created upstream: it must be recovered, not sent again


async def test_recover_refuses_to_guess_on_an_unexpected_order(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = make_route(ark)
    provider, ctx = provider_for(route, deps), make_ctx(route, tmp_path, attempt_id="att_1")
    await provider.submit(make_ctx(route, tmp_path, attempt_id="att_2"))
    ark.advance(60)
    await provider.submit(make_ctx(route, tmp_path, attempt_id="att_3"))
    # The fake lists newest first, as Ark is assumed to; make it list oldest first.
    monkeypatch.setattr(ark, "_tasks", dict(reversed(list(ark._tasks.items()))))
    with pytest.raises(UpstreamError) as err:
        await provider.recover(ctx, ark.now(), frozenset())
    assert err.value.code == "submit_uncertain" and not asks_again(err.value)


@pytest.mark.parametrize("offline", [True, False])
async def test_recover_network_errors_are_retryable(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path, offline: bool
) -> None:
    route = make_route(ark)
    provider, ctx = provider_for(route, deps), make_ctx(route, tmp_path, attempt_id="att_1")
    if offline:
        ark.go_offline()
    else:
        ark.inject(Fault.server_error(), on="list")
    with pytest.raises(UpstreamError) as err:
        await provider.recover(ctx, ark.now(), frozenset())
    assert asks_again(err.value)
    assert err.value.code == ("upstream_unreachable" if offline else "InternalServiceError")


# ---- BytePlus ---------------------------------------------------------------------------


async def test_byteplus_model_names_use_the_same_path(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    route = make_route(
        ark,
        name="byteplus-fast",
        model=V2_FAST,
        upstream_model=BP_FAST,
        base_url=ark.base_url + "/",  # a trailing slash in the config is harmless
        api_key_env="BYTEPLUS_API_KEY",
    )
    ctx = make_ctx(route, tmp_path, attempt_id="att_bp", resolution="480p")
    provider = provider_for(route, deps)
    submitted_after = ark.now()
    upstream_id = await provider.submit(ctx)
    assert ark.requests_to("create")[0].json["model"] == BP_FAST
    assert ark.tasks[upstream_id].model == BP_FAST

    assert await provider.recover(ctx, submitted_after, frozenset()) == upstream_id
    assert ark.requests_to("list")[0].query_value("filter.model") == BP_FAST

    ark.complete(upstream_id)
    done = await provider.poll(ctx, upstream_id)
    assert (done.status, done.width, done.height) == ("succeeded", 864, 496)
    assert done.completion_tokens == 864 * 496 * 121 // 1024


async def test_the_clients_safety_identifier_goes_to_ark_and_recovery_stays_exact(
    ark: FakeArk, deps: ProviderDeps, tmp_path: Path
) -> None:
    """A client's own ``safety_identifier`` is Ark's end-user id: it is sent unchanged in
    place of the attempt marker. Its lost create is then sent again only when the list
    proves no job was created since; any job in that window fails the task (never adopted
    by the shared id, never paid twice)."""
    route = make_route(ark)
    provider = provider_for(route, deps)

    def ctx(attempt: str) -> TaskContext:
        return make_ctx(
            route, tmp_path, attempt_id=attempt, extras={"safety_identifier": "user-7f3a"}
        )

    submitted_after = ark.now()
    assert await provider.recover(ctx("att_1"), submitted_after, frozenset()) is None
    job = await provider.submit(ctx("att_1"))
    assert ark.task(job).body["safety_identifier"] == "user-7f3a"
    with pytest.raises(UpstreamError) as err:
        await provider.recover(ctx("att_2"), submitted_after, frozenset())
    assert err.value.code == "submit_uncertain"
