"""The Ark surface past create → poll → download, driven by the real Ark SDK against a live
server: ``asset://`` references, edit/extend (``omni_reference_task_type``), ``output_format``
``mov``, and callbacks parsed with the SDK's own task type (issue 14, points 9-10)."""

from __future__ import annotations

import asyncio
import io
import json
import time
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from volcenginesdkarkruntime import Ark  # type: ignore[import-untyped]
from volcenginesdkarkruntime._exceptions import (  # type: ignore[import-untyped]
    ArkBadRequestError,
)
from volcenginesdkarkruntime._models import construct_type  # type: ignore[import-untyped]
from volcenginesdkarkruntime.types.content_generation.content_generation_task import (  # type: ignore[import-untyped]
    ContentGenerationTask,
)

from ark_sdk_support import text, wait_done
from conftest import LiveServer, MediaServer, make_live_key, run_live_server
from fakes import FakeArk
from media_factory import mp4_file
from videogate.errors import InvalidRequest
from videogate.providers import capabilities_of
from videogate.providers.base import Route
from videogate.request import GenerationRequest, build_references
from videogate.service.keys import create_key
from videogate.service.references import check_routes_can_serve
from videogate.settings import RouteConfig
from videogate.store import Store
from webhook_support import Receiver, receiver_server

# The official Ark SDK against live servers: end to end, so the slow tier (make test).
pytestmark = pytest.mark.slow

FAST = "doubao-seedance-2-0-fast-260128"
V25 = "doubao-seedance-2-5-260628"
MINI = "dreamina-seedance-2-0-mini-260615"
ARK_KEY_ENV = "VG_TEST_ARK_KEY"


def sdk(live: LiveServer, key: str | None = None) -> Any:
    return Ark(base_url=f"{live.base_url}/api/v3", api_key=key or make_live_key(live))


def live_key_and_secret(live: LiveServer) -> tuple[str, str]:
    """A key in the live server's database and the secret that signs its webhooks."""

    async def run() -> tuple[str, str]:
        store = Store.open(live.settings.effective_database_url)
        try:
            new = await create_key(store, name="callbacks")
            return new.key, new.webhook_secret
        finally:
            await store.close()

    return asyncio.run(run())


def video_item(url: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}


