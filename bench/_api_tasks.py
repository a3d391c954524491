"""The tasks ``api_bench.py`` makes: waiting for their renders, and one timed render."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence

import httpx

CREATE_CONCURRENCY = 20
TERMINAL = ("completed", "failed")

RENDER_BODY = {
    "model": "sandbox",
    "prompt": "bench: end-to-end render",
    "duration": 8,
    "resolution": "720p",
    "generate_audio": True,
}


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
