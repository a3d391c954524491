"""Benchmark the HTTP API of real ``videogate`` processes against a bare ASGI app.

Usage: .venv/bin/python bench/api_bench.py [--generators wrk,raw,httpx] [--seconds S]
       [--loop auto|asyncio|uvloop] [--postgres ADMIN_URL] [--requests N] [--concurrency C]

Everything runs on 127.0.0.1, bounded in count and time (10 minutes at most). Per database
(SQLite; with ``--postgres`` also a new PostgreSQL database, dropped at the end):

1. ``videogate serve`` (API + worker): N sandbox tasks are created and rendered, then
   polled at concurrency C (``GET /v1/videos/{id}``) — the finished-task poll;
2. a bare Starlette app on the same uvicorn and loop returns one real poll response (same
   bytes, same header): the ceiling, measured right after in the same run;
3. ``videogate api`` (no worker) on the same database: create throughput
   (``POST /v1/videos``, wrk at 64 connections), then polls of the tasks it made, which
   stay queued (the unfinished-task poll: the same table read and presenter as a running
   task's), again beside the bare app returning that body.

The report gives req/s, p50/p99, non-200s and the server's own CPU time per request
(``/proc/<pid>/stat``: the least noisy figure on a shared machine), then each phase's share
of the bare app's req/s and p99 against the targets of issue 12.

Load generators: ``wrk`` (Debian package ``wrk``; never installed by this script; the
default), a minimal raw asyncio HTTP/1.1 client, and ``httpx.AsyncClient``. They share the
CPUs with the servers (``--pin``: servers on CPU 0, load on the rest).

A benchmark run by hand, not a test. The servers are always stopped at the end and the
temporary directory removed (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import (
    HOST,
    Server,
    clean_env,
    exit_on_sigterm,
    free_port,
    http_client,
    http_clients,
    keep_or_remove,
    load_at_end,
    log,
    machine_line,
    percentile,
    run_bounded,
    start_videogate,
    stop_servers,
    videogate_env,
)

TOTAL_SECONDS = 600.0  # hard bound on the whole run
RESERVE_SECONDS = 20.0  # kept back from the poll phases for shutdown
PHASE_SECONDS = 60.0  # at most this long for one measured load run
HTTPX_PHASE_SECONDS = 40.0  # the same for httpx, the slowest generator and the least telling
DRAIN_SECONDS = 120.0  # at most this long waiting for the created tasks' renders
WRK_SECONDS = 5
CREATE_CONCURRENCY = 20
TERMINAL = ("completed", "failed")

CREATE_BODY = {
    "model": "sandbox",
    "prompt": "bench",
    "duration": 4,
    "resolution": "480p",
    "generate_audio": False,
}
RENDER_BODY = {
    "model": "sandbox",
    "prompt": "bench: end-to-end render",
    "duration": 8,
    "resolution": "720p",
    "generate_audio": True,
}

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
uvicorn.run(app, host=os.environ["BENCH_HOST"], port=int(os.environ["BENCH_PORT"]),
            log_level="warning", access_log=False, loop=os.environ["BENCH_LOOP"])
"""

WRK_CREATE_LUA = """
wrk.method = "POST"
wrk.path = "/v1/videos"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
"""

WRK_LUA = """
local ids = {%(ids)s}
local n = #ids
local i = 0
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  i = i + 1
  return wrk.format(nil, "/v1/videos/" .. ids[(i %% n) + 1])
end
"""


# Results -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    generator: str
    target: str
    requests: int  # answered requests (any status)
    seconds: float
    p50: float  # seconds
    p99: float
    statuses: Counter[int]
    errors: int  # transport errors, timeouts
    client_cpu: float | None  # CPU seconds the load generator used
    server_cpu: float | None = None  # CPU seconds the server process used
    cut_short: bool = False  # stopped by its time budget before the requested count

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    @property
    def non_200(self) -> int:
        return self.errors + sum(n for status, n in self.statuses.items() if status != 200)

    def per_request_us(self, cpu: float | None) -> float | None:
        return None if cpu is None or self.requests == 0 else cpu / self.requests * 1e6


