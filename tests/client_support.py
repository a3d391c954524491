"""Shared by the SDK and CLI tests: a live videogate (sandbox) with its app at hand, the fake
upstreams, small media files, a CLI runner, and a download server that breaks its first
response mid-body."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from conftest import LiveServer, free_port, make_live_key, shared_tls
from fakes import FakeArk, FakeRelay
from media_factory import png_bytes, wav_file
from videogate.api.app import create_app
from videogate.settings import Settings
from videogate.signing import UrlSigner

VIDEOGATE = str(Path(sys.executable).parent / "videogate")
SHORT: dict[str, Any] = {
    "model": "sandbox",
    "duration": 4,
    "resolution": "480p",
    "generate_audio": False,
}
SHORT_FLAGS = ["-m", "sandbox", "--duration", "4", "--resolution", "480p", "--no-audio"]
ARK_MODEL = "doubao-seedance-2-0-fast-260128"


@dataclass
class Videogate:
    """A live videogate server in a thread (API + worker, sandbox) and one API key."""

    base_url: str
    key: str
    app: FastAPI
    settings: Settings

    @property
    def signer(self) -> UrlSigner:
        signer: UrlSigner = self.app.state.api.ctx.signer
        return signer

    def env(self) -> dict[str, str]:
        return {"VIDEOGATE_BASE_URL": self.base_url, "VIDEOGATE_API_KEY": self.key}


def start_videogate(data_dir: Path) -> Iterator[Videogate]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        public_url=base,
        allow_private_urls=True,
        worker_poll_interval=0.05,
        render_processes=1,
        key_cache_seconds=0,
        poll_after_ms=100,  # the hint the SDK follows: keeps the tests quick
    )
    app = create_app(settings, tls=shared_tls())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("videogate did not start")
        time.sleep(0.05)
    try:
        key = make_live_key(LiveServer(base, settings))
        yield Videogate(base, key, app, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def vg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Videogate]:
    yield from start_videogate(tmp_path_factory.mktemp("videogate"))


@pytest.fixture(scope="module")
def shared_ark() -> Iterator[FakeArk]:
    with FakeArk() as fake:
        yield fake


@pytest.fixture
def ark(shared_ark: FakeArk) -> Iterator[FakeArk]:
    shared_ark.reset()
    yield shared_ark
    assert shared_ark.internal_errors == []


@pytest.fixture(scope="module")
def shared_relay() -> Iterator[FakeRelay]:
    with FakeRelay() as fake:
        yield fake


@pytest.fixture
def relay(shared_relay: FakeRelay) -> Iterator[FakeRelay]:
    shared_relay.reset()
    yield shared_relay
    assert shared_relay.internal_errors == []


def fake_env(fake: FakeArk | FakeRelay) -> dict[str, str]:
    api = "ark" if isinstance(fake, FakeArk) else "relay"
    return {
        "VIDEOGATE_BASE_URL": fake.base_url,
        "VIDEOGATE_API_KEY": fake.api_key,
        "VIDEOGATE_API": api,
    }


def png(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.write_bytes(png_bytes(640, 360, color))
    return path


def wav(path: Path, seconds: float = 3.0) -> Path:
    return wav_file(path, seconds)


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``asyncio.sleep`` delay from now on in this thread (the fakes' servers run in
    their own), in order; the sleeps still happen. Tests assert what the client chose to
    wait, never how long the wall clock says it took."""
    delays: list[float] = []
    real_sleep = asyncio.sleep
    thread = threading.get_ident()

    async def sleep(delay: float, result: Any = None) -> Any:
        if threading.get_ident() == thread:
            delays.append(delay)
        return await real_sleep(delay, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return delays


# ---- the CLI as a process -------------------------------------------------------------


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a CLI process: nothing inherited from VIDEOGATE_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VIDEOGATE_") and k not in ("COLUMNS", "LINES")
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIDEOGATE, *args],
        env=cli_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def clean_env_for_runner(extra: dict[str, str]) -> dict[str, str | None]:
    """For CliRunner.invoke(env=…): set ``extra`` and unset every other VIDEOGATE_*."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VIDEOGATE_")}
    env.update(extra)
    return env


# ---- a download server that cuts its first response ----------------------------------


@dataclass
class CuttingServer:
    """Serves ``payload`` at ``/video.mp4``: the first full GET sends ``cut`` bytes and
    drops the connection; later requests honour ``Range`` (206)."""

    payload: bytes
    cut: int
    url: str = ""
    ranges: list[str | None] = field(default_factory=list)
    cuts_left: int = 1


def _cutting_handler(state: CuttingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            header = self.headers.get("Range")
            state.ranges.append(header)
            data = state.payload
            if header is None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if state.cuts_left > 0:
                    state.cuts_left -= 1
                    self.wfile.write(data[: state.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)
                return
            start = int(header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def cutting_server() -> Iterator[CuttingServer]:
    from fakes import sample_mp4

    payload = sample_mp4(True) * 20  # a few hundred KB: several chunks
    state = CuttingServer(payload=payload, cut=len(payload) // 3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _cutting_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/video.mp4"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
