"""The Ark-native surface ``/api/v3/contents/generations/tasks`` (API.md §2), through the
ASGI app: create, get, list, delete, Ark's error envelope, and one task on every surface."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from conftest import MediaServer, wait_for_status
from media_factory import png_bytes
from videogate import errors as e
from videogate.api.app import create_app
from videogate.api.errors import ARK_ERRORS, ark_status_and_code
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.store.records import TaskChange
from videogate.store.tables import Task
from videogate.worker import Worker

FAST = "doubao-seedance-2-0-fast-260128"
TASKS = "/api/v3/contents/generations/tasks"

# Every optional field the Ark SDK's tasks.create sends, unset ones as null.
SDK_NULLS: dict[str, Any] = {
    name: None
    for name in (
        "safety_identifier",
        "callback_url",
        "return_last_frame",
        "service_tier",
        "execution_expires_after",
        "priority",
        "generate_audio",
        "draft",
        "camera_fixed",
        "watermark",
        "seed",
        "resolution",
        "ratio",
        "duration",
        "frames",
        "tools",
        "output_format",
        "omni_reference_task_type",
    )
}


# The slow tier (make test, not make test-fast): the Ark surface end to end with renders.
pytestmark = pytest.mark.slow


def text(prompt: str = "a red fox in snow") -> dict[str, str]:
    return {"type": "text", "text": prompt}


def ark_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        **SDK_NULLS,
        "model": FAST,
        "content": [text()],
        "duration": 4,
        "resolution": "480p",
    }
    body.update(fields)
    return body


async def ark_create(client: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> str:
    r = await client.post(TASKS, json=ark_body(**fields), headers=auth)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id"}
    task_id: str = r.json()["id"]
    return task_id


async def ark_wait(
    client: httpx.AsyncClient,
    task_id: str,
    auth: dict[str, str],
    statuses: tuple[str, ...] = ("succeeded", "failed", "expired", "cancelled"),
    timeout: float = 60.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get(f"{TASKS}/{task_id}", headers=auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not reach {statuses} in {timeout} s")


def assert_ark_error(r: httpx.Response, status: int, code: str, param: str | None = None) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "param", "type"}, err
    assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    assert isinstance(err["message"], str) and err["message"]
    message: str = err["message"]
    return message


def path_of(url: str) -> str:
    return url.split("?", 1)[0]


async def set_task(state: ApiState, task_id: str, **values: Any) -> None:
    """Put a task in a state directly (no worker will touch it: next_run_at is cleared)."""
    values.setdefault("next_run_at", None)
    async with state.ctx.store.engine.begin() as conn:
        await conn.execute(update(Task).where(Task.id == task_id).values(**values))


@pytest.fixture
async def idle_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app without its in-process worker: tasks stay queued until a test runs one."""
    application = create_app(settings, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def idle(idle_app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, ApiState]]:
    transport = httpx.ASGITransport(app=idle_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c, idle_app.state.api


async def finish(state: ApiState, task_id: str, status: str, code: str, message: str) -> None:
    """End a queued task the way the engine does (its hold is refunded in the same step)."""
    await set_task(state, task_id, lease_owner="test")
    now = time.time()
    assert await state.ctx.store.tasks.transition(
        task_id,
        "test",
        "queued",
        TaskChange(
            status=status,
            error_code=code,
            error_message=message,
            updated_at=now,
            completed_at=now,
        ),
    )


async def run_worker(state: ApiState) -> None:
    worker = Worker(state.ctx)
    try:
        await worker.run_until_idle()
    finally:
        await worker.close()


async def key_headers(state: ApiState) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await create_key(state.ctx.store)).key}"}


# -- create and get -----------------------------------------------------------------------