def summarize(
    generator: str,
    target: str,
    latencies: list[float],
    statuses: Counter[int],
    errors: int,
    seconds: float,
    client_cpu: float,
    cut_short: bool,
) -> LoadResult:
    latencies.sort()
    return LoadResult(
        generator=generator,
        target=target,
        requests=len(latencies),
        seconds=seconds,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        statuses=statuses,
        errors=errors,
        client_cpu=client_cpu,
        cut_short=cut_short,
    )


@dataclass
class Pair:
    """One measured phase: videogate and, when it applies, the bare app in the same run."""

    phase: str  # e.g. "poll finished, SQLite"
    vg: LoadResult
    bare: LoadResult | None = None


@dataclass
class Report:
    environment: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    render: str = ""
    notes: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)


# Processes ------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Load generators ------------------------------------------------------------------------


async def httpx_load(
    clients: Sequence[httpx.AsyncClient],
    target: str,
    method: str,
    paths: Sequence[str],
    total: int,
    concurrency: int,
    deadline: float,
    body: bytes | None = None,
    bodies: list[bytes] | None = None,
) -> LoadResult:
    """``total`` requests from ``concurrency`` coroutines (coroutine k uses client k modulo
    their number); stops early at ``deadline`` (monotonic). Bodies of 200 responses go to
    ``bodies`` when given."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    issued = 0
    headers = {"Content-Type": "application/json"} if body is not None else None

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, issued
        while issued < total and time.monotonic() < deadline:
            path = paths[issued % len(paths)]
            issued += 1
            started = time.perf_counter()
            try:
                response = await client.request(method, path, content=body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
            if bodies is not None and response.status_code == 200:
                bodies.append(response.content)

    workers = min(concurrency, total)
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(clients[k % len(clients)]) for k in range(workers)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    cut = issued < total
    return summarize("httpx", target, latencies, statuses, errors, seconds, cpu, cut)


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


async def raw_load(
    port: int,
    target: str,
    requests: Sequence[bytes],
    total: int,
    concurrency: int,
    deadline: float,
) -> LoadResult:
    """The same as :func:`httpx_load` for GETs, with a minimal keep-alive HTTP/1.1 client on
    asyncio streams: pre-built request bytes, only the status and Content-Length parsed."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    issued = 0

    async def worker() -> None:
        nonlocal errors, issued
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while issued < total and time.monotonic() < deadline and errors < 100:
                request = requests[issued % len(requests)]
                issued += 1
                started = time.perf_counter()
                try:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    match = _CONTENT_LENGTH.search(head)
                    if match is None:
                        raise ValueError("response without Content-Length")
                    await reader.readexactly(int(match.group(1)))
                    status = int(head[9:12])
                except (
                    OSError,
                    ValueError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                ):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
        finally:
            writer.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    cut = issued < total
    return summarize("raw", target, latencies, statuses, errors, seconds, cpu, cut)


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        return math.nan
    return float(match.group(1)) * _WRK_UNITS[match.group(2)]


def parse_wrk(target: str, output: str, client_cpu: float) -> LoadResult:
    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    total = find(r"^\s*(\d+) requests in ([\d.]+\w+),")
    if total is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    p50 = find(r"^\s*50%\s+(\S+)")
    p99 = find(r"^\s*99%\s+(\S+)")
    non_2xx = find(r"Non-2xx or 3xx responses:\s*(\d+)")
    socket_errors = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    requests = int(total.group(1))
    bad = int(non_2xx.group(1)) if non_2xx else 0
    statuses: Counter[int] = Counter({200: requests - bad})
    if bad:
        statuses[0] = bad  # wrk does not say which statuses
    return LoadResult(
        generator="wrk",
        target=target,
        requests=requests,
        seconds=_wrk_seconds(total.group(2)),
        p50=_wrk_seconds(p50.group(1)) if p50 else math.nan,
        p99=_wrk_seconds(p99.group(1)) if p99 else math.nan,
        statuses=statuses,
        errors=sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        client_cpu=client_cpu,
    )


async def wrk_load(
    wrk: str, port: int, target: str, lua: Path, concurrency: int, seconds: int
) -> LoadResult:
    threads = max(1, min(len(os.sched_getaffinity(0)), concurrency))
    argv = [wrk, "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s"]
    argv += ["--timeout", "10s", "--latency", "-s", str(lua), f"http://{HOST}:{port}/"]
    cpu = children_cpu()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out.decode(errors='replace')}")
    return parse_wrk(target, out.decode(errors="replace"), children_cpu() - cpu)


