"""Download throughput: a result served by videogate from the file backend (streamed), from
S3 (redirect to a presigned URL, and presigned directly), against the same file from a
plain static file server. Everything runs on loopback; the S3 store is moto's server, so
the S3 figures measure videogate's part plus a Python S3 server, not a real store.

Usage: .venv/bin/python bench/download_bench.py [--mb 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import free_port, log, machine_line

from fakes.s3 import running_s3_server
from videogate.api.app import create_app
from videogate.settings import Settings

KEY = "results/key_bench/video_bench/video.mp4"


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def serve_app(settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    app = create_app(settings, run_worker=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


async def best_mb_per_s(url: str, size: int, repeat: int) -> float:
    best = 0.0
    async with httpx.AsyncClient(follow_redirects=True, timeout=300) as http:
        for _ in range(repeat):
            started = time.perf_counter()
            got = 0
            async with http.stream("GET", url) as r:
                r.raise_for_status()
                async for chunk in r.aiter_raw(1024 * 1024):
                    got += len(chunk)
            assert got == size, (got, size)
            best = max(best, size / (time.perf_counter() - started) / 1e6)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = os.urandom(args.mb * 1024 * 1024)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, running_s3_server() as s3:
        root = Path(tmp)
        source = root / "video.mp4"
        source.write_bytes(data)

        # A static file server (Python's standard one) serving the same bytes.
        handler = functools.partial(QuietFileHandler, directory=str(root))
        static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=static.serve_forever, daemon=True).start()
        static_url = f"http://127.0.0.1:{static.server_port}/video.mp4"

        env = s3.env()
        cases = {
            "videogate, file backend (streamed)": {},
            "videogate, S3 redirect -> presigned": {"download_mode": "redirect"},
            "videogate, S3 presigned video_url": {"download_mode": "presigned"},
        }
        for name, extra in cases.items():
            port = free_port()
            overrides: dict[str, object] = {}
            if extra:
                overrides = {
                    "blob_url": f"s3://{s3.new_bucket()}/bench",
                    "s3_endpoint_url": env["AWS_ENDPOINT_URL"],
                    "s3_region": env["AWS_REGION"],
                    "s3_access_key_id": env["AWS_ACCESS_KEY_ID"],
                    "s3_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
                    **extra,
                }
            settings = Settings(
                data_dir=root / f"var-{port}", port=port, public_url=f"http://127.0.0.1:{port}"
            ).model_copy(update=overrides)
            server, thread = serve_app(settings)
            try:
                app = server.config.app
                state = app.state.api  # type: ignore[union-attr]
                await state.ctx.blobs.put_file(KEY, source)
                url, _ = state.ctx.signer.download_url(KEY, 3600)
                log(f"{name}: {url[:80]}…")
                rows.append((name, await best_mb_per_s(url, len(data), args.repeat)))
            finally:
                server.should_exit = True
                thread.join(timeout=30)
        static_mbps = await best_mb_per_s(static_url, len(data), args.repeat)
        rows.append(("static file server (http.server)", static_mbps))
        static.shutdown()

    print(f"# download throughput, {args.mb} MiB file, best of {args.repeat}")
    print(machine_line())
    for name, mbps in rows:
        print(f"{name:40s} {mbps:8.1f} MB/s")


if __name__ == "__main__":
    asyncio.run(main())