@pytest.fixture
def fake_ark() -> Iterator[FakeArk]:
    with FakeArk(models=(FAST, V25), queued_seconds=0.05, running_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def ark_routed(
    tmp_path: Path, fake_ark: FakeArk, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    """A live server whose 2.0 fast and 2.5 models go to a fake Ark upstream."""
    monkeypatch.setenv(ARK_KEY_ENV, "ark-test-key")
    routes = [
        RouteConfig(
            name=f"ark-{i}",
            model=model,
            provider="ark",
            base_url=fake_ark.base_url,
            api_key_env=ARK_KEY_ENV,
            upstream_model=model,
            timeout_seconds=5.0,
        )
        for i, model in enumerate((FAST, V25), start=1)
    ]
    with run_live_server(tmp_path / "live", routes=routes) as live:
        yield live


def sent_body(fake: FakeArk) -> dict[str, Any]:
    [task] = fake.tasks.values()
    body: dict[str, Any] = task.body
    return body


# -- asset:// references ---------------------------------------------------------------------


def test_asset_references_go_to_ark_routes_unchanged(
    ark_routed: LiveServer, fake_ark: FakeArk
) -> None:
    ark = sdk(ark_routed)
    try:
        created = ark.content_generation.tasks.create(
            model=FAST,
            content=[
                text("the person of image 1 walks through video 1"),
                {
                    "type": "image_url",
                    "image_url": {"url": "asset://asset-20260101-portrait"},
                    "role": "reference_image",
                },
                video_item("asset://asset-20260101-street"),
            ],
            duration=4,
            resolution="480p",
        )
        task = wait_done(ark, created.id)
    finally:
        ark.close()
    assert task.status == "succeeded", task
    urls = [
        (item["type"], item[item["type"]]["url"])
        for item in sent_body(fake_ark)["content"]
        if item["type"] != "text"
    ]
    assert urls == [
        ("image_url", "asset://asset-20260101-portrait"),
        ("video_url", "asset://asset-20260101-street"),
    ]
    # Nothing was fetched or stored for them: the upstream's asset library resolves them.
    refs = Path(ark_routed.settings.data_dir) / "blobs" / "refs"
    assert not refs.exists() or not any(refs.rglob("*"))


@pytest.mark.parametrize("model", ["sandbox", MINI])
def test_asset_references_are_refused_where_nothing_resolves_them(
    live_server: LiveServer, model: str
) -> None:
    ark = sdk(live_server)
    try:
        with pytest.raises(ArkBadRequestError) as refused:
            ark.content_generation.tasks.create(
                model=model,
                content=[
                    text("x"),
                    {
                        "type": "image_url",
                        "image_url": {"url": "asset://asset-1"},
                        "role": "reference_image",
                    },
                ],
                duration=4,
                resolution="480p",
                generate_audio=model != "sandbox" or None,
            )
    finally:
        ark.close()
    err = refused.value
    assert err.code == "InvalidParameter" and err.param == "content"
    assert "asset://asset-1" in err.message and "image 1" in err.message
    assert model in err.message


def test_asset_references_need_every_candidate_to_resolve_them() -> None:
    """Decided from the providers' declared capabilities: an OpenAI-compatible relay, the
    local diffusers models and the sandbox cannot resolve them; a failover could land on any
    candidate, so one such route among them is enough to refuse."""
    req = GenerationRequest(
        model=FAST,
        prompt="x",
        references=build_references([("image", "asset://a1", "reference_image")]),
    )

    def route(kind: str) -> Route:
        return Route("r-" + kind, FAST, kind, FAST, capabilities=capabilities_of(kind))

    check_routes_can_serve(req, [route("ark")])
    for kind in ("openai", "sandbox", "diffusers"):
        with pytest.raises(InvalidRequest, match="asset://a1"):
            check_routes_can_serve(req, [route("ark"), route(kind)])


# -- edit / extend and mov ---------------------------------------------------------------------


def test_edit_extend_and_mov_pass_through_to_ark_routes(
    ark_routed: LiveServer, fake_ark: FakeArk
) -> None:
    ark = sdk(ark_routed)
    try:
        created = ark.content_generation.tasks.create(
            model=V25,
            content=[text("make it night"), video_item("asset://asset-clip")],
            duration=5,
            resolution="720p",
            omni_reference_task_type="extend",
            output_format="mov",
        )
        task = wait_done(ark, created.id)
    finally:
        ark.close()
    assert task.status == "succeeded", task
    body = sent_body(fake_ark)
    assert (body["omni_reference_task_type"], body["output_format"]) == ("extend", "mov")
    assert task.output_format == "mov"
    video = httpx.get(task.content.video_url)
    assert video.status_code == 200 and video.headers["content-type"] == "video/quicktime"


def test_sandbox_extends_into_a_real_mov(
    live_server: LiveServer, media_server: MediaServer
) -> None:
    mp4_file(media_server.root / "source.mp4", 3.0)
    key = make_live_key(live_server)
    ark = sdk(live_server, key)
    try:
        created = ark.content_generation.tasks.create(
            model="sandbox",
            content=[text("keep walking"), video_item(media_server.url("source.mp4"))],
            duration=4,
            resolution="480p",
            ratio="16:9",
            omni_reference_task_type="extend",
            output_format="mov",
        )
        task = wait_done(ark, created.id)
    finally:
        ark.close()
    assert task.status == "succeeded", task
    assert task.duration == 7  # the source's 3 s and the 4 s asked for
    assert (task.output_format, task.fileformat) == ("mov", "mov")
    video = httpx.get(task.content.video_url)
    assert video.headers["content-type"] == "video/quicktime"
    assert video.content[4:12] == b"ftypqt  "  # a QuickTime file, not an mp4 renamed
    with av.open(io.BytesIO(video.content), "r") as c:
        assert round(float(c.duration or 0) / av.time_base) == 7
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (864, 496)
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]  # generate_audio
    # The same file on /v1, and the stills made from it.
    auth = {"Authorization": f"Bearer {key}"}
    content = httpx.get(f"{live_server.base_url}/v1/videos/{task.id}/content", headers=auth)
    assert content.headers["content-type"] == "video/quicktime"
    assert content.content == video.content
    thumb = httpx.get(
        f"{live_server.base_url}/v1/videos/{task.id}/content?variant=thumbnail", headers=auth
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"


def test_sandbox_edits_the_reference_video(
    live_server: LiveServer, media_server: MediaServer
) -> None:
    mp4_file(media_server.root / "source.mp4", 3.0)
    ark = sdk(live_server)
    try:
        created = ark.content_generation.tasks.create(
            model="sandbox",
            content=[text("sepia"), video_item(media_server.url("source.mp4"))],
            duration=-1,
            resolution="480p",
            omni_reference_task_type="edit",
        )
        task = wait_done(ark, created.id)
    finally:
        ark.close()
    assert task.status == "succeeded", task
    assert task.output_format == "mp4"
    video = httpx.get(task.content.video_url)
    assert video.headers["content-type"] == "video/mp4"


def test_edit_and_mov_are_refused_naming_the_model(live_server: LiveServer) -> None:
    ark = sdk(live_server)
    tasks = ark.content_generation.tasks
    clip = video_item("https://example.com/clip.mp4")
    try:
        with pytest.raises(ArkBadRequestError) as no_edit:
            tasks.create(
                model=MINI,
                content=[text("x"), clip],
                omni_reference_task_type="edit",
            )
        assert MINI in no_edit.value.message and "edit" in no_edit.value.message
        with pytest.raises(ArkBadRequestError) as no_mov:
            tasks.create(model=FAST, content=[text("x")], output_format="mov")
        assert no_mov.value.param == "output_format" and FAST in no_mov.value.message
        with pytest.raises(ArkBadRequestError) as no_video:
            tasks.create(model=V25, content=[text("x")], omni_reference_task_type="extend")
        assert no_video.value.param == "omni_reference_task_type"
    finally:
        ark.close()


# -- callbacks in the SDK's own type -----------------------------------------------------------


def _matches(value: Any, annotation: Any) -> bool:
    """``value`` fits ``annotation`` (None always does: Ark leaves unused fields null)."""
    if value is None:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return isinstance(value, dict) and not _mismatches(value, annotation)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _mismatches(
    payload: dict[str, Any], model: Any, *, optional: tuple[str, ...] = ()
) -> list[str]:
    """Fields of the SDK ``model`` missing from ``payload`` or of the wrong type."""
    hints = typing.get_type_hints(model)
    wrong: list[str] = []
    for name in model.model_fields:
        if name not in payload:
            if name not in optional:
                wrong.append(f"{name} missing")
        elif not _matches(payload[name], hints[name]):
            wrong.append(f"{name}={payload[name]!r} is not {hints[name]}")
    return wrong


def as_sdk_task(payload: dict[str, Any]) -> Any:
    """The payload parsed as the SDK parses ``tasks.get`` (its response casting)."""
    return construct_type(value=payload, type_=ContentGenerationTask)


def payloads(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.got]


def test_callbacks_parse_as_the_sdks_task(
    live_server: LiveServer, media_server: MediaServer
) -> None:
    key, secret = live_key_and_secret(live_server)
    ark = sdk(live_server, key)
    with receiver_server() as receiver:
        receiver.secret = secret
        try:
            done = ark.content_generation.tasks.create(
                model=FAST,
                content=[text("a lighthouse")],
                duration=4,
                resolution="480p",
                callback_url=receiver.url,
                return_last_frame=True,
                priority=4,
                safety_identifier="user-9",
            )
            failed = ark.content_generation.tasks.create(
                model=FAST,
                content=[
                    text("x"),
                    {"type": "image_url", "image_url": {"url": media_server.url("gone.png")}},
                ],
                duration=4,
                resolution="480p",
                callback_url=receiver.url,
            )
            assert wait_done(ark, done.id).status == "succeeded"
            assert wait_done(ark, failed.id).status == "failed"
        finally:
            ark.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = payloads(receiver)
            if {(p["id"], p["status"]) for p in got} >= {
                (done.id, "succeeded"),
                (failed.id, "failed"),
            }:
                break
            time.sleep(0.1)
    assert got, "no callback arrived"
    assert all(r.verified for r in receiver.got)
    for payload in got:
        task = as_sdk_task(payload)
        assert task.id in (done.id, failed.id) and task.status in (
            "queued",
            "running",
            "succeeded",
            "failed",
        )
        # Ark shows content and usage once a task has succeeded, and only then.
        unfinished = ("content", "usage") if payload["status"] != "succeeded" else ()
        assert _mismatches(payload, ContentGenerationTask, optional=unfinished) == [], payload
    final = next(p for p in got if p["id"] == done.id and p["status"] == "succeeded")
    parsed = as_sdk_task(final)
    assert parsed.content.video_url.startswith("http") and parsed.content.last_frame_url
    assert parsed.usage.completion_tokens > 0 and parsed.error is None
    assert (parsed.priority, parsed.safety_identifier) == (4, "user-9")
    assert (parsed.duration, parsed.framespersecond, parsed.frames) == (4, 24, 96)
    broken = next(p for p in got if p["id"] == failed.id)
    err = as_sdk_task(broken).error
    assert err.code == "InvalidParameter.ContentUnreachable" and "image 1" in err.message
