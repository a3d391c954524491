"""The bench's side of the fake Ark upstream (``_fake_ark.py``, a process of its own): start
and stop it, drive it through its control API, read its log; and the fake's own ceiling
under a bare client (``_fake_load.py``, another process).

Imported as ``_fake_control`` by ``upstream_bench.py``; not a test, not part of the package.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import HOST, Server, clean_env, free_port
from _fake_load import sched_times

FAKE_SCRIPT = Path(__file__).with_name("_fake_ark.py")
LOAD_SCRIPT = Path(__file__).with_name("_fake_load.py")
START_SECONDS = 30.0
CEILING_SECONDS = 150.0
CEILING_MIN_TASKS = 2000  # fewer last ~0.1 s on the raw client: one scheduler hiccup shows
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass(frozen=True)
class UpstreamTask:
    id: str
    seq: int
    status: str
    completed_at: float | None  # the fake's own clock (wall time here)


@dataclass(frozen=True)
class Request:
    endpoint: str  # create | get | list | delete | result | unknown
    status: int | None
    at: float
    key: str | None  # the task id of a get, the file name of a result download


@dataclass(frozen=True)
class Callback:
    task_id: str
    status: str  # the task status the callback carried
    response_status: int | None  # None: no HTTP answer
    error: str | None
    at: float  # when the attempt ended (answered, failed or timed out)
    started: float | None = None  # when its POST started (None: not recorded)

    @property
    def answered(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


@dataclass
class FakeLog:
    """What the fake saw, read once at the end of a mode."""

    tasks: dict[str, UpstreamTask] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    callbacks_dropped: int = 0
    internal_errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> FakeLog:
        tasks = (UpstreamTask(*t) for t in data["tasks"])
        return cls(
            tasks={t.id: t for t in tasks},
            requests=[Request(*r) for r in data["requests"]],
            callbacks=[Callback(*c) for c in data["callbacks"]],
            callbacks_dropped=int(data["callbacks_dropped"]),
            internal_errors=[str(x) for x in data["internal_errors"]],
        )


class FakeUpstream:
    """``_fake_ark.py`` as a subprocess (own process group: always stopped with its threads)."""

    def __init__(
        self,
        log_dir: Path,
        label: str,
        *,
        max_queued: int,
        drop_callbacks: bool = False,
        cpus: set[int] | None = None,
    ) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self.api_key = f"ark-bench-{secrets.token_hex(8)}"
        self.cpus = cpus
        argv = [
            sys.executable,
            str(FAKE_SCRIPT),
            f"--port={self.port}",
            f"--control-port={self.control_port}",
            f"--api-key={self.api_key}",
            f"--max-queued={max_queued}",
        ] + (["--drop-callbacks"] if drop_callbacks else [])
        # Its callback sender talks to 127.0.0.1 only: never through a proxy.
        env = {k: v for k, v in clean_env().items() if k.lower() not in PROXY_VARIABLES}
        self.server = Server(f"fake Ark ({label})", argv, env, log_dir / f"fake-ark-{label}.log")
        self._client: httpx.AsyncClient | None = None

    @property
    def base_url(self) -> str:
        """What an Ark client takes as ``base_url``."""
        return f"http://{HOST}:{self.port}/api/v3"

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.control_port}"

    async def start(self) -> None:
        self.server.start(self.cpus)
        await self.server.wait_ready(f"{self.control_url}/healthz", START_SECONDS)
        self._client = httpx.AsyncClient(
            base_url=self.control_url, trust_env=False, timeout=httpx.Timeout(60.0)
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await asyncio.to_thread(self.server.stop)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._client is None:
            raise RuntimeError("the fake is not started")
        response = await self._client.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    async def state(self) -> dict[str, Any]:
        """Tasks by status, callbacks, the completer's progress (see ``_fake_ark.py``)."""
        result: dict[str, Any] = await self._call("GET", "/state")
        return result

    async def complete(self, start: float, spread: float) -> int:
        """Complete every unfinished task in creation order from ``start`` over ``spread`` s
        (done by the fake's process); how many."""
        result = await self._call("POST", "/complete", {"start": start, "spread": spread})
        return int(result["count"])

    async def wait_callbacks(self, timeout: float) -> bool:
        """Whether the fake's callback sender went idle within ``timeout`` s."""
        result = await self._call("POST", "/callbacks/wait", {"timeout": timeout})
        return bool(result["idle"])

    async def log(self) -> FakeLog:
        return FakeLog.parse(await self._call("GET", "/log"))

    def sched_times(self) -> tuple[float, float]:
        """(seconds on a CPU, seconds waiting for one) of the fake's threads so far."""
        return sched_times(self.server.pid)


async def fake_ceiling(
    tasks: int,
    concurrency: int,
    log_dir: Path,
    label: str,
    servers: list[Server],
    cpus: set[int] | None = None,
) -> dict[str, float]:
    """The fake's own creates/s and polls/s (and its CPU per request) under a bare client in
    another process, on a fresh fake (added to ``servers``: always stopped); at least
    CEILING_MIN_TASKS creates, then as many polls."""
    tasks = max(tasks, CEILING_MIN_TASKS)
    fake = FakeUpstream(log_dir, f"{label}-ceiling", max_queued=tasks + 100, cpus=cpus)
    servers.append(fake.server)
    try:
        await fake.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LOAD_SCRIPT),
            fake.base_url,
            fake.api_key,
            str(tasks),
            str(concurrency),
            str(fake.server.pid),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), CEILING_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    finally:
        await fake.stop()
    figures: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return figures