# Phases ---------------------------------------------------------------------------------


async def measured(server: Server, run: Awaitable[LoadResult]) -> LoadResult:
    """Await one (not yet started) load run and attach the server's CPU time during it."""
    before = server.cpu_seconds()
    result = await run
    after = server.cpu_seconds()
    if before is None or after is None:
        raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
    result.server_cpu = after - before
    return result


async def drain(
    client: httpx.AsyncClient, ids: Sequence[str], deadline: float
) -> tuple[Counter[str], float]:
    """Wait (until ``deadline``) for every task to end; returns their statuses, wait time."""
    status = dict.fromkeys(ids, "?")
    started = time.monotonic()
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def check(task_id: str) -> None:
        async with gate:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = await client.get(f"/v1/videos/{task_id}")
                status[task_id] = str(response.json()["status"])

    while True:
        pending = [i for i, s in status.items() if s not in TERMINAL]
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.gather(*(check(i) for i in pending))
        if any(status[i] not in TERMINAL for i in pending):
            await asyncio.sleep(1.0)
    return Counter(status.values()), time.monotonic() - started


async def render_once(client: httpx.AsyncClient, deadline: float) -> str:
    started = time.perf_counter()
    response = await client.post("/v1/videos", json=RENDER_BODY)
    if response.status_code != 200:
        return f"create failed: HTTP {response.status_code} {response.text[:200]}"
    task = response.json()
    for _ in range(int(120 / 0.2)):
        if task["status"] in TERMINAL or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
        task = (await client.get(f"/v1/videos/{task['id']}")).json()
    seconds = time.perf_counter() - started
    if task["status"] != "completed":
        error = task.get("error") or {}
        return f"{task['status']} after {seconds:.2f} s {error.get('message', '')}".rstrip()
    return (
        f"{seconds:.2f} s create → completed ({task['size']}, {task['seconds']} s, "
        f"audio {task['generate_audio']}; polled every 0.2 s, so ±0.2 s)"
    )


def versions() -> str:
    parts = []
    for name in ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "sqlalchemy", "httpx"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} MISSING")
    return ", ".join(parts)


# Orchestration --------------------------------------------------------------------------


@dataclass
class Run:
    """What every phase of one run shares."""

    args: argparse.Namespace
    work: Path
    report: Report
    end: float  # monotonic: the whole run's hard end
    server_cpus: set[int] | None
    wrk: str | None

    def deadline(self, seconds: float = PHASE_SECONDS) -> float:
        return min(time.monotonic() + seconds, self.end - RESERVE_SECONDS)


async def start_bare(run: Run, body: bytes, poll_after: str, label: str) -> tuple[Server, int]:
    body_file = run.work / f"bare_{label}.json"
    body_file.write_bytes(body)
    port = free_port()
    env = clean_env(
        BENCH_BODY_FILE=str(body_file),
        BENCH_POLL_AFTER_MS=poll_after,
        BENCH_HOST=HOST,
        BENCH_PORT=str(port),
        BENCH_LOOP=run.args.loop,
    )
    bare = Server(f"bare ({label})", [sys.executable, "-c", BARE_APP], env, run.work / "bare.log")
    run.report.servers.append(bare)
    bare.start(run.server_cpus)
    await bare.wait_ready(f"http://{HOST}:{port}/healthz", 30)
    return bare, port


