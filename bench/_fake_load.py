"""The fake upstream's own ceiling, for ``upstream_bench.py``: how fast it takes creates and
answers polls when nothing but a bare client drives it.

Run as a subprocess (``python bench/_fake_load.py BASE_URL API_KEY TASKS CONCURRENCY [PID]``)
so the client does not share the fake's interpreter (and its GIL); prints one JSON line:
``{"creates_per_s": …, "gets_per_s": …, "errors": …}``, plus the fake's CPU per request
(``create_cpu_us``, ``get_cpu_us``, from ``/proc/PID/stat``) when given the fake's PID: a
figure that moves far less with the machine's load than the rates; and the client's own CPU
per request (``client_cpu_us``): near 1 / the rate, the client was the limit. Bounded: TASKS
creates, then TASKS polls, each phase at most 60 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

MODEL = "doubao-seedance-2-0-fast-260128"
PHASE_SECONDS = 60.0


async def phase(
    clients: list[httpx.AsyncClient], jobs: Sequence[tuple[str, str, dict[str, object] | None]]
) -> tuple[float, int, list[str]]:
    """Run ``(method, path, body)`` jobs over the clients; (seconds, errors, created ids)."""
    pending = list(reversed(jobs))
    ids: list[str] = []
    errors = 0
    deadline = time.monotonic() + PHASE_SECONDS

    async def drive(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while pending and time.monotonic() < deadline:
            method, path, body = pending.pop()
            try:
                response = await client.request(method, path, json=body)
            except httpx.HTTPError:
                errors += 1
                continue
            if response.status_code != 200:
                errors += 1
            elif method == "POST":
                ids.append(str(response.json()["id"]))

    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in clients))
    return time.perf_counter() - started, errors, ids


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of every thread of process ``pid`` (0 without one)."""
    if pid is None:
        return 0.0
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(base_url: str, api_key: str, tasks: int, concurrency: int, pid: int | None) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    body: dict[str, object] = {
        "model": MODEL,
        "content": [{"type": "text", "text": "ceiling"}],
        "duration": 4,
        "resolution": "480p",
    }
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=headers, trust_env=False, timeout=10.0)
        for _ in range(concurrency)
    ]
    try:
        creates = [("POST", "/contents/generations/tasks", body)] * tasks
        cpu_0, own_0 = cpu_seconds(pid), own_cpu_seconds()
        create_s, create_errors, ids = await phase(clients, creates)
        cpu_1 = cpu_seconds(pid)
        gets = [("GET", f"/contents/generations/tasks/{i}", None) for i in ids]
        get_s, get_errors, _ = await phase(clients, gets)
        cpu_2, own_2 = cpu_seconds(pid), own_cpu_seconds()
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    figures = {
        "creates_per_s": len(ids) / create_s if create_s > 0 else 0.0,
        "gets_per_s": (len(gets) - get_errors) / get_s if get_s > 0 else 0.0,
        "errors": create_errors + get_errors,
    }
    # The client's own CPU per request: when it is near 1 / the rate, the client was the limit.
    figures["client_cpu_us"] = (own_2 - own_0) / max(len(creates) + len(gets), 1) * 1e6
    if pid is not None:
        # Clock ticks are 10 ms: ±10 ms over a phase of a few hundred requests.
        figures["create_cpu_us"] = (cpu_1 - cpu_0) / max(len(creates), 1) * 1e6
        figures["get_cpu_us"] = (cpu_2 - cpu_1) / max(len(gets), 1) * 1e6
    print(json.dumps(figures))


if __name__ == "__main__":
    url, key, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fake_pid = int(sys.argv[5]) if len(sys.argv) > 5 else None
    asyncio.run(main(url, key, min(n, 5000), min(c, 256), fake_pid))
