"""``POST /v1/videos`` as the OpenAI form (multipart/form-data), through the ASGI app."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conftest import wait_for_status
from media_factory import mp4_file, png_bytes, probe_mp4
from videogate.api.openai_form import DEFAULT_MODEL, SIZE_FRAMES, SUPPORTED_SIZES
from videogate.api.state import ApiState
from videogate.blobs.keys import upload_prefix
from videogate.media.sizes import OPENAI_SIZES, OUTPUT_SIZES, output_size
from videogate.settings import Settings

FAST = "doubao-seedance-2-0-fast-260128"
STANDARD = "doubao-seedance-2-0-260128"
UPLOAD_LIMIT = 1024 * 1024

Files = dict[str, tuple[str | None, bytes | str, str] | tuple[None, str]]


# The slow tier (make test, not make test-fast): OpenAI forms end to end with renders.
pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with a small upload limit, so 'too large' is cheap to test."""
    return settings.model_copy(update={"max_upload_bytes": UPLOAD_LIMIT})


def form(**fields: str) -> Files:
    """Text fields as multipart parts (httpx sends ``data=`` alone url-encoded)."""
    return {name: (None, value) for name, value in fields.items()}


def png_file(width: int = 640, height: int = 360) -> tuple[str, bytes, str]:
    return ("ref.png", png_bytes(width, height), "image/png")


def data_url(width: int = 640, height: int = 480) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


async def post_form(
    client: httpx.AsyncClient, auth: dict[str, str], files: Files, **headers: str
) -> httpx.Response:
    return await client.post("/v1/videos", files=files, headers={**auth, **headers})


