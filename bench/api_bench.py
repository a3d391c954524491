"""Benchmark the HTTP API of a real ``videogate serve``: create and poll throughput.

Usage: .venv/bin/python bench/api_bench.py [--requests N] [--polls M] [--concurrency C] [--keep]

What it does, all on 127.0.0.1 and bounded in count and time (about 5 minutes at most):

1. makes a temporary data dir and an API key (``videogate keys create --json``), then starts
   ``videogate serve`` on a free port as a subprocess and waits for ``/healthz``;
2. creates N sandbox tasks (``POST /v1/videos``, concurrency 20) and waits for their renders
   to finish (``--no-drain`` polls while they are still rendering);
3. polls them M times (``GET /v1/videos/{id}``, concurrency C), measuring req/s, p50/p99
   latency, non-200s and the server's own CPU time per poll (``/proc/<pid>/stat``);
4. does the same against a bare Starlette app on uvicorn that returns the same bytes (one
   real poll response), the baseline the API is compared with;
5. times one 8 s 720p task with audio from create to ``completed``.

Load generators: ``wrk`` when it is installed (Debian package ``wrk``; never installed by
this script), ``httpx.AsyncClient`` (HTTP/1.1, C keep-alive connections: C clients of one
connection each, or with ``--shared-pool`` one client with a pool of C, which costs the
client 2-4× more CPU) and a minimal raw asyncio HTTP/1.1 client. Each runs in or beside
this process on the same CPUs as the server, so it competes with the server for them; the
"client µs/req" column says how much.
``--pin`` puts the servers on CPU 0 and the load generators on the rest.

It is a benchmark run by hand, not a test. The servers are always stopped at the end and the
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
from collections.abc import Awaitable, Callable, Sequence
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

TOTAL_SECONDS = 300.0  # hard bound on the whole run
RESERVE_SECONDS = 40.0  # kept back from the poll phases for the render phase and shutdown
PHASE_SECONDS = 60.0  # at most this long for one measured load run
HTTPX_PHASE_SECONDS = 40.0  # the same for httpx, the slowest generator and the least telling
DRAIN_SECONDS = 120.0  # at most this long waiting for the created tasks' renders
WRK_SECONDS = 10
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
            log_level="warning", access_log=False)
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
class Report:
    environment: list[str] = field(default_factory=list)
    create: LoadResult | None = None
    drain: str = ""
    poll_mix: str = ""
    polls: list[tuple[LoadResult, LoadResult | None]] = field(default_factory=list)
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


async def run_bench(args: argparse.Namespace, work: Path, report: Report) -> None:
    end = time.monotonic() + TOTAL_SECONDS

    def phase_deadline(seconds: float = PHASE_SECONDS) -> float:
        return min(time.monotonic() + seconds, end - RESERVE_SECONDS)

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

    data_dir = work / "data"
    port = free_port()
    env = videogate_env(data_dir, port)
    api, key = await start_videogate(env, work, report.servers, cpus=server_cpus)
    await api.wait_ready(f"http://{HOST}:{port}/healthz", 60)

    async with http_clients(port, key, CREATE_CONCURRENCY) as create_clients:
        client = create_clients[0]
        # a. create throughput (one warm-up create first, not counted)
        await client.post("/v1/videos", json=CREATE_BODY)
        log(f"create: {args.requests} × POST /v1/videos at concurrency {CREATE_CONCURRENCY}")
        bodies: list[bytes] = []
        report.create = await measured(
            api,
            httpx_load(
                create_clients,
                "videogate",
                "POST",
                ["/v1/videos"],
                args.requests,
                CREATE_CONCURRENCY,
                phase_deadline(),
                body=json.dumps(CREATE_BODY).encode(),
                bodies=bodies,
            ),
        )
        ids = [str(json.loads(b)["id"]) for b in bodies]
        if not ids:
            raise RuntimeError(f"no task was created:\n{api.log_tail()}")

        if args.no_drain:
            report.drain = "not waited for (--no-drain): polls run while renders are going"
        else:
            log(f"waiting for {len(ids)} renders to finish (at most {DRAIN_SECONDS:.0f} s)")
            mix, waited = await drain(
                client, ids, min(time.monotonic() + DRAIN_SECONDS, end - 2 * PHASE_SECONDS)
            )
            report.drain = f"{waited:.1f} s for the created tasks to end: {dict(mix)}"

        # One real poll response: the baseline's body and its headers.
        sample = await client.get(f"/v1/videos/{ids[0]}")
        sample_status = sample.json()["status"]
        report.poll_mix = (
            f"the sample poll (the baseline's body) is a '{sample_status}' task, "
            f"{len(sample.content)} B"
        )
        body_file = work / "poll_body.json"
        body_file.write_bytes(sample.content)
        poll_after = sample.headers.get("openai-poll-after-ms", "2000")

    bare_port = free_port()
    bare_env = clean_env(
        BENCH_BODY_FILE=str(body_file),
        BENCH_POLL_AFTER_MS=poll_after,
        BENCH_HOST=HOST,
        BENCH_PORT=str(bare_port),
    )
    bare = Server("bare starlette", [sys.executable, "-c", BARE_APP], bare_env, work / "bare.log")
    report.servers.append(bare)
    log(f"starting the bare Starlette baseline on {HOST}:{bare_port}")
    bare.start(server_cpus)
    await bare.wait_ready(f"http://{HOST}:{bare_port}/healthz", 30)

    paths = [f"/v1/videos/{i}" for i in ids]
    conc = args.concurrency
    warmup = max(conc, min(1000, args.polls // 10))

    def raw_requests(p: int) -> list[bytes]:
        return [
            (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{p}\r\nAuthorization: Bearer {key}\r\n"
                "User-Agent: api-bench\r\nAccept: */*\r\n\r\n"
            ).encode()
            for path in paths
        ]

    # b–d. poll throughput, videogate then bare, per load generator
    wrk = shutil.which("wrk")
    if wrk is None:
        report.notes.append(
            "wrk is not installed (apt-get install wrk): only the in-process generators ran"
        )
    else:
        lua = work / "poll.lua"
        lua.write_text(WRK_LUA % {"ids": ", ".join(f'"{i}"' for i in ids), "key": key})
        seconds = max(1, min(WRK_SECONDS, int((end - RESERVE_SECONDS - time.monotonic()) / 3)))
        pair: list[LoadResult] = []
        for server, target, p in ((api, "videogate", port), (bare, "bare", bare_port)):
            log(f"wrk: {target} for {seconds} s at {conc} connections")
            await wrk_load(wrk, p, target, lua, conc, 1)  # warm-up
            pair.append(await measured(server, wrk_load(wrk, p, target, lua, conc, seconds)))
        report.polls.append((pair[0], pair[1]))

    for generator in ("raw", "httpx"):
        results: list[LoadResult] = []
        for server, target, p in ((api, "videogate", port), (bare, "bare", bare_port)):
            if time.monotonic() >= end - RESERVE_SECONDS:
                report.notes.append(f"{generator} {target}: skipped, out of time")
                continue
            log(
                f"{generator}: {args.polls} × GET /v1/videos/{{id}} on {target}, concurrency {conc}"
            )
            if generator == "httpx":
                async with http_clients(p, key, conc, shared_pool=args.shared_pool) as clients:
                    limit = phase_deadline(HTTPX_PHASE_SECONDS)
                    await httpx_load(clients, target, "GET", paths, warmup, conc, limit)
                    result = await measured(
                        server,
                        httpx_load(
                            clients,
                            target,
                            "GET",
                            paths,
                            args.polls,
                            conc,
                            phase_deadline(HTTPX_PHASE_SECONDS),
                        ),
                    )
            else:
                reqs = raw_requests(p)
                await raw_load(p, target, reqs, warmup, conc, phase_deadline())
                result = await measured(
                    server, raw_load(p, target, reqs, args.polls, conc, phase_deadline())
                )
            results.append(result)
        if results:
            report.polls.append((results[0], results[1] if len(results) > 1 else None))

    bare.stop()

    # e. sandbox render end to end
    log("render: one 8 s 720p task with audio, create → completed")
    async with http_client(port, key, 2) as client:
        report.render = await render_once(client, end - 5)


# Output ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:.1f}"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_report(args: argparse.Namespace, report: Report) -> None:
    print()
    print("videogate API bench")
    for line in report.environment:
        print(f"  {line}")
    print()
    header = (
        f"{'phase':<22}{'target':<11}{'requests':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-200':>8}{'server µs/req':>15}{'client µs/req':>15}"
    )
    print(header)
    print("-" * len(header))

    def row(phase: str, r: LoadResult) -> None:
        flag = " (cut short by time budget)" if r.cut_short else ""
        print(
            f"{phase:<22}{r.target:<11}{r.requests:>9}{r.rps:>9.0f}{ms(r.p50):>8}{ms(r.p99):>8}"
            f"{r.non_200:>8}{us(r.per_request_us(r.server_cpu)):>15}"
            f"{us(r.per_request_us(r.client_cpu)):>15}{flag}"
        )

    if report.create is not None:
        row(f"create c={CREATE_CONCURRENCY} httpx", report.create)
    ratios: list[str] = []
    for vg, bare in report.polls:
        row(f"poll c={args.concurrency} {vg.generator}", vg)
        if bare is not None:
            row(f"poll c={args.concurrency} {bare.generator}", bare)
            line = f"{vg.generator:>5}: videogate/bare req/s = {vg.rps / bare.rps:.1%}"
            vg_us, bare_us = vg.per_request_us(vg.server_cpu), bare.per_request_us(bare.server_cpu)
            if vg_us and bare_us:
                line += f"; by server CPU per request = {bare_us / vg_us:.1%}"
            bare_client = bare.per_request_us(bare.client_cpu)
            if bare_us and bare_client and bare_client > bare_us:
                line += " [bare run bound by the load generator: its req/s ratio overstates]"
            ratios.append(line)
    print()
    if report.create is not None:
        print(
            "create: 'server µs/req' includes the in-process worker starting renders "
            "(render processes themselves excluded)"
        )
    if report.drain:
        print(f"drain: {report.drain}")
    if report.poll_mix:
        print(f"poll: {report.poll_mix}")
    for line in ratios:
        print(f"ratio {line}  (goal ≈ 25%)")
    if report.polls:
        print(
            f"latency at c={args.concurrency} is mostly queueing (≈ c / req/s); "
            "'server µs/req' is the service cost"
        )
    if report.render:
        print(f"render e2e, sandbox 8 s 720p + audio: {report.render}")
    for note in report.notes:
        print(f"note: {note}")


# Entry point ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="tasks to create (N)")
    parser.add_argument("--polls", type=int, default=20_000, help="polls per run (M)")
    parser.add_argument("--concurrency", type=int, default=200, help="poll concurrency (C)")
    parser.add_argument("--no-drain", action="store_true", help="poll while renders still run")
    parser.add_argument(
        "--shared-pool",
        action="store_true",
        help="httpx: one client with a pool of C connections, not C clients of one each",
    )
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, load on the rest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    for name in ("requests", "polls", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")

    exit_on_sigterm()
    report = Report()
    report.environment = [
        f"{machine_line()} (other processes on the machine skew every figure)",
        versions(),
        "uvicorn 'auto' picks: "
        + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio (uvloop MISSING)")
        + " + "
        + ("httptools" if importlib.util.find_spec("httptools") else "h11 (httptools MISSING)"),
    ]
    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    try:
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
        try:
            import uvloop
        except ImportError:
            loop_factory = None
        else:
            loop_factory = uvloop.new_event_loop
        failed = run_bounded(
            run_bench(args, work, report), TOTAL_SECONDS, report.notes, loop_factory
        )
    finally:
        load_at_end(report.notes)
        stop_servers(report.servers)
        keep_or_remove(work, args.keep, "server logs, data dir", report.notes)
    print_report(args, report)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
