"""The fake Ark upstream of ``upstream_bench.py``, in a process of its own.

Run by the bench (``python bench/_fake_ark.py --port P --control-port C --api-key K
--max-queued N [--drop-callbacks]``), never imported by it: the fake's HTTP server, its
schedule ticker, its callback sender and the completer below share this interpreter's GIL
with nothing the bench does, so the bench measures videogate rather than its own fake.

Upstream: ``tests/fakes`` FakeArk (Volcengine Ark's task API as documented) on 127.0.0.1:P,
every task ``running`` 0.5 s after its create and never finished by the schedule. Control,
on 127.0.0.1:C (plain JSON, no auth: loopback only, for the bench):

* ``GET /healthz`` — 200 once the fake listens;
* ``GET /state`` — tasks by status, callbacks sent / dropped, the completer's progress;
* ``POST /complete`` ``{"start": unix, "spread": s}`` — complete every unfinished task in
  creation order, evenly from ``start`` over ``spread`` seconds (a thread here, so the times
  do not depend on the bench process); answers how many;
* ``POST /callbacks/wait`` ``{"timeout": s}`` — wait until every queued callback (with its
  retries) was delivered or given up; ``{"idle": bool}``;
* ``GET /log`` — tasks, the request log and every callback attempt, as compact lists (see
  ``_fake_control.FakeLog``).

SIGTERM (the bench's ``Server.stop``) ends uvicorn's loop; the fake is stopped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from fakes import FakeArk

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"  # holds the ``fakes`` package
QUEUED_SECONDS = 0.5  # queued → running upstream (a callback each, when configured)
RUNNING_SECONDS = 3600.0  # never reached: the bench asks for every completion
TICK = 0.25  # the fake's schedule ticker (its default 0.02 s walks 1,000 tasks 50×/s)
CALLBACK_TIMEOUT = 10.0
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class Completer:
    """Completes tasks upstream on a schedule, in a thread of its own."""

    def __init__(self, fake: FakeArk) -> None:
        self.fake = fake
        self.planned = 0
        self.done = 0
        self.errors: list[str] = []
        self._thread: threading.Thread | None = None

    def start(self, start: float, spread: float) -> int:
        if self._thread is not None:
            raise RuntimeError("the completions were already started")
        order = sorted(self.fake.tasks.values(), key=lambda t: t.seq)
        ids = [t.id for t in order if t.status not in self.fake.TERMINAL]
        self.planned = len(ids)
        self._thread = threading.Thread(
            target=self._run, args=(ids, start, spread), name="completer", daemon=True
        )
        self._thread.start()
        return self.planned

    def _run(self, ids: list[str], start: float, spread: float) -> None:
        last = max(len(ids) - 1, 1)
        for i, task_id in enumerate(ids):
            delay = start + spread * i / last - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                self.fake.complete(task_id)
            except Exception as exc:  # a bug in the fake: count it, go on
                self.errors.append(f"{task_id}: {type(exc).__name__}: {exc}")
            self.done += 1

    @property
    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()


class SendTimes:
    """When each callback POST started (the fake records only when it ended): an httpx event
    hook on the client the fake's sender uses, so its queueing and the receiver's answer time
    can be told apart."""

    def __init__(self) -> None:
        # (task id, status) → the start of each attempt, in order (attempts are sequential)
        self.starts: dict[tuple[str, str], list[float]] = defaultdict(list)

    async def hook(self, request: httpx.Request) -> None:
        with_body = orjson.loads(request.content)
        self.starts[(str(with_body.get("id")), str(with_body.get("status")))].append(time.time())

    def started(self, task_id: str, status: str, attempt: int) -> float | None:
        starts = self.starts.get((task_id, status), [])
        return starts[attempt - 1] if 0 < attempt <= len(starts) else None

    def install(self, fake: FakeArk) -> None:
        """The fake's sender creates its client lazily unless one is there (a private
        attribute of ``tests/fakes``: the bench only, never the tests)."""
        sender = fake._sender
        sender._client = httpx.AsyncClient(trust_env=False, event_hooks={"request": [self.hook]})


def snapshot(fake: FakeArk, completer: Completer, sends: SendTimes) -> dict[str, Any]:
    """Tasks, requests and callbacks as lists of fields (a few MB at most for 5,000 tasks)."""
    tasks = [[t.id, t.seq, t.status, t.completed_at] for t in fake.tasks.values()]
    requests = [
        [r.endpoint, r.status, r.at, r.path_params.get("task_id") or r.path_params.get("name")]
        for r in fake.requests
    ]
    callbacks = [
        [
            c.task_id,
            c.status,
            c.response_status,
            c.error,
            c.at,
            sends.started(c.task_id, c.status, c.attempt),
        ]
        for c in fake.callbacks
    ]
    return {
        "tasks": tasks,
        "requests": requests,
        "callbacks": callbacks,
        "callbacks_dropped": fake.callbacks_dropped,
        "internal_errors": fake.internal_errors + completer.errors,
    }


def control_app(fake: FakeArk, sends: SendTimes) -> Starlette:
    completer = Completer(fake)

    async def healthz(request: Request) -> Response:
        return json({"ok": True})

    async def state(request: Request) -> Response:
        counts = {s: fake.count(s) for s in STATUSES}
        return json(
            {
                "tasks": sum(counts.values()),
                "counts": counts,
                "callbacks": len(fake.callbacks),
                "callbacks_dropped": fake.callbacks_dropped,
                "completions_planned": completer.planned,
                "completions_done": completer.done,
                "completer_finished": completer.finished,
            }
        )

    async def complete(request: Request) -> Response:
        body = orjson.loads(await request.body())
        try:
            count = completer.start(float(body["start"]), float(body["spread"]))
        except RuntimeError as exc:
            return json({"error": str(exc)}, 409)
        return json({"count": count})

    async def wait_callbacks(request: Request) -> Response:
        body = orjson.loads(await request.body())
        timeout = min(float(body.get("timeout", 10.0)), 120.0)
        idle = await asyncio.to_thread(fake.wait_for_callbacks, timeout)
        return json({"idle": idle})

    async def log(request: Request) -> Response:
        return json(await asyncio.to_thread(snapshot, fake, completer, sends))

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/state", state),
            Route("/complete", complete, methods=["POST"]),
            Route("/callbacks/wait", wait_callbacks, methods=["POST"]),
            Route("/log", log),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True, help="the fake Ark's port")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--max-queued", type=int, required=True)
    parser.add_argument("--drop-callbacks", action="store_true", help="never send a callback")
    args = parser.parse_args()

    sys.path.insert(0, str(TESTS_DIR))
    from fakes import FakeArk

    fake = FakeArk(
        api_key=args.api_key,
        max_queued=args.max_queued,
        tick=TICK,
        callback_timeout=CALLBACK_TIMEOUT,
        port=args.port,
    )
    fake.set_schedule(
        queued_seconds=QUEUED_SECONDS,
        running_seconds=RUNNING_SECONDS,
        max_running=None,
        auto_advance=True,
    )
    if args.drop_callbacks:
        fake.callback_drop_rate = 1.0  # configured on every create, delivered never
    sends = SendTimes()
    sends.install(fake)
    fake.start()
    try:
        config = uvicorn.Config(
            control_app(fake, sends),
            host="127.0.0.1",
            port=args.control_port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
        )
        uvicorn.Server(config).run()  # until SIGTERM / SIGINT
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
