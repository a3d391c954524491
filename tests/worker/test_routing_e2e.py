"""Routes to real upstream protocols, end to end: the app and its worker against fake Ark
servers. Failover, capacity waits, the circuit breaker, callbacks and durable results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from clocks import FakeClock
from conftest import TEST_BASE
from engine_support import ark, ark2
from fakes import FakeArk, Fault
from fakes.server import sample_mp4, sample_png
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import GroupConfig, RouteConfig, Settings

MODEL = "doubao-seedance-2-0-fast-260128"
BODY: dict[str, Any] = {"model": MODEL, "prompt": "a fox", "duration": 4, "resolution": "480p"}


__all__ = ["ark", "ark2"]  # fixtures


# The slow tier (make test, not make test-fast): routing end to end against fake upstream servers.
pytestmark = pytest.mark.slow


def route(name: str, fake: FakeArk, **kw: Any) -> RouteConfig:
    values: dict[str, Any] = {
        "name": name,
        "model": MODEL,
        "provider": "ark",
        "base_url": fake.base_url,
        "api_key_env": f"KEY_{name.upper().replace('-', '_')}",
        "upstream_model": MODEL,
        "timeout_seconds": 5.0,
    }
    values.update(kw)
    return RouteConfig(**values)


class Harness:
    """The app on a fake clock: waiting moves the clock (poll delays, capacity waits and
    backoffs pass at once); real time passes only for real I/O with the fake upstreams."""

    def __init__(
        self, app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock
    ) -> None:
        self.app, self.client, self.auth, self.clock = app, client, auth, clock

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.state.api
        return state

    async def create(self, **extra: Any) -> str:
        r = await self.client.post("/v1/videos", json={**BODY, **extra}, headers=self.auth)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    async def until(self, check: Any, *, advance: bool = True, timeout: float = 30) -> None:
        """Until ``await check()`` is true, moving the fake clock half a second a round
        (unless not ``advance``: then only what happens without time passing counts)."""
        deadline = time.monotonic() + timeout
        while not await check():
            assert time.monotonic() < deadline, "the condition never came true"
            if advance:
                self.clock.advance(0.5)
            await asyncio.sleep(0.05)  # real I/O: the worker, the database, the fake upstream

    async def status(self, task_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/videos/{task_id}", headers=self.auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait(
        self, task_id: str, *statuses: str, advance: bool = True, timeout: float = 30
    ) -> dict[str, Any]:
        wanted = statuses or ("completed", "failed")
        last: dict[str, Any] = {}

        async def reached() -> bool:
            last.update(await self.status(task_id))
            return last["status"] in wanted

        await self.until(reached, advance=advance, timeout=timeout)
        return last

    async def attempts(self, task_id: str) -> list[tuple[str, str]]:
        rows = await self.state.ctx.store.attempts.for_task(task_id)
        return [(a.route, a.state) for a in rows]

    async def submitted(self, task_id: str) -> list[tuple[str, str]]:
        """The task's attempts once it was submitted, the clock standing still meanwhile."""

        async def done() -> bool:
            return any(state == "submitted" for _, state in await self.attempts(task_id))

        await self.until(done, advance=False)
        return await self.attempts(task_id)


