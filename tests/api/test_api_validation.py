"""Bad input never causes a 500: malformed bodies, wrong types, unknown fields, huge values."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = "doubao-seedance-2-0-fast-260128"
OK: dict[str, Any] = {"model": FAST, "prompt": "a cat"}

BAD_BODIES: list[tuple[Any, str]] = [
    # A body without a model is OpenAI's shape, whose model defaults (issue 14): the prompt
    # is what is missing.
    ({}, "'prompt'"),
    ({"model": FAST}, "'prompt' is required"),
    ({**OK, "prompt": ""}, "prompt is empty"),
    ({**OK, "prompt": "x" * 32_001}, "at most 32000"),
    ({**OK, "duration": "eight"}, "'duration'"),
    ({**OK, "duration": 8.5}, "'duration'"),
    ({**OK, "duration": 3}, "duration 3 is out of range"),
    ({**OK, "duration": 16}, "duration 16 is out of range"),
    ({**OK, "duration": 10**30}, "'duration'"),
    ({**OK, "duration": None, "ratio": "2:1"}, "ratio '2:1' is not supported"),
    ({**OK, "resolution": "1080p"}, "resolution '1080p' is not supported"),
    ({**OK, "resolution": "4k"}, "resolution '4k'"),
    ({**OK, "seed": 2**32}, "seed must be between"),
    ({**OK, "seed": -2}, "seed must be between"),
    ({**OK, "seed": 10**40}, "seed"),
    ({**OK, "watermark": "maybe"}, "'watermark'"),
    ({**OK, "generate_audio": [1]}, "'generate_audio'"),
    ({**OK, "durations": 5}, "unknown field 'durations'"),
    ({**OK, "model": ""}, "'model'"),
    ({**OK, "model": 5}, "'model'"),
    ({**OK, "model": "m" * 500}, "'model'"),
    ({**OK, "content": "not a list"}, "'content'"),
    ({**OK, "content": [{"type": "pdf_url"}]}, "content.0"),
    ({**OK, "content": [{"type": "image_url"}]}, "image_url"),
    ({**OK, "content": [{"type": "image_url", "image_url": {"url": ""}}]}, "url"),
    ({**OK, "content": [{"type": "image_url", "image_url": "http://x"}]}, "image_url"),
    (
        {
            **OK,
            "content": [
                {"type": "image_url", "image_url": {"url": "http://x/a.png"}, "role": "hero"}
            ],
        },
        "role",
    ),
    (
        {**OK, "content": [{"type": "video_url", "video_url": {"url": "ftp://x/a.mp4"}}]},
        "video 1: unsupported URL scheme",
    ),
    (
        {**OK, "content": [{"type": "audio_url", "audio_url": {"url": "http://x/a.wav"}}]},
        "audio cannot be the only reference",
    ),
    (
        {
            **OK,
            "content": [
                {"type": "image_url", "image_url": {"url": f"http://x/{i}.png"}} for i in range(10)
            ],
        },
        "10 images given; at most 9",
    ),
    (
        {
            **OK,
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "http://x/1.png"},
                    "role": "first_frame",
                },
                {
                    "type": "image_url",
                    "image_url": {"url": "http://x/2.png"},
                    "role": "reference_image",
                },
            ],
        },
        "cannot be mixed",
    ),
    (
        {
            **OK,
            "content": [
                {"type": "image_url", "image_url": {"url": "http://x/1.png"}, "role": "last_frame"},
            ],
        },
        "needs a first_frame",
    ),
    (
        {
            **OK,
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}],
        },
        "image 1",
    ),
    ({**OK, "callback_url": 5}, "'callback_url'"),
    ([1, 2, 3], "must be a JSON object"),
    ("just a string", "must be a JSON object"),
    (None, "must be a JSON object"),
]


@pytest.mark.parametrize("body,message", BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))])
async def test_bad_bodies_are_400s_that_say_what_is_wrong(
    client: httpx.AsyncClient, auth: dict[str, str], body: Any, message: str
) -> None:
    r = await client.post(
        "/v1/videos", content=json.dumps(body), headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert message in error["message"], error


@pytest.mark.parametrize(
    "raw", [b"", b"{", b'{"model": }', b"\xff\xfe", b"null" * 1000, b"[" * 5000 + b"]" * 5000]
)
async def test_unparseable_bodies(
    client: httpx.AsyncClient, auth: dict[str, str], raw: bytes
) -> None:
    r = await client.post(
        "/v1/videos", content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"


async def test_wrong_content_type(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.post(
        "/v1/videos", content=b"model=x", headers={**auth, "Content-Type": "text/plain"}
    )
    assert r.status_code == 400 and "application/json" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "task_id", ["nope", "video_" + "x" * 500, "%00", "..%2F..%2Fetc", "video_01 OR 1=1", "💥"]
)
async def test_bad_ids_are_404s(
    client: httpx.AsyncClient, auth: dict[str, str], task_id: str
) -> None:
    for method, path in [
        ("GET", f"/v1/videos/{task_id}"),
        ("DELETE", f"/v1/videos/{task_id}"),
        ("GET", f"/v1/videos/{task_id}/content"),
        ("GET", f"/v1/files/{task_id}"),
    ]:
        r = await client.request(method, path, headers=auth)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "not_found"


async def test_signed_path_traversal_is_refused(client: httpx.AsyncClient) -> None:
    for path in [
        "/files/../../etc/passwd",
        "/files/%2e%2e/%2e%2e/etc/passwd?exp=1&sig=x",
        "/files/x?exp=abc&sig=1",
        "/files/",
    ]:
        r = await client.get(path)
        assert r.status_code in (403, 404), (path, r.text)


async def test_unknown_route_and_method_are_json(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.get("/v2/nothing", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.put("/v1/videos", headers=auth)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_bad_uploads(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await client.post(
        "/v1/files", headers=auth, files={"file": ("a.txt", b"hello", "text/plain")}
    )
    assert r.status_code == 400 and "not an image, video or audio" in r.json()["error"]["message"]
    r = await client.post("/v1/files", headers=auth, files={"other": ("a.png", b"x", "image/png")})
    assert r.status_code == 400 and "'file' field" in r.json()["error"]["message"]
    r = await client.post("/v1/files", headers=auth, files={"file": ("a.png", b"", "image/png")})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = await client.post(
        "/v1/files", headers={**auth, "Content-Type": "application/json"}, content=b"{}"
    )
    assert r.status_code == 400
    r = await client.post(
        "/v1/files",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=zzz"},
        content=b"garbage",
    )
    assert r.status_code == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "model",
        "prompt",
        "content",
        "ratio",
        "duration",
        "resolution",
        "watermark",
        "generate_audio",
        "seed",
        "return_last_frame",
        "callback_url",
        "x",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.dictionaries(field_names, json_values, max_size=6))
async def test_random_bodies_never_500(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
) -> None:
    r = await client.post(
        "/v1/videos", content=json.dumps(body), headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code < 500, r.text
    assert "error" in r.json() or r.json()["status"] in ("submitted", "failed")
