"""Screenshots of every console page at desktop and phone width (``make screenshots``).

Starts videogate on a free loopback port with a throw-away data dir, makes a few videos
with the sandbox (one with a webhook, one that fails), then drives Debian's Chromium
through each page. Writes ``<out>/<desktop|phone>-<page>.png``. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from videogate.api.app import create_app
from videogate.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN = "screenshots-admin-token"
SIZES = {"desktop": (1280, 900), "phone": (375, 812)}
USER_PAGES = ["generate", "tasks", "gallery", "usage"]
ADMIN_PAGES = ["overview", "keys", "routes", "webhooks"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(data_dir: Path) -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=data_dir,
        host="127.0.0.1",
        port=port,
        public_url=base,
        allow_private_urls=True,
        admin_token=ADMIN,
        worker_poll_interval=0.05,
        render_processes=1,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("videogate did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def _receiver() -> Iterator[str]:
    class Ok(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()


def _seed(base: str, hook: str) -> tuple[str, str]:
    """A key with a balance, a few finished tasks; returns (key, a finished task id)."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        key = http.post("/admin/keys", json={"name": "demo", "balance": "25"}, headers=admin)
        secret = str(key.json()["key"])
        auth = {"Authorization": f"Bearer {secret}"}
        jobs: list[dict[str, Any]] = [
            {"prompt": "a red fox running through snow", "callback_url": hook},
            {"prompt": "waves rolling onto a beach at sunset", "ratio": "9:16"},
            {"prompt": "a paper boat on a rainy street", "ratio": "1:1"},
            {
                "prompt": "a clip whose reference cannot be fetched",
                "content": [
                    {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}
                ],
            },
        ]
        ids = []
        for job in jobs:
            body = {"model": "sandbox", "duration": 4, "resolution": "480p", **job}
            ids.append(http.post("/v1/videos", json=body, headers=auth).json()["id"])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = [http.get(f"/v1/videos/{i}", headers=auth).json()["status"] for i in ids]
            if all(s in ("completed", "failed") for s in states):
                break
            time.sleep(0.5)
    return secret, ids[0]


def _shoot(page: Any, out: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    time.sleep(0.4)  # let the hover/poll settle
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit("needs Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        _receiver() as hook,
        _server(Path(tmp) / "var") as base,
    ):
        key, task_id = _seed(base, hook)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for size, (width, height) in SIZES.items():
                context = browser.new_context(
                    viewport={"width": width, "height": height}, base_url=base
                )
                page = context.new_page()
                page.goto("/")
                _shoot(page, out, f"{size}-sign-in")
                page.get_by_label("API key").fill(key)
                page.get_by_label("Admin token").fill(ADMIN)
                page.get_by_role("button", name="Sign in", exact=True).click()
                page.get_by_role("button", name="Sign out").wait_for()
                for name in USER_PAGES + ADMIN_PAGES:
                    page.goto(f"/#/{name}")
                    page.locator("main h1").wait_for()
                    _shoot(page, out, f"{size}-{name}")
                page.goto(f"/#/tasks/{task_id}")
                page.get_by_role("region", name="Timeline").wait_for()
                _shoot(page, out, f"{size}-task-detail")
                context.close()
            browser.close()
    print(f"screenshots in {out}/")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots"))
