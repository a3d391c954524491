"""The fake upstreams themselves (tests/fakes), exercised with plain httpx."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import pytest

from fakes import (
    FakeArk,
    FakeRelay,
    Fault,
    model_family,
    read_mp4_tag,
    sample_mp4,
    sample_png,
    tag_mp4,
)
from fakes.relay import UrlField

V2 = "doubao-seedance-2-0-260128"
V2_FAST = "doubao-seedance-2-0-fast-260128"
TASKS = "/contents/generations/tasks"
PNG_DATA = "data:image/png;base64,iVBORw0KGgo="


# The slow tier (make test, not make test-fast): the fake upstream servers, live.
pytestmark = pytest.mark.slow


def text(prompt: str = "a cat") -> dict[str, Any]:
    return {"type": "text", "text": prompt}


def image(url: str = "https://example.com/a.png", role: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def video(url: str = "https://example.com/v.mp4") -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}


def audio(url: str = "https://example.com/a.mp3") -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": url}, "role": "reference_audio"}


# ---- fixtures -------------------------------------------------------------------------------


# One started fake of each kind for the whole module; ``reset()`` before each test puts it
# back to just-constructed (tasks, records, faults, clock and settings).


@pytest.fixture(scope="module")
def shared_ark() -> Iterator[FakeArk]:
    with FakeArk() as fake:
        yield fake


@pytest.fixture(scope="module")
def shared_relay() -> Iterator[FakeRelay]:
    with FakeRelay() as fake:
        yield fake


@pytest.fixture
def ark(shared_ark: FakeArk) -> Iterator[FakeArk]:
    shared_ark.reset()
    shared_ark.auto_advance = False
    yield shared_ark
    assert shared_ark.internal_errors == []


@pytest.fixture
def ac(ark: FakeArk) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ark.api_key}"}
    with httpx.Client(base_url=ark.base_url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
def relay(shared_relay: FakeRelay) -> Iterator[FakeRelay]:
    shared_relay.reset()
    shared_relay.auto_advance = False
    yield shared_relay
    assert shared_relay.internal_errors == []


@pytest.fixture
def rc(relay: FakeRelay) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    with httpx.Client(base_url=relay.base_url, headers=headers, timeout=5) as client:
        yield client


def create(client: httpx.Client, **fields: Any) -> str:
    body = {"model": V2, "content": [text()], **fields}
    r = client.post(TASKS, json=body)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    return task_id


class Receiver:
    """A callback receiver on loopback; answers ``fail_first`` POSTs with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                code = 500 if receiver.fail_first > 0 else 200
                receiver.fail_first -= 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# ---- Ark: create / get / results ------------------------------------------------------------


def test_ark_create_stores_body_and_get_shows_documented_object(
    ark: FakeArk, ac: httpx.Client
) -> None:
    body = {
        "model": V2,
        "content": [text("image 1 walks"), image(PNG_DATA, "reference_image"), video(), audio()],
        "ratio": "9:16",
        "resolution": "480p",
        "duration": 4,
        "seed": 42,
        "watermark": False,
        "generate_audio": False,
        "callback_url": None,  # the SDK sends unset fields as null
        "priority": 3,
    }
    r = ac.post(TASKS, json=body)
    assert r.status_code == 200
    assert r.headers["x-request-id"]
    task_id = r.json()["id"]
    assert r.json() == {"id": task_id}
    assert task_id.startswith("cgt-") and len(task_id) == len("cgt-20260514183217-t8rzv")

    assert ark.tasks[task_id].body == body
    create_rec = ark.requests_to("create")[0]
    assert create_rec.json == body
    assert create_rec.bearer == ark.api_key
    assert create_rec.headers["authorization"] == f"Bearer {ark.api_key}"

    obj = ac.get(f"{TASKS}/{task_id}").json()
    assert obj["status"] == "queued" and obj["error"] is None
    assert "content" not in obj and "usage" not in obj
    assert obj["seed"] == 42 and obj["ratio"] == "9:16" and obj["resolution"] == "480p"
    assert obj["duration"] == 4 and obj["framespersecond"] == 24
    assert obj["generate_audio"] is False and obj["draft"] is False
    assert obj["service_tier"] == "default" and obj["execution_expires_after"] == 172800
    assert obj["priority"] == 3

    ark.complete(task_id)
    obj = ac.get(f"{TASKS}/{task_id}").json()
    assert obj["status"] == "succeeded"
    # 496×864 × (24 × (4 + 5 s reference video) + 1) / 1024
    assert obj["usage"]["completion_tokens"] == 496 * 864 * (24 * 9 + 1) // 1024
    assert obj["usage"]["total_tokens"] == obj["usage"]["completion_tokens"]
    assert "X-Tos-Expires=86400" in obj["content"]["video_url"]
    assert "last_frame_url" not in obj["content"]
    assert obj["updated_at"] >= obj["created_at"]


