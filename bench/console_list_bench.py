"""How the console's Tasks page scales: ``GET /v1/videos`` with and without filters, at the
first page and deep in the list (by cursor), for one key with many tasks.

Seeds N finished tasks straight into a fresh SQLite database, then times the list call in
process (httpx over ASGI, no network). Prints the median and p95 per query.

    .venv/bin/python bench/console_list_bench.py [--tasks 20000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from _common import percentile
from sqlalchemy import insert

from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.store.tables import Task

WORDS = ["fox", "cat", "river", "city", "storm", "garden", "train", "robot", "ocean", "forest"]


async def seed(state: ApiState, key_id: str, count: int) -> list[str]:
    """``count`` tasks, oldest first, one second apart; every 10th failed."""
    base = time.time() - count
    rows: list[dict[str, Any]] = []
    for i in range(count):
        status = "failed" if i % 10 == 0 else "succeeded"
        prompt = f"a {WORDS[i % len(WORDS)]} number {i}"
        rows.append(
            {
                "id": f"video_{uuid.uuid4().hex[:26]}",
                "key_id": key_id,
                "model": "sandbox" if i % 2 else "doubao-seedance-2-0-260128",
                "status": status,
                "request": {"model": "sandbox", "prompt": prompt, "duration": 5},
                "progress": 100,
                "created_at": base + i,
                "updated_at": base + i,
                "completed_at": base + i,
                "deadline_at": base + i + 3600,
                "media_deleted": True,
                "steps": 1,
                "errors_in_a_row": 0,
                "hold_micros": 0,
                "billing_state": "settled" if status == "succeeded" else "refunded",
                "currency": "USD",
                "seconds": 5.0,
            }
        )
    async with state.ctx.store.sessions.begin() as s:
        for start in range(0, len(rows), 1000):
            await s.execute(insert(Task), rows[start : start + 1000])
    return [str(r["id"]) for r in rows]


async def main(tasks: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "var", public_url="http://bench")
        app = create_app(settings, run_worker=False)
        async with app.router.lifespan_context(app):
            state: ApiState = app.state.api
            key = await create_key(state.ctx.store, name="bench")
            ids = await seed(state, key.id, tasks)
            deep = ids[len(ids) // 2]  # a cursor half-way down the list
            queries = {
                "first page": "limit=20",
                "deep page (cursor)": f"limit=20&after={deep}",
                "status=completed": "limit=20&status=completed",
                "status=failed, deep": f"limit=20&status=failed&after={deep}",
                "model=sandbox": "limit=20&model=sandbox",
                "search q=river": "limit=20&q=river",
                "search, rare match": f"limit=20&q=number%20{tasks // 3}",
                "search by id": f"limit=20&q={ids[7]}",
            }
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {key.key}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                print(f"{tasks} tasks for one key; {repeat} calls per query")
                print(f"{'query':<24} {'median ms':>10} {'p95 ms':>8} {'rows':>5}")
                for label, query in queries.items():
                    times = []
                    rows = 0
                    for _ in range(repeat):
                        started = time.perf_counter()
                        r = await c.get(f"/v1/videos?{query}", headers=headers)
                        times.append((time.perf_counter() - started) * 1000)
                        r.raise_for_status()
                        rows = len(r.json()["data"])
                    times.sort()
                    print(
                        f"{label:<24} {statistics.median(times):>10.1f} "
                        f"{percentile(times, 0.95):>8.1f} {rows:>5}"
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.repeat))
