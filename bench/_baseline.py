"""The ceiling of ``api_bench.py``: a bare Starlette app returning the same response bytes
as a real poll, on the same server and event loop as videogate (uvicorn, or granian).

Imported as ``_baseline`` by ``api_bench.py``; not a test, not part of the package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from _common import HOST, Server, clean_env, free_port

# The baseline: the same response bytes from a bare Starlette app on the same uvicorn.
BARE_APP = """
import os
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

with open(os.environ["BENCH_BODY_FILE"], "rb") as f:
    BODY = f.read()
HEADERS = {"openai-poll-after-ms": os.environ["BENCH_POLL_AFTER_MS"]}

async def poll(request):
    return Response(BODY, media_type="application/json", headers=HEADERS)

async def healthz(request):
    return Response(b'{"status":"ok"}', media_type="application/json")

app = Starlette(routes=[Route("/v1/videos/{task_id}", poll), Route("/healthz", healthz)])
if __name__ == "__main__":  # else granian imports it as a module and serves ``app``
    uvicorn.run(app, host=os.environ["BENCH_HOST"], port=int(os.environ["BENCH_PORT"]),
                log_level="warning", access_log=False, loop=os.environ["BENCH_LOOP"])
"""
# ``videogate serve``/``api`` run uvloop as this loop (accepting every waiting connection
# per turn, src/videogate/cli/serving_loop.py): the bare app runs on the same one.
EAGER_UVLOOP = "videogate.cli.serving_loop:new_event_loop"
GRANIAN = "granian"  # a --loop value: both servers on granian (its loop: auto) instead


def granian_argv(
    granian: str | None, work: Path, port: int, target: str, *, factory: bool = False
) -> list[str]:
    """granian serving ``target`` (module:attribute) on ``port``: the bare app, or
    videogate's API-only app built from the environment (``factory``)."""
    if granian is None:
        raise RuntimeError("granian is not installed (pip install granian)")
    argv = [granian, "--interface", "asgi", "--host", HOST, "--port", str(port)]
    argv += ["--loop", "auto", "--log-level", "warning", "--no-ws", "--working-dir"]
    argv += [str(work), *(["--factory"] if factory else []), target]
    return argv


def uvicorn_loop(loop: str) -> str:
    """uvicorn's ``loop`` for a ``--loop`` value, as ``videogate`` chooses it."""
    if loop in ("auto", "uvloop") and importlib.util.find_spec("uvloop") is not None:
        return EAGER_UVLOOP
    return loop


async def start_bare(
    body: bytes,
    poll_after: str,
    label: str,
    work: Path,
    loop: str,
    granian: str | None,
    servers: list[Server],
    cpus: set[int] | None,
) -> tuple[Server, int]:
    """The bare app returning ``body`` on a free port, on ``loop`` (or granian), ready."""
    body_file = work / f"bare_{label}.json"
    body_file.write_bytes(body)
    port = free_port()
    env = clean_env(
        BENCH_BODY_FILE=str(body_file),
        BENCH_POLL_AFTER_MS=poll_after,
        BENCH_HOST=HOST,
        BENCH_PORT=str(port),
        BENCH_LOOP=uvicorn_loop(loop),
    )
    argv = [sys.executable, "-c", BARE_APP]
    if loop == GRANIAN:
        (work / "bare_app.py").write_text(BARE_APP)
        argv = granian_argv(granian, work, port, "bare_app:app")
    bare = Server(f"bare ({label})", argv, env, work / "bare.log")
    servers.append(bare)
    bare.start(cpus)
    await bare.wait_ready(f"http://{HOST}:{port}/healthz", 30)
    return bare, port