@pytest.fixture
def harness_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build an app whose routes are given; yields a Harness."""

    @asynccontext
    async def make(
        *routes: RouteConfig, group: str = "default", **settings: Any
    ) -> AsyncIterator[Harness]:
        for r in routes:
            monkeypatch.setenv(r.api_key_env, "ark-test-key")
        values: dict[str, Any] = {
            "data_dir": tmp_path / "var",
            "public_url": TEST_BASE,
            "allow_private_urls": True,
            "worker_poll_interval": 0.05,
            "render_processes": 1,
            "key_cache_seconds": 0,
            "routes": routes,
            "groups": (GroupConfig(name="default"), GroupConfig(name="premium")),
        }
        values.update(settings)
        clock = FakeClock()
        app = create_app(Settings(**values), clock=clock)
        async with app.router.lifespan_context(app):
            key = (await create_key(app.state.api.ctx.store, group=group)).key
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
                yield Harness(app, client, {"Authorization": f"Bearer {key}"}, clock)

    return make


def asynccontext(fn: Any) -> Any:
    import contextlib

    return contextlib.asynccontextmanager(fn)


async def test_ark_route_end_to_end_with_a_durable_result(
    harness_factory: Any, ark: FakeArk
) -> None:
    async with harness_factory(route("volc", ark)) as h:
        task_id = await h.create(seed=42, return_last_frame=True, watermark=True)
        done = await h.wait(task_id)
        assert done["status"] == "completed", done
        # what the upstream received
        [create] = ark.requests_to("create")
        assert create.bearer == "ark-test-key"
        body = create.json
        assert body["model"] == MODEL and body["content"] == [{"type": "text", "text": "a fox"}]
        assert (body["duration"], body["resolution"], body["seed"]) == (4, "480p", 42)
        assert body["watermark"] is True and body["return_last_frame"] is True
        assert body["callback_url"].startswith(f"{TEST_BASE}/v1/callbacks/ark/")
        # the result is ours: our signed URL, the upstream's bytes, the upstream's usage
        assert str(done["video_url"]).startswith(f"{TEST_BASE}/files/results/")
        assert "X-Tos" not in str(done)
        video = await h.client.get(str(done["video_url"]))
        assert video.content == sample_mp4(True)
        frame = await h.client.get(str(done["last_frame_url"]))
        assert frame.status_code == 200 and frame.content == sample_png()
        upstream = ark.task_object(body_id(ark))
        assert done["usage"] == {"completion_tokens": upstream["usage"]["completion_tokens"]}
        assert await h.attempts(task_id) == [("volc", "submitted")]


async def _true(value: bool) -> bool:
    return value


def body_id(fake: FakeArk) -> str:
    return str(next(iter(fake.tasks)))


async def test_upstream_async_failure_keeps_its_code(harness_factory: Any, ark: FakeArk) -> None:
    ark.fail_next_tasks(
        1,
        "OutputVideoSensitiveContentDetected.PolicyViolation",
        "The request failed because the output video may be related to copyright restrictions.",
    )
    async with harness_factory(route("volc", ark)) as h:
        done = await h.wait(await h.create())
        assert done["status"] == "failed"
        assert done["error"]["code"] == "OutputVideoSensitiveContentDetected.PolicyViolation"
        assert "copyright" in done["error"]["message"]


async def test_failover_on_connect_error_429_and_5xx(
    harness_factory: Any, ark: FakeArk, ark2: FakeArk
) -> None:
    primary, backup = route("primary", ark, priority=0), route("backup", ark2, priority=1)
    async with harness_factory(primary, backup) as h:
        ark.go_offline()
        first = await h.create()
        assert (await h.wait(first))["status"] == "completed"
        assert await h.attempts(first) == [("primary", "failed"), ("backup", "submitted")]
        ark.go_online()
        for fault in (Fault.rate_limited(), Fault.server_error()):
            ark.inject(fault, on="create")
            task_id = await h.create()
            assert (await h.wait(task_id))["status"] == "completed"
            assert await h.attempts(task_id) == [("primary", "failed"), ("backup", "submitted")]
        # healthy again: the primary is used
        task_id = await h.create()
        assert (await h.wait(task_id))["status"] == "completed"
        assert await h.attempts(task_id) == [("primary", "submitted")]


async def test_a_request_error_does_not_fail_over(
    harness_factory: Any, ark: FakeArk, ark2: FakeArk
) -> None:
    ark.inject(Fault.error(400, "InvalidParameter", "the prompt is not allowed"), on="create")
    async with harness_factory(route("primary", ark), route("backup", ark2, priority=1)) as h:
        done = await h.wait(await h.create())
        assert done["status"] == "failed"
        assert done["error"]["code"] == "InvalidParameter"
        assert "the prompt is not allowed" in done["error"]["message"]
        assert ark2.requests_to("create") == []


async def test_tasks_wait_for_capacity_without_an_error(harness_factory: Any, ark: FakeArk) -> None:
    ark.set_schedule(auto_advance=False)
    async with harness_factory(route("volc", ark, max_in_flight=1)) as h:
        a, b = await h.create(), await h.create()
        # Both are claimed at once; whichever takes the one slot first runs.
        await h.until(lambda: _true(bool(ark.requests_to("create"))))
        store = h.state.ctx.store.tasks
        start = h.clock.now()

        async def waited_for_capacity_a_while() -> bool:
            """The other task came back to look several times (a capacity wait is 2 s)."""
            rows = [await store.get(t) for t in (a, b)]
            return h.clock.now() > start + 7 and all(r and r.lease_owner is None for r in rows)

        await h.until(waited_for_capacity_a_while)
        states = {t: (await h.status(t))["status"] for t in (a, b)}
        first, second = (a, b) if states[a] == "in_progress" else (b, a)
        assert states[first] == "in_progress", states
        waiting = await h.status(second)
        assert waiting["status"] == "queued" and waiting["error"] is None
        assert len(ark.requests_to("create")) == 1
        ark.complete(body_id(ark))
        assert (await h.wait(first))["status"] == "completed"
        await h.wait(second, "in_progress")
        assert len(ark.requests_to("create")) == 2


async def test_circuit_breaker_benches_a_failing_route_for_its_cooldown(
    harness_factory: Any, ark: FakeArk, ark2: FakeArk
) -> None:
    async with harness_factory(
        route("flaky", ark),
        route("steady", ark2, priority=1),
        breaker_failures=2,
        breaker_cooldown_seconds=60,
    ) as h:
        ark.inject(Fault.server_error(), on="create", times=2)  # then it recovers
        for _ in range(2):
            await h.wait(await h.create())
        third = await h.create()
        assert (await h.wait(third))["status"] == "completed"
        assert await h.attempts(third) == [("steady", "submitted")]  # flaky was skipped
        states = await h.state.ctx.store.route_state.all()
        benched_until = states["flaky"].benched_until
        assert benched_until is not None and benched_until > h.clock.now() + 30
        # Still benched until the cooldown ends; then it is tried again, and serves.
        h.clock.advance(benched_until - h.clock.now() - 1)
        fourth = await h.create()  # the route is chosen at submit: no time needs to pass
        assert await h.submitted(fourth) == [("steady", "submitted")]
        h.clock.advance(1)
        fifth = await h.create()
        assert await h.submitted(fifth) == [("flaky", "submitted")]
        assert (await h.state.ctx.store.route_state.all())["flaky"].benched_until is None


async def test_no_route_for_the_group(harness_factory: Any, ark: FakeArk) -> None:
    async with harness_factory(route("premium-only", ark, groups=("premium",))) as h:
        r = await h.client.post("/v1/videos", json=BODY, headers=h.auth)
        assert r.status_code == 503
        assert r.json()["error"] == {
            "code": "no_available_route",
            "message": f"No available route for model {MODEL} under group default",
            "param": None,
            "type": "server_error",
        }
        # another model stays on the sandbox
        r = await h.client.post("/v1/videos", json={**BODY, "model": "sandbox"}, headers=h.auth)
        assert r.status_code == 200


async def test_result_copy_failures(harness_factory: Any, ark: FakeArk) -> None:
    ark.set_schedule(auto_advance=False)
    async with harness_factory(route("volc", ark)) as h:
        task_id = await h.create()
        await h.wait(task_id, "in_progress")
        ark.inject(Fault.wrong_content_type(), on="result", times=None)
        ark.complete(body_id(ark))
        done = await h.wait(task_id)
        assert done["status"] == "failed"
        assert done["error"]["code"] == "result_invalid"


async def test_callback_makes_the_task_due_and_is_never_trusted(
    harness_factory: Any, ark: FakeArk
) -> None:
    ark.set_schedule(auto_advance=False)
    async with harness_factory(route("volc", ark)) as h:
        task_id = await h.create()
        await h.wait(task_id, "in_progress")
        callback_url = ark.requests_to("create")[0].json["callback_url"]
        path = callback_url.removeprefix(TEST_BASE)
        forged = {
            "id": body_id(ark),
            "status": "succeeded",
            "content": {"video_url": "http://evil.example/x.mp4"},
        }
        # "still running" (Ark's early callbacks): answered, the task not made due
        store = h.state.ctx.store.tasks
        due = (await store.get(task_id) or pytest.fail("no task")).next_run_at
        r = await h.client.post(path, json={"id": body_id(ark), "status": "running"})
        assert r.status_code == 200
        await store.hints_written()
        assert (await store.get(task_id) or pytest.fail("no task")).next_run_at == due != 0.0
        polls_before = len(ark.requests_to("get"))
        r = await h.client.post(path, json=forged)
        assert r.status_code == 200

        async def looked_upstream() -> bool:  # made due by the callback alone: no time passed
            row = await h.state.ctx.store.tasks.get(task_id)
            return len(ark.requests_to("get")) > polls_before and bool(row and not row.lease_owner)

        await h.until(looked_upstream, advance=False)
        still = await h.status(task_id)
        assert still["status"] == "in_progress"  # the body was not believed
        bad = await h.client.post(path[:-3] + "abc", json=forged)
        assert bad.status_code == 404
        # a real change upstream plus a callback: noticed at once, not at the next poll
        ark.complete(body_id(ark))
        polls_before = len(ark.requests_to("get"))
        await h.client.post(path, json={})
        done = await h.wait(task_id, advance=False)  # the clock stands still: no regular poll
        assert done["status"] == "completed"
        assert len(ark.requests_to("get")) > polls_before


async def test_cancel_reaches_the_upstream(harness_factory: Any, ark: FakeArk) -> None:
    ark.set_schedule(auto_advance=False)
    async with harness_factory(route("volc", ark)) as h:
        task_id = await h.create()
        await h.wait(task_id, "in_progress")
        r = await h.client.delete(f"/v1/videos/{task_id}", headers=h.auth)
        assert r.status_code == 200
        await h.until(lambda: _true(bool(ark.requests_to("delete"))))
        assert len(ark.requests_to("delete")) == 1
        assert ark.task(body_id(ark)).status == "cancelled"


async def test_references_reach_ark_in_order_with_roles(
    harness_factory: Any, ark: FakeArk, media_server: Any
) -> None:
    from media_factory import mp4_file, png_bytes, wav_file

    root = media_server.root
    (root / "a.png").write_bytes(png_bytes(640, 640))
    (root / "b.png").write_bytes(png_bytes(800, 600))
    mp4_file(root / "c.mp4", 3.0)
    wav_file(root / "d.wav", 3.0)
    urls = [media_server.url(n) for n in ("a.png", "b.png", "c.mp4", "d.wav")]
    prompt = "image 1 and image 2 in video 1 with audio 1"
    content: list[dict[str, Any]] = [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": urls[0]}, "role": "reference_image"},
        {"type": "image_url", "image_url": {"url": urls[1]}, "role": "reference_image"},
        {"type": "video_url", "video_url": {"url": urls[2]}, "role": "reference_video"},
        {"type": "audio_url", "audio_url": {"url": urls[3]}, "role": "reference_audio"},
    ]
    async with harness_factory(route("volc", ark)) as h:
        task_id = await h.create(prompt=prompt, content=content, ratio="1:1")
        assert (await h.wait(task_id))["status"] == "completed"
        body = ark.requests_to("create")[0].json
        assert body["content"] == content  # same items, same order, same roles, same URLs
        assert body["ratio"] == "1:1"


async def test_openai_relay_route_with_the_content_endpoint(
    harness_factory: Any, tmp_path: Path
) -> None:
    from fakes import FakeRelay

    # the harness puts "ark-test-key" in every route's api_key_env
    with FakeRelay(
        api_key="ark-test-key", url_field="none", queued_seconds=0.05, running_seconds=0.2
    ) as relay:
        relay_route = RouteConfig(
            name="relay",
            model=MODEL,
            provider="openai",
            base_url=relay.base_url,
            api_key_env="KEY_RELAY",
            upstream_model=MODEL,
            timeout_seconds=5.0,
        )
        async with harness_factory(relay_route) as h:
            done = await h.wait(await h.create())
            assert done["status"] == "completed", done
            [create] = relay.requests_to("create")
            assert create.json["model"] == MODEL and create.json["prompt"] == "a fox"
            assert create.bearer == "ark-test-key"
            video = await h.client.get(str(done["video_url"]))
            assert video.status_code == 200 and video.content[4:8] == b"ftyp"