async def test_create_get_and_download(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    task_id = await ark_create(
        client,
        auth,
        ratio="9:16",
        generate_audio=False,
        return_last_frame=True,
        seed=1276,
        watermark=False,
    )
    done = await ark_wait(client, task_id, auth)
    assert done["status"] == "succeeded", done
    assert done["id"] == task_id and done["model"] == FAST and done["error"] is None
    assert done["ratio"] == "9:16" and done["resolution"] == "480p" and done["duration"] == 4
    assert done["framespersecond"] == 24 and done["generate_audio"] is False
    assert done["seed"] == 1276 and done["draft"] is False
    assert isinstance(done["created_at"], int) and done["updated_at"] >= done["created_at"]
    usage = done["usage"]
    assert usage["completion_tokens"] > 0 and usage["total_tokens"] == usage["completion_tokens"]
    assert done["billing_detail"]["state"] == "settled"
    video = await client.get(done["content"]["video_url"])  # signed: no auth header
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content), "r") as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (496, 864)
        assert float(stream.average_rate or 0) == 24.0 and not c.streams.audio
    frame = await client.get(done["content"]["last_frame_url"])
    assert frame.status_code == 200 and frame.content[:8] == b"\x89PNG\r\n\x1a\n"


async def test_statuses_before_and_while_running(
    idle: tuple[httpx.AsyncClient, ApiState],
) -> None:
    client, state = idle
    auth = await key_headers(state)
    task_id = await ark_create(client, auth)
    queued = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
    assert queued["status"] == "queued" and queued["error"] is None
    assert "content" not in queued and "usage" not in queued
    assert queued["billing_detail"]["state"] == "held"
    for ours in ("running", "fetching"):
        await set_task(state, task_id, status=ours)
        shown = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
        assert shown["status"] == "running", ours
    await set_task(state, task_id, status="queued")
    await finish(state, task_id, "expired", "expired", "late")
    shown = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
    assert shown["status"] == "expired" and shown["error"] == {
        "code": "TaskExpired",
        "message": "late (expired)",
    }
    assert shown["billing_detail"]["state"] == "refunded"


