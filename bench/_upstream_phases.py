"""The measuring phases of ``upstream_bench.py``, one mode at a time: create every task and
wait until the worker has submitted all of them upstream, hold them running, then have the
fake complete them and watch the server's database until every task has ended here.

Imported as ``_upstream_phases`` by ``upstream_bench.py``; not a test, not part of the
package.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import httpx
from _common import Server, http_clients, log, sleep_until
from _fake_control import FakeUpstream
from _tasks_db import Db
from _upstream_report import (
    SAMPLE_SECONDS,
    ModeResult,
    Report,
    claim_batch,
    worker_concurrency,
)

MODEL = "doubao-seedance-2-0-fast-260128"
SUBMIT_SECONDS = 150.0  # creating N tasks and the worker submitting all of them upstream
WAIT_SECONDS = 120.0  # after the last upstream completion, for every task to end here
HOLD_MEASURE_SECONDS = 10.0  # the steady-state poll rate is measured over the hold's end
CREATE_CONCURRENCY = 20
MAX_CREATE_ERRORS = 50

CREATE_BODY = {"model": MODEL, "prompt": "bench", "duration": 4, "resolution": "480p"}


async def create_tasks(
    port: int, key: str, total: int, deadline: float
) -> tuple[int, Counter[str]]:
    """``total`` × ``POST /v1/videos`` at CREATE_CONCURRENCY; returns (created, errors)."""
    errors: Counter[str] = Counter()
    created = issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal created, issued
        while issued < total and time.monotonic() < deadline:
            if sum(errors.values()) >= MAX_CREATE_ERRORS:
                return
            issued += 1
            try:
                response = await client.post("/v1/videos", json=CREATE_BODY)
            except httpx.HTTPError as exc:
                errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
                continue
            if response.status_code != 200:
                errors[f"HTTP {response.status_code}: {response.text[:120]}"] += 1
                continue
            created += 1

    async with http_clients(port, key, CREATE_CONCURRENCY) as clients:
        await asyncio.gather(*(worker(c) for c in clients))
    return created, errors


class Mode:
    """One mode's processes and the handles the phases share."""

    def __init__(
        self,
        result: ModeResult,
        args: argparse.Namespace,
        report: Report,
        fake: FakeUpstream,
        server: Server,
        worker: Server | None,
        db: Db,
        port: int,
        key: str,
        end: float,
    ) -> None:
        self.result, self.args, self.report, self.fake = result, args, report, fake
        self.server, self.worker, self.db = server, worker, db
        self.port, self.key, self.end = port, key, end
        self.engine = server  # the process that polls: the worker's, once it runs


async def submit_all(mode: Mode) -> None:
    """3. Create every task, start the worker (split), wait until all run upstream."""
    result, tasks, end = mode.result, mode.args.tasks, mode.end
    log(f"{result.name}: {tasks} × POST /v1/videos at concurrency {CREATE_CONCURRENCY}")
    submit_deadline = min(time.monotonic() + SUBMIT_SECONDS, end)
    first_post = time.time()
    result.created, result.create_errors = await create_tasks(
        mode.port, mode.key, tasks, submit_deadline
    )
    result.create_seconds = time.time() - first_post
    if result.created == 0:
        raise RuntimeError(f"no task was created:\n{mode.server.log_tail()}")
    if mode.worker is not None:
        log(f"{result.name}: {result.created} tasks queued; starting videogate worker")
        mode.report.servers.append(mode.worker)
        result.worker_started = time.time()
        mode.worker.start(mode.report.server_cpus)
        mode.engine = mode.worker
    log(f"{result.name}: waiting for the worker to submit {result.created} tasks upstream")
    while True:
        sample = mode.db.sample()
        upstream = int((await mode.fake.state())["tasks"])
        if sample.submitted + sample.terminal >= result.created and upstream >= sample.submitted:
            break
        if time.monotonic() >= submit_deadline or not mode.engine.alive():
            result.notes.append(
                f"gave up waiting for submissions: {sample.submitted} of {result.created} "
                f"running upstream, {sample.terminal} ended, {upstream} in the fake"
            )
            break
        await asyncio.sleep(0.2)
    rows = mode.db.rows()
    started = [r.started_at for r in rows if r.started_at is not None]
    if started:
        result.submitted_seconds = max(started) - first_post
    result.submit_latency = [r.started_at - r.created_at for r in rows if r.started_at]
    result.all_submitted = max(started) if started else time.time()


async def hold(mode: Mode) -> None:
    """Every task running upstream for S s; the steady poll rate and CPU over its end."""
    result, args, end = mode.result, mode.args, mode.end
    hold_end = result.all_submitted + args.running_seconds
    result.hold_seconds = args.running_seconds
    measure_from = hold_end - min(HOLD_MEASURE_SECONDS, args.running_seconds)
    log(f"{result.name}: holding every task running upstream for {args.running_seconds:g} s")
    await sleep_until(measure_from, end)
    cpu_before, fake_before = mode.engine.cpu_seconds(), mode.fake.sched_times()
    measure_from = time.time()
    await sleep_until(hold_end, end)
    cpu_after, fake_after = mode.engine.cpu_seconds(), mode.fake.sched_times()
    hold_end = time.time()
    result.hold_from, result.hold_to = measure_from, hold_end
    result.hold_window = hold_end - measure_from
    if cpu_before is not None and cpu_after is not None:
        result.hold_cpu = cpu_after - cpu_before
    result.fake_hold_cpu = fake_after[0] - fake_before[0]
    result.fake_hold_waited = fake_after[1] - fake_before[1]
    if time.monotonic() >= end:
        raise TimeoutError("out of time while holding")


async def complete_and_wait(mode: Mode) -> None:
    """4. The fake completes every task over the spread; watch our database meanwhile."""
    result, args = mode.result, mode.args
    start = time.time() + 0.2
    cpu_before, fake_before = mode.engine.cpu_seconds(), mode.fake.sched_times()
    wait_from = time.time()
    count = await mode.fake.complete(start, args.spread)
    log(f"{result.name}: the fake completes {count} tasks over {args.spread:g} s; waiting here")
    completions_end = start + args.spread
    wait_deadline = min(time.monotonic() + 0.2 + args.spread + WAIT_SECONDS, mode.end)
    concurrency = worker_concurrency() or 0
    batch = claim_batch()
    while True:
        sample = mode.db.sample()
        result.samples += 1
        result.max_leased = max(result.max_leased, sample.leased)
        result.max_due = max(result.max_due, sample.due)
        if sample.due > 0 and sample.leased < concurrency:  # 0: unknown, never
            result.stalled_samples += 1
            if concurrency - sample.leased >= batch:
                result.stalled_batch_samples += 1
        if (
            sample.terminal >= result.created
            and time.time() >= completions_end
            and (await mode.fake.state())["completer_finished"]
        ):
            break
        if time.monotonic() >= wait_deadline or not mode.engine.alive():
            result.notes.append(
                f"stopped waiting: {sample.terminal} of {result.created} ended here"
            )
            break
        await asyncio.sleep(SAMPLE_SECONDS)
    cpu_after, fake_after = mode.engine.cpu_seconds(), mode.fake.sched_times()
    result.wait_window = time.time() - wait_from
    if cpu_before is not None and cpu_after is not None:
        result.wait_cpu = cpu_after - cpu_before
    result.fake_wait_cpu = fake_after[0] - fake_before[0]
    result.fake_wait_waited = fake_after[1] - fake_before[1]