def assert_error(r: httpx.Response, param: str | None, *needles: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "invalid_request" and error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    for needle in needles:
        assert needle in error["message"], error
    return error


# --- size mapping -----------------------------------------------------------------------------


def test_every_seedance_size_maps_to_its_own_frame() -> None:
    for ratio, by_res in OUTPUT_SIZES.items():
        for resolution, (w, h) in by_res.items():
            assert SIZE_FRAMES[f"{w}x{h}"] == (ratio, resolution)
    assert SUPPORTED_SIZES[:4] == ("1280x720", "720x1280", "1792x1024", "1024x1792")
    assert len(SUPPORTED_SIZES) == len(set(SUPPORTED_SIZES)) == 26  # 6 ratios x 4 + 2


def test_openai_only_sizes_map_to_the_nearest_frame() -> None:
    only = {k: v for k, v in OPENAI_SIZES.items() if k not in ("1280x720", "720x1280")}
    assert only == {"1792x1024": ("16:9", "1080p"), "1024x1792": ("9:16", "1080p")}
    for size, (ratio, resolution) in only.items():
        w, h = map(int, size.split("x"))
        ow, oh = output_size(ratio, resolution)
        assert abs(ow / oh - w / h) < 0.05  # same shape
        assert abs(ow * oh - w * h) < abs(1280 * 720 - w * h)  # nearer 1080p than 720p


def openai_size_of(frame: tuple[str, str, str]) -> str:
    w, h = map(int, frame[2].split("x"))
    large = frame[1] in ("1080p", "4k")
    return (
        ("1792x1024" if large else "1280x720") if w >= h else ("1024x1792" if large else "720x1280")
    )


# --- successful creates -----------------------------------------------------------------------


@pytest.mark.slow
async def test_minimal_form_uses_the_openai_defaults_and_renders(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await post_form(client, auth, form(prompt="a red fox in snow"))
    assert r.status_code == 200, r.text
    created = r.json()
    # "queued" (not the relay's "submitted") so OpenAI-style loops on the create work.
    assert created["status"] == "queued" and created["object"] == "video"
    assert created["model"] == DEFAULT_MODEL
    assert (created["seconds"], created["size"]) == ("4", "720x1280")
    assert (created["ratio"], created["resolution"], created["duration"]) == ("9:16", "720p", 4)
    assert r.headers["openai-poll-after-ms"].isdigit()

    r = await post_form(client, auth, form(prompt="a fox", model=FAST, seconds="5", size="496x864"))
    assert r.status_code == 200, r.text
    done = await wait_for_status(client, r.json()["id"], auth)
    assert done["status"] == "completed", done
    assert (done["seconds"], done["size"], done["output_size"]) == ("5", "720x1280", "496x864")
    video = await client.get(f"/v1/videos/{done['id']}/content", headers=auth)
    info = probe_mp4(video.content)
    assert info["size"] == (496, 864)
    assert abs(float(str(info["duration"])) - 5) < 0.2


async def test_json_create_still_answers_submitted(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.post("/v1/videos", json={"model": FAST, "prompt": "x"}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "submitted"


@pytest.mark.parametrize(
    ("size", "model", "frame"),
    [
        ("1280x720", FAST, ("16:9", "720p", "1280x720")),
        ("720x1280", FAST, ("9:16", "720p", "720x1280")),
        ("1792x1024", STANDARD, ("16:9", "1080p", "1920x1080")),
        ("1024x1792", STANDARD, ("9:16", "1080p", "1080x1920")),
        ("992x432", FAST, ("21:9", "480p", "992x432")),
        (" 1112X834 ", FAST, ("4:3", "720p", "1112x834")),
    ],
)
async def test_sizes_map_to_ratio_and_resolution(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    size: str,
    model: str,
    frame: tuple[str, str, str],
) -> None:
    r = await post_form(client, auth, form(prompt="p", model=model, size=size, seconds="8"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ratio"], body["resolution"], body["output_size"]) == frame
    # OpenAI's schema allows only its four sizes: the one asked for, else the orientation's.
    assert body["size"] in OPENAI_SIZES
    assert body["size"] == (size if size in OPENAI_SIZES else openai_size_of(frame))
    assert body["seconds"] == "8" and body["duration"] == 8


async def test_uploaded_input_reference_is_the_first_frame(
    client: httpx.AsyncClient, auth: dict[str, str], state: ApiState
) -> None:
    # 640x480 is 4:3: without a size the frame follows the image (adaptive, 720p).
    files: Files = {**form(prompt="animate this"), "input_reference": png_file(640, 480)}
    r = await post_form(client, auth, files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ratio"], body["output_size"]) == ("4:3", "1112x834")
    caller = await state.auth.authenticate(auth["Authorization"])
    task = await state.tasks.get(caller, body["id"])
    refs = task.request["references"]
    assert [(r["kind"], r["role"]) for r in refs] == [("image", "first_frame")]
    # Stored as an upload of this key, like POST /v1/files, and visible there.
    assert refs[0]["blob_key"].startswith("uploads/")
    file_id = refs[0]["blob_key"].rsplit("/", 1)[-1].split(".")[0]
    got = await client.get(f"/v1/files/{file_id}", headers=auth)
    assert got.status_code == 200 and got.json()["mime_type"] == "image/png"
    # An explicit size wins over the image's shape.
    files = {**form(prompt="p", size="1280x720"), "input_reference": png_file(640, 480)}
    r = await post_form(client, auth, files)
    assert r.status_code == 200 and r.json()["size"] == "1280x720"


async def test_idempotent_retry_with_an_uploaded_reference(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    def files(color_width: int) -> Files:
        return {**form(prompt="p", seconds="4"), "input_reference": png_file(color_width, 360)}

    first = await post_form(client, auth, files(640), **{"Idempotency-Key": "abc"})
    again = await post_form(client, auth, files(640), **{"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["id"] == again.json()["id"]
    other = await post_form(client, auth, files(700), **{"Idempotency-Key": "abc"})
    assert other.status_code == 409, other.text


@pytest.mark.parametrize(
    "reference",
    [
        "json",
        "bracket",
        "bare-url",
        "file_id",
    ],
)
async def test_input_reference_as_an_object(
    client: httpx.AsyncClient, auth: dict[str, str], reference: str
) -> None:
    url = data_url(640, 480)
    if reference == "json":
        fields = form(prompt="p", input_reference=json.dumps({"image_url": url}))
    elif reference == "bracket":  # how the SDK serializes a nested object in a form
        fields = form(prompt="p", **{"input_reference[image_url]": url})
    elif reference == "bare-url":
        fields = form(prompt="p", input_reference=url)
    else:
        up = await client.post("/v1/files", headers=auth, files={"file": png_file(640, 480)})
        assert up.status_code == 200, up.text
        fields = form(prompt="p", input_reference=json.dumps({"file_id": up.json()["id"]}))
    r = await post_form(client, auth, fields)
    assert r.status_code == 200, r.text
    assert (r.json()["ratio"], r.json()["output_size"]) == ("4:3", "1112x834")


async def test_seedance_extras(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    fields = form(prompt="p", seed="42", generate_audio="false", watermark="true")
    r = await post_form(client, auth, fields)
    assert r.status_code == 200, r.text
    assert r.json()["seed"] == 42 and r.json()["generate_audio"] is False
    assert_error(await post_form(client, auth, form(prompt="p", seed="x")), "seed", "integer")
    assert_error(
        await post_form(client, auth, form(prompt="p", generate_audio="maybe")),
        "generate_audio",
        "true or false",
    )
    assert_error(
        await post_form(client, auth, form(prompt="p", seed=str(2**33))), "seed", "seed must be"
    )


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "needle"),
    [
        ("abc", "not a whole number"),
        ("4.5", "not a whole number"),
        ("", "not a whole number"),
        ("99999999999", "not a whole number"),
        ("3", "seconds 3 is out of range"),
        ("16", "seconds 16 is out of range"),
    ],
)
async def test_bad_seconds(
    client: httpx.AsyncClient, auth: dict[str, str], seconds: str, needle: str
) -> None:
    r = await post_form(client, auth, form(prompt="p", seconds=seconds))
    assert_error(r, "seconds", needle, "4-15")


@pytest.mark.parametrize("size", ["640x480", "1280*720", "", "auto", "x" * 5000])
async def test_bad_size_lists_the_supported_ones(
    client: httpx.AsyncClient, auth: dict[str, str], size: str
) -> None:
    r = await post_form(client, auth, form(prompt="p", size=size))
    error = assert_error(r, "size", "is not supported")
    for supported in SUPPORTED_SIZES:
        assert supported in error["message"]


async def test_openai_1080p_size_falls_back_to_the_nearest_offered_size(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # OpenAI's own sizes are never refused: fast has no 1080p, so 16:9 720p is rendered.
    r = await post_form(client, auth, form(prompt="p", size="1792x1024"))  # default: fast
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["size"], body["output_size"], body["resolution"]) == (
        "1792x1024",
        "1280x720",
        "720p",
    )


async def test_seedance_1080p_size_needs_a_model_with_1080p(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await post_form(client, auth, form(prompt="p", model=FAST, size="1920x1080"))
    error = assert_error(r, "size", "16:9 at 1080p", FAST, "1280x720")
    assert "1920x1080" not in error["message"].split("use one of:")[1]


@pytest.mark.parametrize(
    ("files", "param", "needle"),
    [
        (form(model=FAST), "prompt", "needs a 'prompt'"),
        (form(prompt=""), "prompt", "prompt is empty"),
        (form(prompt="x" * 32_001), "prompt", "at most 32000"),
        ({"prompt": ("p.txt", b"hello", "text/plain")}, "prompt", "text field"),
        (form(prompt="p", model=""), "model", "must name a model"),
        (form(prompt="p", ratio="16:9"), "ratio", "unknown form field 'ratio'"),
        (form(prompt="p", callback_url="x" * 3000), "callback_url", "2048"),
        (
            [("prompt", (None, "a")), ("prompt", (None, "b"))],
            "prompt",
            "sent 2 times",
        ),
    ],
)
async def test_bad_fields(
    client: httpx.AsyncClient, auth: dict[str, str], files: Any, param: str, needle: str
) -> None:
    assert_error(await post_form(client, auth, files), param, needle)


async def test_unknown_model_is_a_404_and_stores_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], state: ApiState
) -> None:
    files: Files = {**form(prompt="p", model="veo-3"), "input_reference": png_file()}
    r = await post_form(client, auth, files)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await post_form(client, auth, {**form(prompt=" "), "input_reference": png_file()})
    assert_error(r, "prompt", "prompt is empty")
    caller = await state.auth.authenticate(auth["Authorization"])
    uploads = state.ctx.blobs.local_path(upload_prefix(caller.key_id))
    assert uploads is not None and not uploads.exists()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("{bad", "not valid JSON"),
        ("[1]", "image file upload"),
        ('{"image_url": 3}', "must be a string"),
        ('{"image_url": "data:x", "file_id": "f"}', "exactly one of"),
        ('{"url": "https://example.com/a.png"}', "exactly one of"),
        ('{"image_url": "ftp://example.com/a.png"}', "http(s)://"),
        ("a picture of a cat", "image file upload"),
        ('{"file_id": "file_nope"}', "not a file of this API key"),
        ('{"file_id": ""}', "POST /v1/files"),
        ('{"image_url": "data:image/png;base64,AAAA"}', "input_reference: not a readable"),
    ],
)
async def test_bad_input_reference_objects(
    client: httpx.AsyncClient, auth: dict[str, str], value: str, needle: str
) -> None:
    r = await post_form(client, auth, form(prompt="p", input_reference=value))
    assert_error(r, "input_reference", needle)


async def test_bad_input_reference_files(
    client: httpx.AsyncClient, auth: dict[str, str], tmp_path: Path
) -> None:
    def with_file(name: str, data: bytes, mime: str) -> Files:
        return {**form(prompt="p"), "input_reference": (name, data, mime)}

    cases: list[tuple[Files, str]] = [
        (with_file("a.txt", b"hello there", "text/plain"), "not an image we can read"),
        (with_file("a.png", b"", "image/png"), "empty"),
        (with_file("a.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"), "not an image"),
        (
            with_file("a.mp4", mp4_file(tmp_path / "v.mp4", 1, 320, 320).read_bytes(), "video/mp4"),
            "must be an image",
        ),
        (with_file("huge.png", b"\0" * (UPLOAD_LIMIT + 1), "image/png"), "upload limit"),
        # The reference pipeline's limits, reported against input_reference:
        ({**form(prompt="p"), "input_reference": png_file(200, 200)}, "outside the allowed"),
        ({**form(prompt="p"), "input_reference": png_file(1500, 300)}, "aspect ratio"),
        (
            {
                **form(prompt="p", **{"input_reference[image_url]": data_url()}),
                "input_reference": png_file(),
            },
            "exactly one of",
        ),
    ]
    for files, needle in cases:
        error = assert_error(await post_form(client, auth, files), "input_reference", needle)
        assert "image 1" not in error["message"]


async def test_the_pipeline_errors_name_input_reference(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    files: Files = {**form(prompt="p"), "input_reference": png_file(200, 200)}
    error = assert_error(await post_form(client, auth, files), "input_reference")
    assert error["message"].startswith("input_reference: 200x200 px")


async def test_malformed_multipart_and_content_types(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/videos",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=zzz"},
        content=b"garbage",
    )
    assert_error(r, None)
    r = await client.post(
        "/v1/videos",
        headers={**auth, "Content-Type": "multipart/form-data"},  # no boundary
        content=b"--x\r\n",
    )
    assert_error(r, None)
    two_files = [
        ("prompt", (None, "p")),
        ("input_reference", png_file()),
        ("input_reference", png_file()),
    ]
    assert_error(await post_form(client, auth, two_files), None, "multipart form")  # type: ignore[arg-type]
    r = await client.post(
        "/v1/videos", data={"prompt": "p"}, headers=auth
    )  # application/x-www-form-urlencoded
    assert_error(r, "content-type", "application/json", "multipart/form-data")
    r = await client.post(
        "/v1/videos",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=x", "Content-Length": "1"},
        content=b"x",
    )
    assert r.status_code == 400
    # No key: a 401 before the body is read.
    r = await client.post("/v1/videos", files=form(prompt="p"))
    assert r.status_code == 401


async def test_openapi_describes_both_bodies(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    content = doc["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    ref = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = doc["components"]["schemas"][ref]
    assert schema["required"] == ["prompt"]
    assert set(schema["properties"]) >= {"prompt", "model", "seconds", "size", "input_reference"}
    assert schema["properties"]["size"]["enum"] == list(SUPPORTED_SIZES)
    assert "RelayCreate" in doc["components"]["schemas"]


field_names = st.sampled_from(
    ["prompt", "model", "seconds", "size", "input_reference", "input_reference[image_url]",
     "input_reference[file_id]", "seed", "generate_audio", "watermark", "x"]
)  # fmt: skip
field_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["4", "8", "-1", "0", "1280x720", "1792x1024", FAST, STANDARD, "true"]),
    st.sampled_from(['{"image_url": "data:,"}', '{"file_id": "file_x"}', "{}", "null"]),
)


@hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fields=st.dictionaries(field_names, field_values, max_size=6))
async def test_random_forms_never_500(
    client: httpx.AsyncClient, auth: dict[str, str], fields: dict[str, str]
) -> None:
    files: Files = {"_": (None, "")} if not fields else form(**fields)
    r = await post_form(client, auth, files)
    assert r.status_code < 500, r.text
    body = r.json()
    assert "error" in body or body["status"] in ("queued", "failed"), body


async def test_random_binary_uploads_never_500(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    blobs = [b"\xff\xd8\xff" + b"\0" * 50, b"GIF89a" + b"\1" * 40, b"RIFF\0\0\0\0WEBP", b"\0"]
    for blob in blobs:
        files: Files = {**form(prompt="p"), "input_reference": ("x.bin", blob, "image/jpeg")}
        r = await post_form(client, auth, files)
        assert r.status_code == 400, r.text
