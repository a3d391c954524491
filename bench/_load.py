"""Load generators for ``api_bench.py`` and what they measure: ``wrk`` (parsed from its
output), a minimal raw asyncio HTTP/1.1 client and ``httpx``, each giving a
:class:`LoadResult` (req/s, p50/p99, statuses, client and server CPU).

Imported as ``_load`` by the scripts next to it; not a test, not part of the package.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import resource
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import HOST, Server, percentile

# wrk scripts: a create of one body, and polls of the given task ids in turn.
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

#: The same polls, each connection waiting ``%(every_ms)s`` ms after an answer before its next
#: request: clients polling at a pace, not as fast as the server answers. wrk's latency
#: counts from the request's send, so the think time is not in it.
WRK_PACED_LUA = (
    WRK_LUA
    + """
delay = function()
  return %(every_ms)s
end
"""
)


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


# Generators -----------------------------------------------------------------------------


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


async def measured(server: Server, run: Awaitable[LoadResult]) -> LoadResult:
    """Await one (not yet started) load run and attach the server's CPU time during it."""
    before = server.cpu_seconds()
    result = await run
    after = server.cpu_seconds()
    if before is None or after is None:
        raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
    result.server_cpu = after - before
    return result