async def poll_load(
    run: Run, server: Server, port: int, key: str, ids: Sequence[str], target: str, gen: str
) -> LoadResult:
    """Polls of ``ids`` at the run's concurrency with one generator, after a warm-up."""
    conc, polls = run.args.concurrency, run.args.polls
    paths = [f"/v1/videos/{i}" for i in ids]
    if gen == "wrk" and run.wrk is not None:
        lua = run.work / "poll.lua"
        lua.write_text(WRK_LUA % {"ids": ", ".join(f'"{i}"' for i in ids), "key": key})
        await wrk_load(run.wrk, port, target, lua, conc, 1)  # warm-up
        return await measured(server, wrk_load(run.wrk, port, target, lua, conc, run.args.seconds))
    if gen == "httpx":
        async with http_clients(port, key, conc) as clients:
            await httpx_load(clients, target, "GET", paths, conc * 2, conc, run.deadline())
            return await measured(
                server,
                httpx_load(clients, target, "GET", paths, polls, conc, run.deadline()),
            )
    reqs = [
        (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "User-Agent: api-bench\r\nAccept: */*\r\n\r\n"
        ).encode()
        for path in paths
    ]
    await raw_load(port, target, reqs, max(conc, polls // 10), conc, run.deadline())
    return await measured(server, raw_load(port, target, reqs, polls, conc, run.deadline()))


async def compare_polls(
    run: Run, phase: str, api: Server, port: int, key: str, ids: Sequence[str], sample: bytes
) -> None:
    """Polls of ``ids`` on videogate, then on a bare app returning ``sample``, per generator."""
    bare, bare_port = await start_bare(run, sample, "2000", phase.split(",")[0].split()[-1])
    try:
        for gen in run.args.generators:
            log(f"{phase}: {gen} on videogate, then on the bare app, c={run.args.concurrency}")
            vg = await poll_load(run, api, port, key, ids, "videogate", gen)
            base = await poll_load(run, bare, bare_port, key, ids, "bare", gen)
            run.report.pairs.append(Pair(f"{phase} [{gen}]", vg, base))
    finally:
        bare.stop()


async def finished_phase(run: Run, label: str, env: dict[str, str]) -> None:
    """``videogate serve``: N sandbox renders, then polls of the finished tasks."""
    port = int(env["VIDEOGATE_PORT"])
    api, key = await start_videogate(env, run.work, run.report.servers, cpus=run.server_cpus)
    try:
        await api.wait_ready(f"http://{HOST}:{port}/healthz", 60)
        async with http_clients(port, key, CREATE_CONCURRENCY) as clients:
            log(f"{label}: creating {run.args.requests} sandbox tasks and waiting for them")
            bodies: list[bytes] = []
            await httpx_load(
                clients,
                "videogate",
                "POST",
                ["/v1/videos"],
                run.args.requests,
                CREATE_CONCURRENCY,
                run.deadline(),
                body=json.dumps(CREATE_BODY).encode(),
                bodies=bodies,
            )
            ids = [str(json.loads(b)["id"]) for b in bodies]
            if not ids:
                raise RuntimeError(f"no task was created:\n{api.log_tail()}")
            mix, waited = await drain(clients[0], ids, run.deadline(DRAIN_SECONDS))
            run.report.facts.append(
                f"{label}: {len(ids)} renders ended in {waited:.1f} s: {dict(mix)}"
            )
            if mix.get("completed", 0) < len(ids):
                raise RuntimeError(f"{label}: not every task completed: {dict(mix)}")
            sample = await clients[0].get(f"/v1/videos/{ids[0]}")
        await compare_polls(run, f"poll finished, {label}", api, port, key, ids, sample.content)
        if run.args.render and label == "SQLite":
            log("render: one 8 s 720p task with audio, create → completed")
            async with http_client(port, key, 2) as client:
                run.report.render = await render_once(client, run.end - 5)
    finally:
        api.stop()


async def create_and_running_phase(run: Run, label: str, env: dict[str, str]) -> None:
    """``videogate api`` (no worker): create throughput, then polls of the unfinished tasks
    it made (a queued task's poll reads the same row and presenter as a running one's)."""
    port = int(env["VIDEOGATE_PORT"])
    api, key = await start_videogate(
        env, run.work, run.report.servers, cpus=run.server_cpus, command="api"
    )
    try:
        await api.wait_ready(f"http://{HOST}:{port}/healthz", 60)
        async with http_client(port, key, 4) as client:
            await client.post("/v1/videos", json=CREATE_BODY)  # warm-up
            if run.wrk is not None:
                log(f"{label}: create throughput, wrk for {run.args.seconds} s at c=64")
                lua = run.work / "create.lua"
                lua.write_text(WRK_CREATE_LUA % {"body": json.dumps(CREATE_BODY), "key": key})
                created = await measured(
                    api, wrk_load(run.wrk, port, "videogate", lua, 64, run.args.seconds)
                )
            else:
                async with http_clients(port, key, CREATE_CONCURRENCY) as clients:
                    created = await measured(
                        api,
                        httpx_load(
                            clients,
                            "videogate",
                            "POST",
                            ["/v1/videos"],
                            2000,
                            CREATE_CONCURRENCY,
                            run.deadline(),
                            body=json.dumps(CREATE_BODY).encode(),
                        ),
                    )
            run.report.pairs.append(Pair(f"create, {label} [{created.generator}]", created))
            listed = (await client.get("/v1/videos?limit=100")).json()["data"]
            ids = [str(t["id"]) for t in listed if t["status"] in ("queued", "in_progress")]
            if not ids:
                raise RuntimeError(f"{label}: no unfinished task to poll")
            sample = await client.get(f"/v1/videos/{ids[0]}")
        await compare_polls(run, f"poll unfinished, {label}", api, port, key, ids, sample.content)
    finally:
        api.stop()


async def new_postgres_database(admin_url: str, notes: list[str]) -> tuple[str, str]:
    import asyncpg

    name = f"vg_bench_{os.getpid()}_{int(time.time())}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    notes.append(f"PostgreSQL database {name} (dropped at the end)")
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_postgres_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_bench(args: argparse.Namespace, work: Path, report: Report) -> None:
    all_cpus = os.sched_getaffinity(0)
    server_cpus: set[int] | None = None
    if args.pin and len(all_cpus) >= 2:
        server_cpus = {min(all_cpus)}
        os.sched_setaffinity(0, all_cpus - server_cpus)  # this process and wrk
        report.notes.append(
            f"--pin: servers on CPU {sorted(server_cpus)}, load generators on "
            f"{sorted(all_cpus - server_cpus)}"
        )
    else:
        report.notes.append(
            f"the load generator shares the {len(all_cpus)} CPUs with the server and competes "
            "with it: req/s is a lower bound, more so for the bare baseline; "
            "'server µs/req' is the generator-independent figure"
        )
    wrk = shutil.which("wrk")
    if wrk is None and "wrk" in args.generators:
        report.notes.append("wrk is not installed (apt-get install wrk): the raw client ran")
        args.generators = [g for g in args.generators if g != "wrk"] or ["raw"]
    run = Run(args, work, report, time.monotonic() + TOTAL_SECONDS, server_cpus, wrk)

    databases: list[tuple[str, str]] = [("SQLite", "")]
    pg_name = None
    if args.postgres:
        pg_name, pg_url = await new_postgres_database(args.postgres, report.notes)
        databases.append(("PostgreSQL", pg_url))
    try:
        for label, url in databases:
            data_dir = work / label.lower()
            extra = {"VIDEOGATE_HTTP_LOOP": args.loop}
            if url:
                extra["VIDEOGATE_DATABASE_URL"] = url
            env = videogate_env(data_dir, free_port(), **extra)
            await finished_phase(run, label, env)
            env = videogate_env(data_dir, free_port(), **extra)
            await create_and_running_phase(run, label, env)
    finally:
        if pg_name is not None:
            await drop_postgres_database(args.postgres, pg_name)


# Output ---------------------------------------------------------------------------------

# The targets of issue 12: share of the bare app's req/s in the same run, per phase.
TARGETS = {"poll finished, SQLite": 0.50, "poll unfinished, SQLite": 0.25}
CREATE_TARGET = 2300.0  # creates/s
PG_TARGET = 0.60  # PostgreSQL poll req/s over SQLite's, same phase and generator
P99_TARGET = 0.020  # s, or at most 1.5 × the bare app's p99
P99_BARE_FACTOR = 1.5


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:.1f}"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(args: argparse.Namespace, report: Report) -> None:
    print()
    print("videogate API bench")
    for line in report.environment:
        print(f"  {line}")
    print()
    header = (
        f"{'phase':<38}{'target':<11}{'requests':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>9}"
        f"{'non-200':>8}{'server µs/req':>15}{'client µs/req':>15}"
    )
    print(header)
    print("-" * len(header))

    def row(phase: str, r: LoadResult) -> None:
        flag = " (cut short by time budget)" if r.cut_short else ""
        print(
            f"{phase:<38}{r.target:<11}{r.requests:>9}{r.rps:>9.0f}{ms(r.p50):>8}{ms(r.p99):>9}"
            f"{r.non_200:>8}{us(r.per_request_us(r.server_cpu)):>15}"
            f"{us(r.per_request_us(r.client_cpu)):>15}{flag}"
        )

    for pair in report.pairs:
        row(pair.phase, pair.vg)
        if pair.bare is not None:
            row(pair.phase, pair.bare)
    print()
    by_phase = {p.phase: p for p in report.pairs}
    for pair in report.pairs:
        if pair.bare is None:
            if pair.phase.startswith("create"):
                print(
                    f"{pair.phase}: {pair.vg.rps:.0f} creates/s "
                    f"(target ≥ {CREATE_TARGET:.0f}: {verdict(pair.vg.rps >= CREATE_TARGET)})"
                )
            continue
        vg, bare = pair.vg, pair.bare
        share = vg.rps / bare.rps
        line = f"{pair.phase}: videogate/bare req/s = {share:.1%}"
        vg_us, bare_us = vg.per_request_us(vg.server_cpu), bare.per_request_us(bare.server_cpu)
        if vg_us and bare_us:
            line += f", by server CPU per request = {bare_us / vg_us:.1%}"
        target = TARGETS.get(pair.phase.split(" [")[0])
        if target is not None:
            line += f" (target ≥ {target:.0%}: {verdict(share >= target)})"
        p99_ok = vg.p99 <= P99_TARGET or vg.p99 <= P99_BARE_FACTOR * bare.p99
        line += (
            f"; p99 {ms(vg.p99)} ms vs bare {ms(bare.p99)} ms "
            f"(target ≤ 20 ms or ≤ 1.5× bare: {verdict(p99_ok)})"
        )
        print(line)
        if "PostgreSQL" in pair.phase:
            sqlite = by_phase.get(pair.phase.replace("PostgreSQL", "SQLite"))
            if sqlite is not None:
                ratio = vg.rps / sqlite.vg.rps
                print(
                    f"  PostgreSQL/SQLite req/s = {ratio:.1%} "
                    f"(target ≥ {PG_TARGET:.0%}: {verdict(ratio >= PG_TARGET)})"
                )
    for fact in report.facts:
        print(f"fact: {fact}")
    if report.render:
        print(f"render e2e, sandbox 8 s 720p + audio: {report.render}")
    print(
        f"latency at c={args.concurrency} is mostly queueing (≈ c / req/s); "
        "'server µs/req' is the service cost, the least noisy figure on a shared machine"
    )
    for note in report.notes:
        print(f"note: {note}")


# Entry point ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20, help="tasks to render (N)")
    parser.add_argument("--polls", type=int, default=20_000, help="polls per raw/httpx run (M)")
    parser.add_argument("--seconds", type=int, default=WRK_SECONDS, help="per wrk run")
    parser.add_argument("--concurrency", type=int, default=200, help="poll concurrency (C)")
    parser.add_argument(
        "--generators",
        type=lambda v: [x for x in v.split(",") if x],
        default=["wrk"],
        help="comma-separated: wrk, raw, httpx (default wrk; raw when wrk is missing)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop of both servers (VIDEOGATE_HTTP_LOOP)",
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="ADMIN_URL",
        help="also run on a new database made through this URL, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--render", action="store_true", help="also time one 8 s 720p render")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, load on the rest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    for name in ("requests", "polls", "concurrency", "seconds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    unknown = set(args.generators) - {"wrk", "raw", "httpx"}
    if unknown:
        parser.error(f"unknown generator(s): {', '.join(sorted(unknown))}")

    exit_on_sigterm()
    report = Report()
    report.environment = [
        f"{machine_line()} (other processes on the machine skew every figure)",
        versions(),
        f"event loop of both servers: {args.loop} (uvicorn 'auto' picks "
        + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
        + "), HTTP parser: "
        + ("httptools" if importlib.util.find_spec("httptools") else "h11"),
    ]
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    try:
        failed = run_bounded(run_bench(args, work, report), TOTAL_SECONDS, report.notes)
    finally:
        load_at_end(report.notes, warn_busy=True)
        stop_servers(report.servers)
        keep_or_remove(work, args.keep, "server logs, data dirs", report.notes)
    print_report(args, report)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