def test_ark_usage_matches_observed_numbers(ark: FakeArk, ac: httpx.Client) -> None:
    five = create(ac, resolution="720p", ratio="16:9", duration=5)
    four = create(ac, resolution="720p", ratio="16:9", duration=4)
    auto = create(ac, duration=-1)
    for task_id in (five, four, auto):
        ark.complete(task_id)
    assert ark.task_object(five)["usage"]["completion_tokens"] == 108_900
    assert ark.task_object(four)["usage"]["completion_tokens"] == 87_300
    assert ark.task_object(auto)["duration"] == ark.auto_duration


def test_ark_result_downloads(ark: FakeArk, ac: httpx.Client) -> None:
    task_id = create(ac, return_last_frame=True)
    ark.complete(task_id)
    content = ac.get(f"{TASKS}/{task_id}").json()["content"]

    r = httpx.get(content["video_url"])  # no auth header needed
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(r.content)) as container:
        kinds = sorted(s.type for s in container.streams)
    assert kinds == ["audio", "video"]
    assert ark.requests_to("result")[0].headers.get("authorization") is None

    png = httpx.get(content["last_frame_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == sample_png()

    assert httpx.head(content["video_url"]).status_code == 403
    part = httpx.get(content["video_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    tampered = content["video_url"].replace("X-Tos-Expires=86400", "X-Tos-Expires=99999")
    bad = httpx.get(tampered)
    assert bad.status_code == 403 and b"SignatureDoesNotMatch" in bad.content

    ark.advance(86_401)
    expired = httpx.get(content["video_url"])
    assert expired.status_code == 403 and b"AccessDenied" in expired.content


def test_ark_silent_video_and_override_urls(ark: FakeArk, ac: httpx.Client) -> None:
    silent = create(ac, generate_audio=False)
    ark.complete(silent)
    data = httpx.get(ark.task_object(silent)["content"]["video_url"]).content
    assert data == sample_mp4(False)

    other = create(ac)
    ark.complete(other, video_url="http://127.0.0.1:9/dead.mp4")
    assert ark.task_object(other)["content"]["video_url"] == "http://127.0.0.1:9/dead.mp4"


def test_ark_auth(ark: FakeArk) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ark.api_key}):
        r = httpx.post(ark.base_url + TASKS, json={"model": V2}, headers=headers)
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["code"] == "AuthenticationError" and err["type"] == "Unauthorized"
        assert set(err) == {"code", "message", "param", "type"}
    assert [r.headers.get("authorization") for r in ark.requests] == [
        None,
        "Bearer wrong",
        "ark-test-key",
    ]
    assert ark.tasks == {}


BAD_CREATES: list[tuple[dict[str, Any], int, str, str]] = [
    ({"content": [text()]}, 400, "MissingParameter", "model"),
    (
        {"model": "doubao-seedance-2-0", "content": [text()]},
        404,
        "InvalidEndpointOrModel.NotFound",
        "model",
    ),
    ({"model": V2}, 400, "MissingParameter", "content"),
    ({"model": V2, "content": "hi"}, 400, "InvalidParameter", "content"),
    ({"model": V2, "content": [{"type": "gif"}]}, 400, "InvalidParameter", "content[0].type"),
    (
        {"model": V2, "content": [text(), image(role="hero")]},
        400,
        "InvalidParameter",
        "content[1].role",
    ),
    (
        {"model": V2, "content": [image(url="ftp://x")]},
        400,
        "InvalidParameter",
        "content[0].image_url.url",
    ),
    (
        {"model": V2, "content": [text(), image(), image()]},
        400,
        "InvalidParameter",
        "content[1].role",
    ),
    (
        {"model": V2, "content": [text(), image(role="last_frame")]},
        400,
        "InvalidParameter",
        "content",
    ),
    (
        {"model": V2, "content": [image(role="first_frame"), image(role="reference_image")]},
        400,
        "InvalidParameter",
        "content",
    ),
    ({"model": V2, "content": [text(), audio()]}, 400, "InvalidParameter", "content"),
    ({"model": V2, "content": [text(), *[video()] * 4]}, 400, "InvalidParameter", "content"),
    (
        {"model": V2, "content": [text(), *[image(role="reference_image")] * 10]},
        400,
        "InvalidParameter",
        "content",
    ),
    (
        {"model": "doubao-seedance-1-5-pro-251215", "content": [text(), video()]},
        400,
        "InvalidParameter",
        "content[1]",
    ),
    ({"model": V2, "content": [text()], "duration": 3}, 400, "InvalidParameter", "duration"),
    ({"model": V2, "content": [text()], "duration": 16}, 400, "InvalidParameter", "duration"),
    ({"model": V2, "content": [text()], "duration": 5.5}, 400, "InvalidParameter", "duration"),
    (
        {"model": "doubao-seedance-1-5-pro-251215", "content": [text()], "duration": 13},
        400,
        "InvalidParameter",
        "duration",
    ),
    (
        {"model": V2_FAST, "content": [text()], "resolution": "1080p"},
        400,
        "InvalidParameter",
        "resolution",
    ),
    ({"model": V2, "content": [text()], "resolution": "4k"}, 400, "InvalidParameter", "resolution"),
    ({"model": V2, "content": [text()], "ratio": "2:1"}, 400, "InvalidParameter", "ratio"),
    ({"model": V2, "content": [text()], "seed": 2**32}, 400, "InvalidParameter", "seed"),
    ({"model": V2, "content": [text()], "watermark": "no"}, 400, "InvalidParameter", "watermark"),
    (
        {"model": V2, "content": [text()], "service_tier": "flex"},
        400,
        "InvalidParameter",
        "service_tier",
    ),
    (
        {"model": V2, "content": [text()], "frames": 29},
        400,
        "InvalidParameter.UnsupportedParameter",
        "frames",
    ),
    (
        {"model": V2, "content": [text()], "execution_expires_after": 60},
        400,
        "InvalidParameter",
        "execution_expires_after",
    ),
    (
        {"model": V2, "content": [text()], "callback_url": "ftp://x"},
        400,
        "InvalidParameter",
        "callback_url",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), BAD_CREATES)
def test_ark_validation(
    ark: FakeArk, ac: httpx.Client, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    r = ac.post(TASKS, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param)
    assert "Request id: " in err["message"]
    assert ark.tasks == {}


def test_ark_validation_accepts_documented_shapes(ark: FakeArk, ac: httpx.Client) -> None:
    ok: list[dict[str, Any]] = [
        {"content": [image(PNG_DATA)]},  # one image without role: first frame
        {"content": [text(), image(role="first_frame"), image(role="last_frame")]},
        {"content": [text(), *[image(role="reference_image")] * 9, *[video()] * 3, audio()]},
        {"content": [text(), video(), audio()], "duration": -1, "ratio": "adaptive"},
        {"content": [text()], "duration": 15, "resolution": "1080p", "seed": -1},
        {"model": V2_FAST, "content": [text()], "resolution": "720p", "duration": 4},
        {
            "model": "dreamina-seedance-2-0-260128",
            "content": [text()],
            "tools": [{"type": "web_search"}],
        },
    ]
    for extra in ok:
        r = ac.post(TASKS, json={"model": V2, **extra})
        assert r.status_code == 200, (extra, r.text)
    first_id = next(iter(ark.tasks))  # the lone image: first frame, ratio adaptive
    assert ark.tasks[first_id].ratio == "adaptive"
    assert ark.task_object(first_id)["ratio"] == "16:9"  # reported as the resolved ratio
    bad = ac.post(TASKS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameter"


def test_model_family() -> None:
    assert model_family("dreamina-seedance-2-0-fast-260128") == "2.0-fast"
    assert model_family("seedance-1-5-pro-251215") == "1.5"
    assert model_family("doubao-seedance-1-0-pro-250528") == "1.0"
    assert model_family("ep-20260101000000-abcde") == "2.0"


def test_ark_queued_cap(ac: httpx.Client, ark: FakeArk) -> None:
    ark.max_queued = 2
    first = create(ac)
    create(ac)
    r = ac.post(TASKS, json={"model": V2, "content": [text()]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "QuotaExceeded"
    ark.set_status(first, "running")  # running tasks do not count
    assert ac.post(TASKS, json={"model": V2, "content": [text()]}).status_code == 200


# ---- Ark: list / delete ---------------------------------------------------------------------


def test_ark_list(ark: FakeArk, ac: httpx.Client) -> None:
    ids = [create(ac) for _ in range(3)]
    fast = create(ac, model=V2_FAST)
    ark.complete(ids[0])
    page = ac.get(TASKS).json()
    assert page["total"] == 4
    assert [t["id"] for t in page["items"]] == [fast, ids[2], ids[1], ids[0]]  # newest first

    page = ac.get(TASKS, params={"page_num": 2, "page_size": 3}).json()
    assert page["total"] == 4 and [t["id"] for t in page["items"]] == [ids[0]]
    assert ac.get(TASKS, params={"filter.status": "succeeded"}).json()["total"] == 1
    assert ac.get(TASKS, params={"filter.model": V2_FAST}).json()["items"][0]["id"] == fast
    picked = ac.get(TASKS, params=[("filter.task_ids", ids[0]), ("filter.task_ids", ids[1])])
    assert {t["id"] for t in picked.json()["items"]} == {ids[0], ids[1]}
    assert ark.requests_to("list")[-1].query_values("filter.task_ids") == ids[:2]

    for params in ({"page_size": 0}, {"page_size": 501}, {"page_num": "x"}, {"filter.status": "x"}):
        r = ac.get(TASKS, params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter"


def test_ark_delete_semantics(ark: FakeArk, ac: httpx.Client, receiver: Receiver) -> None:
    queued = create(ac, callback_url=receiver.url)
    r = ac.delete(f"{TASKS}/{queued}")
    assert r.status_code == 200 and r.json() == {}
    assert ac.get(f"{TASKS}/{queued}").json()["status"] == "cancelled"
    again = ac.delete(f"{TASKS}/{queued}")
    assert again.status_code == 400 and again.json()["error"]["param"] == "id"

    running = create(ac)
    ark.set_status(running, "running")
    refused = ac.delete(f"{TASKS}/{running}")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidParameter"
    assert ark.task(running).status == "running"

    for finish in (ark.complete, lambda t: ark.fail(t, "X", "y"), ark.expire):
        task_id = create(ac)
        finish(task_id)
        assert ac.delete(f"{TASKS}/{task_id}").status_code == 200
        gone = ac.get(f"{TASKS}/{task_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"
        assert task_id in ark.deleted_tasks and task_id not in ark.tasks

    assert ac.delete(f"{TASKS}/cgt-20260101000000-nope0").status_code == 404
    assert ark.wait_for_callbacks()
    assert [c.status for c in ark.callbacks] == ["queued"]  # no callback for cancelled


# ---- Ark: schedule and forced transitions ---------------------------------------------------


def test_ark_forced_transitions_stay_put(ark: FakeArk, ac: httpx.Client) -> None:
    a, b, c, d = (create(ac) for _ in range(4))
    ark.fail(a, "OutputVideoSensitiveContentDetected.PolicyViolation", "copyright")
    ark.expire(b)
    ark.set_status(c, "not_start")
    ark.expire(d, "TaskExpired", "too slow")
    ark.advance(10_000)
    got = {t: ac.get(f"{TASKS}/{t}").json() for t in (a, b, c, d)}
    assert got[a]["status"] == "failed"
    assert got[a]["error"] == {
        "code": "OutputVideoSensitiveContentDetected.PolicyViolation",
        "message": "copyright",
    }
    assert got[b]["status"] == "expired" and got[b]["error"] is None
    assert got[c]["status"] == "not_start"
    assert got[d]["error"] == {"code": "TaskExpired", "message": "too slow"}
    with pytest.raises(KeyError):
        ark.complete("cgt-unknown")


def test_ark_schedule_on_the_fake_clock(ark: FakeArk, ac: httpx.Client) -> None:
    ark.set_schedule(queued_seconds=10, running_seconds=20, auto_advance=True)
    task_id = create(ac)
    created = ark.task(task_id).created_at
    assert ac.get(f"{TASKS}/{task_id}").json()["status"] == "queued"
    ark.advance(10)
    assert ac.get(f"{TASKS}/{task_id}").json()["status"] == "running"
    ark.advance(19)
    assert ac.get(f"{TASKS}/{task_id}").json()["status"] == "running"
    ark.advance(1)
    obj = ac.get(f"{TASKS}/{task_id}").json()
    assert obj["status"] == "succeeded" and obj["updated_at"] == int(created + 30)

    held = create(ac)
    ark.set_status(held, "running")  # hold=True by default
    ark.advance(100)
    assert ark.task(held).status == "running"
    ark.resume(held)
    ark.advance(20)
    assert ark.task(held).status == "succeeded"


def test_ark_schedule_in_real_time_and_max_running(ac: httpx.Client, ark: FakeArk) -> None:
    ark.set_schedule(queued_seconds=0.05, running_seconds=0.5, max_running=1, auto_advance=True)
    first, second = create(ac), create(ac)
    ark.wait_for_status(first, "running")
    time.sleep(0.15)
    assert ark.task(second).status == "queued"  # waiting for the running slot
    ark.wait_for_status(first, "succeeded")
    ark.wait_for_status(second, "running")


def test_ark_scripted_outcomes_and_execution_expiry(ark: FakeArk, ac: httpx.Client) -> None:
    ark.set_schedule(queued_seconds=1, running_seconds=1, auto_advance=True)
    ark.fail_next_tasks(1, "InputTextSensitiveContentDetected", "nope")
    ark.expire_next_tasks(1)
    failed, expired, fine = create(ac), create(ac), create(ac)
    ark.advance(2)
    assert ark.task_object(failed)["error"]["code"] == "InputTextSensitiveContentDetected"
    assert ark.task(expired).status == "expired"
    assert ark.task(fine).status == "succeeded"

    ark.set_schedule(queued_seconds=99_999)
    slow = create(ac, execution_expires_after=3600)
    ark.advance(3599)
    assert ark.task(slow).status == "queued"
    ark.advance(1)
    obj = ark.task_object(slow)
    assert obj["status"] == "expired"
    assert obj["updated_at"] == obj["created_at"] + 3600


# ---- Ark: callbacks -------------------------------------------------------------------------


def test_ark_callbacks_on_each_status_change(
    ark: FakeArk, ac: httpx.Client, receiver: Receiver
) -> None:
    task_id = create(ac, callback_url=receiver.url)
    ark.set_status(task_id, "running")
    ark.complete(task_id)
    assert ark.wait_for_callbacks()
    assert [b["status"] for b in receiver.bodies] == ["queued", "running", "succeeded"]
    assert receiver.bodies[-1] == ark.task_object(task_id)
    assert all(c.response_status == 200 and c.attempt == 1 for c in ark.callbacks)
    assert {c.url for c in ark.callbacks} == {receiver.url}


def test_ark_callbacks_retry_terminal_only(ark: FakeArk, ac: httpx.Client) -> None:
    ark.callback_retry_delay = 0.01
    flaky = Receiver(fail_first=3)
    try:
        task_id = create(ac, callback_url=flaky.url)  # queued: 500, not retried
        ark.wait_for_callbacks()
        ark.fail(task_id, "InternalServiceError", "boom")  # 500, 500, then 200
        assert ark.wait_for_callbacks()
    finally:
        flaky.close()
    attempts = [(c.status, c.attempt, c.response_status) for c in ark.callbacks]
    assert attempts == [
        ("queued", 1, 500),
        ("failed", 1, 500),
        ("failed", 2, 500),
        ("failed", 3, 200),
    ]

    dead = create(ac, callback_url="http://127.0.0.1:9/hook")
    ark.complete(dead)
    assert ark.wait_for_callbacks()
    tries = [c for c in ark.callbacks if c.task_id == dead]
    assert [c.attempt for c in tries] == [1, 1, 2, 3, 4]  # queued once, succeeded 1 + 3 retries
    assert all(c.response_status is None and c.error for c in tries)


# ---- Ark: failure switches ------------------------------------------------------------------


def test_fault_errors_counts_and_endpoints(ark: FakeArk, ac: httpx.Client) -> None:
    ark.inject(Fault.rate_limited(retry_after="2"), "create", times=2)
    ark.inject(Fault.server_error(), "get")
    for _ in range(2):
        r = ac.post(TASKS, json={"model": V2, "content": [text()]})
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "RateLimitExceeded.EndpointRPMExceeded"
        assert r.json()["error"]["type"] == "TooManyRequests"
    task_id = create(ac)  # the third create goes through
    r = ac.get(f"{TASKS}/{task_id}")
    assert r.status_code == 500 and r.json()["error"]["code"] == "InternalServiceError"
    assert ac.get(f"{TASKS}/{task_id}").status_code == 200
    assert [r.fault for r in ark.requests] == ["error", "error", None, "error", None]

    ark.inject(Fault.quota_exceeded(), times=None)  # every endpoint, until cleared
    assert ac.get(TASKS).json()["error"]["code"] == "QuotaExceeded"
    assert ac.delete(f"{TASKS}/{task_id}").status_code == 429
    ark.clear_faults()
    assert ac.get(TASKS).status_code == 200
    with pytest.raises(ValueError, match="unknown endpoint"):
        ark.inject(Fault.server_error(), "status")


def test_fault_process_creates_the_task_anyway(ark: FakeArk, ac: httpx.Client) -> None:
    ark.inject(Fault.server_error(process=True), "create")
    r = ac.post(TASKS, json={"model": V2, "content": [text()]})
    assert r.status_code == 500
    assert len(ark.tasks) == 1


def test_fault_hang(ark: FakeArk, ac: httpx.Client) -> None:
    ark.inject(Fault.hang(5), "create")
    with pytest.raises(httpx.ReadTimeout):
        ac.post(TASKS, json={"model": V2, "content": [text()]}, timeout=0.3)
    deadline = time.monotonic() + 2
    while ark.requests_to("create")[0].status != 499 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ark.requests_to("create")[0].status == 499
    assert ark.tasks == {}  # the client gave up before the request was handled

    ark.inject(Fault.hang(5, process=True), "create")
    with pytest.raises(httpx.ReadTimeout):
        ac.post(TASKS, json={"model": V2, "content": [text()]}, timeout=0.3)
    assert len(ark.tasks) == 1  # handled, only the answer was late

    ark.inject(Fault.hang(0.2), "list")
    assert ac.get(TASKS).status_code == 200


def test_fault_malformed_json_and_disconnect(ark: FakeArk, ac: httpx.Client) -> None:
    ark.inject(Fault.malformed_json(), "create")
    r = ac.post(TASKS, json={"model": V2, "content": [text()]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()
    ark.inject(Fault.disconnect(), "list")
    with pytest.raises(httpx.RemoteProtocolError):
        ac.get(TASKS)
    assert ac.get(TASKS).status_code == 200


def test_fault_probability_is_seeded_and_counted(ark: FakeArk, ac: httpx.Client) -> None:
    def pattern() -> list[int]:
        ark.clear_faults()
        ark.seed_faults(7)
        rule = ark.inject(Fault.server_error(), "list", times=None, probability=0.3)
        codes = [ac.get(TASKS).status_code for _ in range(40)]
        assert rule.fired == codes.count(500)
        return codes

    first = pattern()
    assert 0 < first.count(500) < 40, first  # some, not all
    assert pattern() == first  # the same seed, the same faults
    with pytest.raises(ValueError, match="probability"):
        ark.inject(Fault.server_error(), probability=0)


def test_tagged_results_tell_jobs_apart(ark: FakeArk, ac: httpx.Client) -> None:
    ark.tag_results = True
    ids = [create(ac) for _ in range(2)]
    videos = []
    for task_id in ids:
        ark.complete(task_id)
        url = ac.get(f"{TASKS}/{task_id}").json()["content"]["video_url"]
        data = httpx.get(url).content
        assert data == ark.expected_video(task_id) and read_mp4_tag(data) == task_id
        with av.open(io.BytesIO(data), "r") as container:  # still a readable mp4
            assert len(list(container.decode(video=0))) == 12
        videos.append(data)
    assert videos[0] != videos[1]
    assert read_mp4_tag(sample_mp4(True)) is None
    assert read_mp4_tag(tag_mp4(b"", "x") + b"junk") is None  # not at the very end
    ark.reset()
    assert ark.tag_results is False


def test_dropped_callbacks_are_counted_not_sent(
    ark: FakeArk, ac: httpx.Client, receiver: Receiver
) -> None:
    ark.callback_drop_rate = 1.0
    task_id = create(ac, callback_url=receiver.url)
    ark.complete(task_id)
    assert ark.wait_for_callbacks()
    assert receiver.bodies == [] and ark.callbacks == []
    assert ark.callbacks_dropped == 2  # queued, succeeded
    ark.callback_drop_rate = 0.0
    other = create(ac, callback_url=receiver.url)
    assert ark.wait_for_callbacks()
    assert [b["id"] for b in receiver.bodies] == [other]


def test_fault_result_downloads(ark: FakeArk, ac: httpx.Client) -> None:
    task_id = create(ac)
    ark.complete(task_id)
    url = ark.task_object(task_id)["content"]["video_url"]
    ark.inject(Fault.not_found(), "result")
    ark.inject(Fault.wrong_content_type(), "result")
    ark.inject(Fault.oversized(8), "result")
    ark.inject(Fault.oversized(3, declare_length=False), "result")
    ark.inject(Fault.error(500), "result")

    dead = httpx.get(url)
    assert dead.status_code == 404 and b"NoSuchKey" in dead.content
    html = httpx.get(url)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    with httpx.stream("GET", url) as big:
        assert big.headers["content-type"] == "video/mp4"
        assert big.headers["content-length"] == str(8 * 1024 * 1024)
        received = 0
        for chunk in big.iter_bytes():
            received += len(chunk)
            if received > 2 * 1024 * 1024:
                break
    chunked = httpx.get(url)
    assert "content-length" not in chunked.headers or chunked.headers["content-length"] == str(
        3 * 1024 * 1024
    )
    assert len(chunked.content) == 3 * 1024 * 1024
    assert httpx.get(url).status_code == 500
    assert httpx.get(url).status_code == 200


def test_refuse_connections(ark: FakeArk, ac: httpx.Client) -> None:
    task_id = create(ac)
    port = ark.port
    with ark.offline():
        assert not ark.online
        with pytest.raises(httpx.ConnectError):
            ac.get(f"{TASKS}/{task_id}")
        ark.complete(task_id)  # state is kept and still controllable
    assert ark.port == port
    assert ac.get(f"{TASKS}/{task_id}").json()["status"] == "succeeded"

    ark.offline_for(0.3)
    with pytest.raises(httpx.ConnectError):
        ac.get(TASKS)
    time.sleep(0.6)
    assert ac.get(TASKS).status_code == 200


async def test_async_start_and_concurrency() -> None:
    async with FakeArk(max_queued=1000, queued_seconds=0.05, running_seconds=0.1) as ark:
        headers = {"Authorization": f"Bearer {ark.api_key}"}
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=ark.base_url, headers=headers, limits=limits) as c:

            async def one(i: int) -> str:
                r = await c.post(TASKS, json={"model": V2, "content": [text(f"#{i}")]})
                assert r.status_code == 200, r.text
                task_id: str = r.json()["id"]
                while True:
                    obj = (await c.get(f"{TASKS}/{task_id}")).json()
                    if obj["status"] == "succeeded":
                        return task_id
                    await asyncio.sleep(0.05)

            ids = await asyncio.gather(*(one(i) for i in range(100)))
        assert len(set(ids)) == 100
        assert ark.count("succeeded") == 100
        assert ark.internal_errors == []
    assert not ark.running


def test_reset_restores_a_shared_fake(ark: FakeArk, ac: httpx.Client) -> None:
    create(ac)
    ark.max_queued = 1
    ark.models = ["only"]
    ark.inject(Fault.server_error(), times=None)
    ark.advance(100)
    ark.go_offline()
    ark.reset()
    assert ark.online and ark.max_queued == 120 and "only" not in ark.models
    assert ark.tasks == {} and ark.requests == [] and abs(ark.now() - time.time()) < 1
    assert ark.auto_advance is True  # the constructor's value
    assert ac.get(TASKS).status_code == 200


# ---- relay ----------------------------------------------------------------------------------


def test_relay_json_flow(relay: FakeRelay, rc: httpx.Client) -> None:
    body = {
        "model": V2,
        "prompt": "image 1 dances",
        "content": [text("image 1 dances"), image(PNG_DATA, "reference_image")],
        "ratio": "9:16",
        "duration": 8,
        "resolution": "720p",
        "watermark": False,
        "generate_audio": True,
        "seed": 7,
        "return_last_frame": True,
    }
    r = rc.post("/videos", json=body)
    assert r.status_code == 200
    created = r.json()
    assert created["status"] == "submitted" and created["object"] == "video"
    assert created["id"].startswith("video_") and created["model"] == V2
    assert isinstance(created["created_at"], int)
    video_id = created["id"]
    assert relay.tasks[video_id].body == body

    got = rc.get(f"/videos/{video_id}").json()
    assert got["status"] == "queued" and got["progress"] == 0
    assert got["seconds"] == "8" and got["size"] == "720x1280"
    relay.set_status(video_id, "in_progress", progress=40)
    assert rc.get(f"/videos/{video_id}").json()["progress"] == 40
    relay.complete(video_id)
    done = rc.get(f"/videos/{video_id}").json()
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["expires_at"] == done["completed_at"] + 86400
    assert "url" not in done
    v = httpx.get(done["video_url"])
    assert v.status_code == 200 and v.headers["content-type"] == "video/mp4"
    assert httpx.get(done["last_frame_url"]).headers["content-type"] == "image/png"


def test_relay_multipart_is_recorded(relay: FakeRelay, rc: httpx.Client) -> None:
    png = sample_png()
    r = rc.post(
        "/videos",
        data={"prompt": "a cat", "model": "sora-2", "seconds": "8", "size": "1280x720"},
        files={"input_reference": ("cat.png", png, "image/png")},
    )
    assert r.status_code == 200, r.text
    rec = relay.requests_to("create")[0]
    assert rec.form == {"prompt": "a cat", "model": "sora-2", "seconds": "8", "size": "1280x720"}
    (upload,) = rec.files
    assert (upload.field, upload.filename, upload.content_type, upload.data) == (
        "input_reference",
        "cat.png",
        "image/png",
        png,
    )
    task = relay.tasks[r.json()["id"]]
    assert task.kind == "multipart" and task.files == rec.files
    assert (task.seconds, task.size) == ("8", "1280x720")
    bad = rc.post("/videos", data={"prompt": "x", "model": "m", "seconds": "eight"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "seconds"


def test_relay_schedule_progress_and_statuses(relay: FakeRelay, rc: httpx.Client) -> None:
    relay.set_schedule(queued_seconds=10, running_seconds=10, auto_advance=True)
    relay.create_status, relay.queued_status, relay.poll_after_ms = "queued", "submitted", 250
    r = rc.post("/videos", json={"model": "m", "prompt": "p"})
    assert r.json()["status"] == "queued"
    assert r.headers["openai-poll-after-ms"] == "250"
    video_id = r.json()["id"]
    assert rc.get(f"/videos/{video_id}").json()["status"] == "submitted"
    relay.advance(15)
    got = rc.get(f"/videos/{video_id}").json()
    assert got["status"] == "in_progress" and 40 <= got["progress"] <= 60
    relay.advance(5)
    assert rc.get(f"/videos/{video_id}").json()["status"] == "completed"


@pytest.mark.parametrize("url_field", ["url", "both", "metadata", "none"])
def test_relay_url_placement_and_content(
    relay: FakeRelay, rc: httpx.Client, url_field: UrlField
) -> None:
    relay.url_field = url_field
    video_id = rc.post("/videos", json={"model": "m", "prompt": "p"}).json()["id"]
    early = rc.get(f"/videos/{video_id}/content")
    assert early.status_code == 400 and early.json()["error"]["code"] == "video_not_ready"
    relay.complete(video_id)
    done = rc.get(f"/videos/{video_id}").json()
    urls = {k: done.get(k) for k in ("video_url", "url", "metadata")}
    if url_field == "url":
        assert urls["url"] and not urls["video_url"]
    elif url_field == "both":
        assert urls["url"] == urls["video_url"]
    elif url_field == "metadata":
        assert done["metadata"]["url"] and not urls["url"] and not urls["video_url"]
    else:
        assert urls == {"video_url": None, "url": None, "metadata": None}
    content = rc.get(f"/videos/{video_id}/content")
    assert content.status_code == 200 and content.content == sample_mp4(True)
    assert content.headers["content-type"] == "video/mp4"
    thumb = rc.get(f"/videos/{video_id}/content", params={"variant": "thumbnail"})
    assert thumb.headers["content-type"] == "image/png"
    part = rc.get(f"/videos/{video_id}/content", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == sample_mp4(True)[10:20]
    assert httpx.get(f"{relay.base_url}/videos/{video_id}/content").status_code == 401


def test_relay_failure_list_delete_auth(relay: FakeRelay, rc: httpx.Client) -> None:
    ids = [
        rc.post("/videos", json={"model": "m", "prompt": f"p{i}"}).json()["id"] for i in range(5)
    ]
    relay.fail(ids[0], "content_policy_violation", "no")
    failed = rc.get(f"/videos/{ids[0]}").json()
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "content_policy_violation", "message": "no"}

    page = rc.get("/videos", params={"limit": 2}).json()
    assert page["object"] == "list" and [v["id"] for v in page["data"]] == ids[:2:-1][:2]
    assert page["has_more"] is True and page["last_id"] == ids[3]
    rest = rc.get("/videos", params={"limit": 10, "after": page["last_id"]}).json()
    assert [v["id"] for v in rest["data"]] == [ids[2], ids[1], ids[0]]
    assert rest["has_more"] is False
    asc = rc.get("/videos", params={"order": "asc", "limit": 1}).json()
    assert asc["first_id"] == ids[0]

    deleted = rc.delete(f"/videos/{ids[1]}")
    assert deleted.json() == {"id": ids[1], "object": "video.deleted", "deleted": True}
    assert rc.get(f"/videos/{ids[1]}").status_code == 404
    relay.allow_delete_unfinished = False
    assert rc.delete(f"/videos/{ids[2]}").status_code == 400
    assert rc.delete(f"/videos/{ids[0]}").status_code == 200  # failed: deletable

    unauth = httpx.get(f"{relay.base_url}/videos/{ids[2]}", headers={"Authorization": "Bearer x"})
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "invalid_api_key"
    missing = rc.post("/videos", json={"model": "m"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"
    relay.models = ["only-this"]
    unknown = rc.post("/videos", json={"model": "m", "prompt": "p"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_relay_faults(relay: FakeRelay, rc: httpx.Client) -> None:
    video_id = rc.post("/videos", json={"model": "m", "prompt": "p"}).json()["id"]
    relay.inject(Fault.server_error(), "get", times=2)
    relay.inject(Fault.rate_limited(), "create")
    for _ in range(2):
        r = rc.get(f"/videos/{video_id}")
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert rc.get(f"/videos/{video_id}").status_code == 200
    limited = rc.post("/videos", json={"model": "m", "prompt": "p"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    relay.complete(video_id)
    relay.inject(Fault.wrong_content_type(), "content")
    html = rc.get(f"/videos/{video_id}/content")
    assert html.headers["content-type"].startswith("text/html")
