"""The SDK's pure parts: status vocabulary, Retry-After, references, base URLs, mp4 length,
and that it never imports the server."""

from __future__ import annotations

import base64
import email.utils
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import sample_mp4
from media_factory import png_bytes
from videogate.client import (
    AsyncClient,
    Audio,
    ConfigurationError,
    Image,
    InvalidReference,
    Video,
    VideogateClientError,
    mp4_duration,
)
from videogate.client._api import ArkDialect, RelayDialect
from videogate.client._models import normalize_status
from videogate.client._references import as_reference, assign_roles, content_items, data_url
from videogate.client._transport import RetryPolicy, parse_retry_after

SERVER_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "av",
    "numpy",
    "PIL",
    "videogate.settings",
    "videogate.store",
    "videogate.api",
    "videogate.service",
)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("videogate.client", (*SERVER_MODULES, "pydantic")),
        ("videogate.cli.main", SERVER_MODULES),
    ],
)
def test_the_client_never_imports_the_server(module: str, forbidden: tuple[str, ...]) -> None:
    code = (
        f"import sys, {module}\n"
        f"no = {forbidden!r}\n"
        "bad = [m for m in sys.modules if any(m == n or m.startswith(n + '.') for n in no)]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("submitted", "queued"),
        ("queued", "queued"),
        ("in_progress", "running"),
        ("running", "running"),
        ("completed", "succeeded"),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        ("canceled", "cancelled"),
        ("expired", "expired"),
        ("something_new", "running"),
    ],
)
def test_status_vocabulary(raw: str, status: str) -> None:
    assert normalize_status(raw) == status


def test_relay_failed_with_cancelled_code_reads_cancelled() -> None:
    state = RelayDialect().parse_task(
        {"id": "v1", "status": "failed", "error": {"code": "cancelled", "message": "by you"}},
        {"openai-poll-after-ms": "1500"},
    )
    assert (state.status, state.raw_status, state.error_code) == (
        "cancelled",
        "failed",
        "cancelled",
    )
    assert state.poll_after == 1.5
    assert state.done and not state.succeeded


def test_relay_url_fields_and_ark_shape() -> None:
    relay = RelayDialect()
    for obj in (
        {"video_url": "http://a/x.mp4"},
        {"url": "http://a/x.mp4"},
        {"metadata": {"url": "http://a/x.mp4"}},
    ):
        state = relay.parse_task({"id": "v", "status": "completed", **obj}, {})
        assert state.video_url == "http://a/x.mp4"
    ark = ArkDialect().parse_task(
        {
            "id": "cgt-1",
            "status": "succeeded",
            "content": {"video_url": "http://tos/x.mp4"},
            "usage": {"completion_tokens": 108900},
            "duration": 5,
            "resolution": "720p",
        },
        {},
    )
    assert (ark.status, ark.video_url, ark.tokens, ark.duration) == (
        "succeeded",
        "http://tos/x.mp4",
        108900,
        5.0,
    )
    expired = ArkDialect().parse_task({"id": "cgt-2", "status": "expired", "error": None}, {})
    assert expired.status == "expired" and expired.done


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31


def test_backoff_grows_with_jitter_and_a_ceiling() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4)], start=1):
        for _ in range(20):
            assert low <= policy.backoff(attempt) <= high


def test_base_urls_get_the_dialect_prefix() -> None:
    def base(url: str, api: str) -> str:
        return AsyncClient(url, "k", api=api).base_url

    assert base("http://h:8000", "videogate") == "http://h:8000/v1"
    assert base("http://h:8000/", "videogate") == "http://h:8000/v1"
    assert base("http://h:8000/v1", "videogate") == "http://h:8000/v1"
    assert base("https://relay.example/openai/v1", "relay") == "https://relay.example/openai/v1"
    assert base("https://ark.example", "ark") == "https://ark.example/api/v3"
    with pytest.raises(ConfigurationError):
        AsyncClient("ftp://h", "k")
    with pytest.raises(ConfigurationError, match="api"):
        AsyncClient("http://h", "k", api="sora")


def test_an_api_key_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDEOGATE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="VIDEOGATE_API_KEY") as info:
        AsyncClient("http://h")
    assert isinstance(info.value, VideogateClientError)
    monkeypatch.setenv("VIDEOGATE_API_KEY", "from-env")
    monkeypatch.setenv("VIDEOGATE_BASE_URL", "http://env-host:9")
    assert AsyncClient().base_url == "http://env-host:9/v1"


def test_bare_references_are_typed_by_extension(tmp_path: Path) -> None:
    assert isinstance(as_reference("a.png"), Image)
    assert isinstance(as_reference(tmp_path / "b.mp4"), Video)
    assert isinstance(as_reference("https://x/c.mp3?sig=1"), Audio)
    assert isinstance(as_reference("data:image/png;base64,AAAA"), Image)
    with pytest.raises(InvalidReference, match="Image"):
        as_reference("notes.txt")


def test_roles() -> None:
    assert assign_roles([Image("a.png")]) == [None]
    assert assign_roles([Image("a.png"), Image("b.png")]) == ["reference_image"] * 2
    assert assign_roles([Image("a.png"), Video("v.mp4")]) == ["reference_image", "reference_video"]
    assert assign_roles(
        [Image("a.png", role="first_frame"), Image("b.png", role="last_frame")]
    ) == [
        "first_frame",
        "last_frame",
    ]


def test_data_urls_sniff_and_refuse(tmp_path: Path) -> None:
    odd = tmp_path / "frame.bin"
    odd.write_bytes(png_bytes(320, 320))
    url = data_url(odd, "image")
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == odd.read_bytes()
    with pytest.raises(InvalidReference, match="audio"):
        data_url(odd, "audio")


async def test_local_video_needs_a_url_on_ark_and_relays(tmp_path: Path) -> None:
    clip = tmp_path / "b.mp4"
    clip.write_bytes(sample_mp4(False))
    for api in ("ark", "relay"):
        with pytest.raises(InvalidReference, match=r"only as URLs.*https://"):
            await content_items([Video(clip)], uploader=None, api_name=api)
    items = await content_items([Video("https://cdn.example/b.mp4")], uploader=None, api_name="ark")
    assert items == [
        {
            "type": "video_url",
            "video_url": {"url": "https://cdn.example/b.mp4"},
            "role": "reference_video",
        }
    ]
    with pytest.raises(InvalidReference, match="not found"):
        await content_items([Image(tmp_path / "missing.png")], uploader=None, api_name="ark")


def test_mp4_duration(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    clip.write_bytes(sample_mp4(True))
    assert mp4_duration(clip) == pytest.approx(0.5, abs=0.05)  # 12 frames at 24 fps
    junk = tmp_path / "j.mp4"
    junk.write_bytes(b"not an mp4 at all")
    assert mp4_duration(junk) is None
    assert mp4_duration(tmp_path / "none.mp4") is None


def test_the_sdk_reference_is_current() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "docs" / "gen_sdk_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