async def test_sdk_nulls_and_unused_ark_fields_are_accepted(
    idle: tuple[httpx.AsyncClient, ApiState],
) -> None:
    client, state = idle
    auth = await key_headers(state)
    # only model and content set, everything else null: Ark's defaults
    r = await client.post(
        TASKS, json={**SDK_NULLS, "model": FAST, "content": [text()]}, headers=auth
    )
    assert r.status_code == 200, r.text
    obj = (await client.get(f"{TASKS}/{r.json()['id']}", headers=auth)).json()
    assert (obj["ratio"], obj["resolution"], obj["duration"]) == ("16:9", "720p", 5)
    assert obj["generate_audio"] is True
    # known Ark fields that videogate accepts and does not use
    r = await client.post(
        TASKS,
        json=ark_body(
            service_tier="default",
            execution_expires_after=3600,
            priority=9,
            camera_fixed=False,
            draft=False,
            safety_identifier="user-7f3a",
            tools=[{"type": "web_search"}],
            output_format="mp4",
            omni_reference_task_type="auto",
            callback_url="http://127.0.0.1:9/hook",
            content=[{"type": "text", "text": "a fox", "role": None}],
        ),
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["safety_identifier"] == "user-7f3a"


BAD_BODIES: list[tuple[dict[str, Any], int, str, str]] = [
    ({"model": None}, 400, "MissingParameter", "model"),
    ({"model": ""}, 400, "MissingParameter", "model"),
    ({"model": "doubao-seedance-9"}, 404, "InvalidEndpointOrModel.NotFound", "model"),
    ({"content": None}, 400, "MissingParameter", "content"),
    ({"content": []}, 400, "MissingParameter", "content"),
    ({"content": "a fox"}, 400, "InvalidParameter", "content"),
    (
        {"content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
        400,
        "MissingParameter",
        "content",
    ),
    ({"content": [text(), {"type": "gif_url"}]}, 400, "InvalidParameter", "content[1].type"),
    (
        {"content": [text(), {"image_url": {"url": "x"}}]},
        400,
        "MissingParameter",
        "content[1].type",
    ),
    (
        {"content": [text(), {"type": "image_url", "image_url": {}}]},
        400,
        "MissingParameter",
        "content[1].image_url.url",
    ),
    (
        {
            "content": [
                text(),
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "role": "poster"},
            ]
        },
        400,
        "InvalidParameter",
        "content[1].role",
    ),
    (
        {"content": [text(), {"type": "draft_task", "draft_task": {"id": "cgt-1"}}]},
        400,
        "InvalidParameter.UnsupportedParameter",
        "content[1].type",
    ),
    ({"duration": "5"}, 400, "InvalidParameter", "duration"),
    ({"duration": 99}, 400, "InvalidParameter", "duration"),
    ({"resolution": "1080p"}, 400, "InvalidParameter", "resolution"),
    ({"ratio": "2:1"}, 400, "InvalidParameter", "ratio"),
    ({"seed": 2**32}, 400, "InvalidParameter", "seed"),
    ({"watermark": "no"}, 400, "InvalidParameter", "watermark"),
    ({"generate_audio": 1}, 400, "InvalidParameter", "generate_audio"),
    ({"frames": 121}, 400, "InvalidParameter.UnsupportedParameter", "frames"),
    ({"draft": True}, 400, "InvalidParameter", "draft"),
    ({"service_tier": "flex"}, 400, "InvalidParameter", "service_tier"),
    ({"service_tier": "gold"}, 400, "InvalidParameter", "service_tier"),
    ({"execution_expires_after": 60}, 400, "InvalidParameter", "execution_expires_after"),
    ({"priority": 10}, 400, "InvalidParameter", "priority"),
    ({"tools": [{"type": "code_interpreter"}]}, 400, "InvalidParameter", "tools[0].type"),
    ({"output_format": "mov"}, 400, "InvalidParameter", "output_format"),  # 2.0 fast: mp4
    ({"omni_reference_task_type": "edit"}, 400, "InvalidParameter", "omni_reference_task_type"),
    ({"callback_url": "ftp://example.com/x"}, 400, "InvalidParameter", "callback_url"),
    ({"prompt": "a fox"}, 400, "InvalidParameter", "prompt"),
    ({"aspect_ratio": "16:9"}, 400, "InvalidParameter", "aspect_ratio"),
]


@pytest.mark.parametrize(("fields", "status", "code", "param"), BAD_BODIES)
async def test_bad_bodies_are_ark_errors(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    fields: dict[str, Any],
    status: int,
    code: str,
    param: str,
) -> None:
    r = await client.post(TASKS, json=ark_body(**fields), headers=auth)
    message = assert_ark_error(r, status, code, param)
    assert param.split("[")[0].split(".")[0] in message, message
    assert r.json()["error"]["type"] == ("NotFound" if status == 404 else "BadRequest")


async def test_unparseable_bodies(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for raw in (b"{not json", b"[1, 2]", b""):
        r = await client.post(
            TASKS, content=raw, headers={**auth, "Content-Type": "application/json"}
        )
        assert_ark_error(r, 400, "InvalidParameter")


async def test_reference_limits_and_role_defaults(
    client: httpx.AsyncClient, auth: dict[str, str], media_server: MediaServer
) -> None:
    (media_server.root / "tiny.png").write_bytes(png_bytes(100, 100))
    (media_server.root / "square.png").write_bytes(png_bytes(640, 640))
    tiny = {"type": "image_url", "image_url": {"url": media_server.url("tiny.png")}}
    r = await client.post(TASKS, json=ark_body(content=[text(), tiny]), headers=auth)
    message = assert_ark_error(r, 400, "InvalidParameter", "content")
    assert "image 1: 100x100 px" in message  # the native surface's wording
    # one image without a role is the first frame, and the ratio then defaults to adaptive
    square = {"type": "image_url", "image_url": {"url": media_server.url("square.png")}}
    task_id = await ark_create(client, auth, content=[text(), square])
    done = await ark_wait(client, task_id, auth)
    assert done["status"] == "succeeded" and done["ratio"] == "1:1", done


# -- errors --------------------------------------------------------------------------------


async def test_auth_and_routing_errors_use_arks_envelope(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for method, path in [
        ("POST", TASKS),
        ("GET", TASKS),
        ("GET", f"{TASKS}/video_x"),
        ("DELETE", f"{TASKS}/video_x"),
    ]:
        for headers in ({}, {"Authorization": "Bearer vg-nope"}):
            r = await client.request(method, path, headers=headers, json=ark_body())
            assert_ark_error(r, 401, "AuthenticationError")
            assert r.json()["error"]["type"] == "Unauthorized"
    r = await client.get(f"{TASKS}/video_missing", headers=auth)
    assert_ark_error(r, 404, "ResourceNotFound")
    r = await client.get("/api/v3/contents/generations/nothing", headers=auth)
    assert_ark_error(r, 404, "ResourceNotFound")
    r = await client.put(TASKS, headers=auth)
    assert_ark_error(r, 405, "MethodNotAllowed")
    # the native surface keeps its own codes
    r = await client.get("/v1/videos/video_missing", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/v1/videos")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_every_typed_error_has_an_ark_code() -> None:
    expected = {
        e.InvalidRequest("x"): (400, "InvalidParameter"),
        e.UnsafeURL("x"): (400, "InvalidParameter"),
        e.AuthenticationFailed("x"): (401, "AuthenticationError"),
        e.InsufficientBalance("x"): (403, "AccountOverdueError"),
        e.PermissionDenied("x"): (403, "AccessDenied"),
        e.ModelNotFound("x"): (404, "InvalidEndpointOrModel.NotFound"),
        e.NotFound("x"): (404, "ResourceNotFound"),
        e.RateLimited("x"): (429, "RateLimitExceeded"),
        e.NoAvailableRoute("x"): (503, "ServiceUnavailable"),
        e.UpstreamError("x"): (502, "InternalServiceError"),
        e.VideogateError("x"): (500, "InternalServiceError"),
        # an Ark-style code raised on purpose is kept
        e.InvalidRequest("x", code="MissingParameter"): (400, "MissingParameter"),
        e.UpstreamError("x", code="InputTextSensitiveContentDetected"): (
            502,
            "InputTextSensitiveContentDetected",
        ),
    }
    for exc, want in expected.items():
        assert ark_status_and_code(exc) == want, exc
    assert ARK_ERRORS[-1][0] is e.VideogateError  # the catch-all comes last


async def test_rate_limit_keeps_retry_after(idle_app: FastAPI) -> None:
    from videogate.api.errors import videogate_error_response

    r = videogate_error_response(e.RateLimited("slow down", retry_after=7), ark=True)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert b'"RateLimitExceeded"' in bytes(r.body) and b'"TooManyRequests"' in bytes(r.body)


# -- list ----------------------------------------------------------------------------------


async def test_list_filters_and_pages(idle: tuple[httpx.AsyncClient, ApiState]) -> None:
    client, state = idle
    auth = await key_headers(state)
    done_ids = [await ark_create(client, auth, content=[text(f"clip {i}")]) for i in range(3)]
    await run_worker(state)
    sandbox_id = await ark_create(client, auth, model="sandbox")
    running_id = await ark_create(client, auth)
    await set_task(state, running_id, status="fetching")
    newest_first = [running_id, sandbox_id, *done_ids[::-1]]

    async def listed(query: str) -> dict[str, Any]:
        r = await client.get(f"{TASKS}?{query}", headers=auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert set(body) == {"total", "items"}
        return body

    everything = await listed("")
    assert everything["total"] == 5 and [t["id"] for t in everything["items"]] == newest_first
    pages = [await listed(f"page_num={n}&page_size=2") for n in (1, 2, 3, 4)]
    assert [[t["id"] for t in p["items"]] for p in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    assert all(p["total"] == 5 for p in pages)
    succeeded = await listed("filter.status=succeeded")
    assert succeeded["total"] == 3 and {t["status"] for t in succeeded["items"]} == {"succeeded"}
    assert all(t["content"]["video_url"] for t in succeeded["items"])
    running = await listed("filter.status=running")
    assert [t["id"] for t in running["items"]] == [running_id]
    assert running["items"][0]["status"] == "running"
    queued = await listed("filter.status=queued")
    assert [t["id"] for t in queued["items"]] == [sandbox_id]
    assert (await listed("filter.status=cancelled"))["total"] == 0
    by_ids = await listed(f"filter.task_ids={done_ids[0]}&filter.task_ids={sandbox_id}")
    assert [t["id"] for t in by_ids["items"]] == [sandbox_id, done_ids[0]]
    by_model = await listed("filter.model=sandbox")
    assert [t["id"] for t in by_model["items"]] == [sandbox_id]
    combined = await listed(
        f"filter.model={FAST}&filter.status=succeeded&filter.task_ids={done_ids[1]}"
        f"&filter.task_ids={running_id}"
    )
    assert [t["id"] for t in combined["items"]] == [done_ids[1]]
    assert (await listed("filter.service_tier=default"))["total"] == 5
    assert (await listed("filter.service_tier=flex"))["total"] == 0
    # another key sees none of them
    other = await key_headers(state)
    r = await client.get(TASKS, headers=other)
    assert r.json() == {"total": 0, "items": []}
    for bad, param in [
        ("page_num=0", "page_num"),
        ("page_num=501", "page_num"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("page_size=ten", "page_size"),
        ("filter.status=done", "filter.status"),
        ("filter.status=in_progress", "filter.status"),
        ("filter.service_tier=gold", "filter.service_tier"),
    ]:
        r = await client.get(f"{TASKS}?{bad}", headers=auth)
        assert_ark_error(r, 400, "InvalidParameter", param)
    assert (await listed("page_num=500&page_size=500"))["items"] == []


# -- delete --------------------------------------------------------------------------------


async def test_delete_follows_arks_rules(idle: tuple[httpx.AsyncClient, ApiState]) -> None:
    client, state = idle
    auth = await key_headers(state)
    # (with a callback_url: its webhook events go with it)
    succeeded = await ark_create(
        client, auth, return_last_frame=True, callback_url="http://127.0.0.1:9/hook"
    )
    await run_worker(state)
    queued, running, fetching, failed, expired = [await ark_create(client, auth) for _ in range(5)]
    await set_task(state, running, status="running")
    await set_task(state, fetching, status="fetching")
    await finish(state, failed, "failed", "upstream_error", "the upstream refused")
    await finish(state, expired, "expired", "expired", "late")

    # queued -> cancelled; then it cannot be deleted, and reads failed/cancelled natively
    r = await client.delete(f"{TASKS}/{queued}", headers=auth)
    assert r.status_code == 200 and r.json() == {}
    shown = (await client.get(f"{TASKS}/{queued}", headers=auth)).json()
    assert shown["status"] == "cancelled" and shown["billing_detail"]["state"] == "refunded"
    native = (await client.get(f"/v1/videos/{queued}", headers=auth)).json()
    assert native["status"] == "failed" and native["error"]["code"] == "cancelled"
    r = await client.delete(f"{TASKS}/{queued}", headers=auth)
    assert "cancelled" in assert_ark_error(r, 400, "InvalidParameter")

    # running (and fetching, which reads running) -> refused, unchanged
    for task_id in (running, fetching):
        r = await client.delete(f"{TASKS}/{task_id}", headers=auth)
        message = assert_ark_error(r, 400, "InvalidParameter")
        assert "running" in message and "cannot be cancelled" in message
        shown = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
        assert shown["status"] == "running"

    # succeeded, failed, expired -> deleted from every surface, with the media
    done = (await client.get(f"{TASKS}/{succeeded}", headers=auth)).json()
    video_url, frame_url = done["content"]["video_url"], done["content"]["last_frame_url"]
    assert (await client.get(video_url)).status_code == 200
    for task_id in (succeeded, failed, expired):
        r = await client.delete(f"{TASKS}/{task_id}", headers=auth)
        assert r.status_code == 200 and r.json() == {}, r.text
        assert_ark_error(
            await client.get(f"{TASKS}/{task_id}", headers=auth), 404, "ResourceNotFound"
        )
        r = await client.get(f"/v1/videos/{task_id}", headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await client.delete(f"{TASKS}/{task_id}", headers=auth)
        assert_ark_error(r, 404, "ResourceNotFound")
    assert (await client.get(video_url)).status_code == 410
    assert (await client.get(frame_url)).status_code == 410
    remaining = (await client.get(TASKS, headers=auth)).json()
    assert {t["id"] for t in remaining["items"]} == {queued, running, fetching}


async def test_delete_of_another_keys_task_is_404(
    idle: tuple[httpx.AsyncClient, ApiState],
) -> None:
    client, state = idle
    auth, other = await key_headers(state), await key_headers(state)
    task_id = await ark_create(client, auth)
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"{TASKS}/{task_id}", headers=other)
        assert_ark_error(r, 404, "ResourceNotFound")
    shown = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
    assert shown["status"] == "queued"


# -- one task, every surface ---------------------------------------------------------------


async def test_tasks_are_the_same_on_both_surfaces(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/videos",
        json={"model": FAST, "prompt": "native", "duration": 4, "resolution": "480p"},
        headers=auth,
    )
    native_id = r.json()["id"]
    ark_id = await ark_create(client, auth, return_last_frame=True)
    listed = (await client.get(f"{TASKS}?filter.task_ids={native_id}", headers=auth)).json()
    assert [t["id"] for t in listed["items"]] == [native_id]
    native_list = (await client.get("/v1/videos", headers=auth)).json()
    assert {t["id"] for t in native_list["data"]} == {native_id, ark_id}
    for task_id in (native_id, ark_id):
        native: dict[str, Any] = await wait_for_status(client, task_id, auth)
        ark = (await client.get(f"{TASKS}/{task_id}", headers=auth)).json()
        assert native["status"] == "completed" and ark["status"] == "succeeded"
        assert path_of(native["video_url"]) == path_of(ark["content"]["video_url"])
        if native["last_frame_url"] is None:
            assert ark["content"]["last_frame_url"] is None
        else:
            assert path_of(native["last_frame_url"]) == path_of(ark["content"]["last_frame_url"])
        assert native["usage"]["completion_tokens"] == ark["usage"]["completion_tokens"]
        assert native["billing_detail"] == ark["billing_detail"]
        assert (native["ratio"], native["resolution"], native["duration"], native["seed"]) == (
            ark["ratio"],
            ark["resolution"],
            ark["duration"],
            ark["seed"],
        )
    # a native (OpenAI) delete removes the task from both surfaces
    await client.delete(f"/v1/videos/{native_id}", headers=auth)
    r = await client.get(f"{TASKS}/{native_id}", headers=auth)
    assert r.status_code == 404


# -- fuzz ----------------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_item = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "video_url", "audio_url", "draft_task", "x"])},
    optional={
        "text": _json,
        "image_url": st.fixed_dictionaries({"url": _json}) | _json,
        "video_url": st.fixed_dictionaries({"url": _json}) | _json,
        "audio_url": _json,
        "role": st.sampled_from(["first_frame", "reference_image", "last_frame", "x"]) | _json,
    },
)
_fields = st.sampled_from([*SDK_NULLS, "model", "content", "x"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(_fields, _json, max_size=6),
    content=st.lists(_item, max_size=3) | _json,
    model=st.sampled_from([FAST, "sandbox", "nope"]) | _json,
)
async def test_random_bodies_never_500(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any], content: Any, model: Any
) -> None:
    r = await client.post(TASKS, json={"model": model, "content": content, **body}, headers=auth)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"code", "message", "param", "type"}
        assert r.json()["error"]["code"][:1].isupper(), r.text
