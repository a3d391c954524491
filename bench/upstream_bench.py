"""Benchmark how quickly videogate notices upstream completions with N Ark tasks in flight.

Usage: .venv/bin/python bench/upstream_bench.py [--tasks N] [--running-seconds S]
       [--spread SECONDS] [--no-callbacks] [--topology split|serve] [--keep]

What it does, all on 127.0.0.1 and bounded in count and time (about 9 minutes at most):

0. measures the fake's own ceiling: a bare client in a subprocess sends N creates, then N
   polls, at concurrency 32 to a fresh FakeArk; what the engine is compared with;

1. starts a FakeArk (``tests/fakes``: Volcengine Ark's task API, in this process, uvicorn in
   a thread) that accepts every task (``max_queued`` above N), moves each to ``running``
   after 0.5 s and never finishes one by itself; the script completes them with
   ``ark.complete(id)`` and takes the fake's own ``completed_at`` as the upstream time;
2. writes a TOML config with one ``ark`` route for doubao-seedance-2-0-fast-260128 to the
   fake (``max_in_flight`` above N), makes a key (``videogate keys create --json``) and
   starts ``videogate api`` as a subprocess on a free port with a temporary data dir
   (``--topology serve``: ``videogate serve``, API and worker in one process);
3. creates N tasks (``POST /v1/videos``, concurrency 20); with ``split`` they wait
   ``queued`` until ``videogate worker`` starts after the last create, so the submit rate
   (first → last create the fake accepted) is the worker's alone. Waits until the worker has
   submitted every one upstream (``running`` with an upstream id in the database, N tasks
   in the fake), then leaves them running S more seconds (default 30: long enough for
   every task's poll interval to reach its 10 s cap, as with a real multi-minute job);
4. completes them upstream in creation order, evenly spread over ``--spread`` seconds
   (default 10; 0 = all at once), and watches the database read-only (sqlite3: cheaper
   and more precise than polling the API) until every task has ended;
5. reports, per mode, upstream completion → ``completed`` here (p50/p90/p99/max), split
   into stages from the fake's request log (the poll that saw ``succeeded``, the result
   download), the upstream polls per second while holding and while waiting, the server's
   CPU per poll, the worker's lease/backlog samples, sockets to the fake, callbacks, and
   every failure with its reason.

Two modes, each with a fresh fake, servers and data dir, both with ``VIDEOGATE_PUBLIC_URL``
set (every create carries a ``callback_url``): ``dropped``, where the fake drops every
callback (polling alone must notice completions), then ``callbacks``, where the fake POSTs
each status change to ``/v1/callbacks/ark/{token}`` of the API process, which must wake the
worker (another process with ``split``); ``--no-callbacks`` runs only the first.

The fake shares this process (and the machine's CPUs) with the load generator, and the
server with both: on a small machine every figure is an upper bound.

It is a benchmark run by hand, not a test. The fake and the server are always stopped at
the end and the temporary directory removed (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from _common import (
    HOST,
    Server,
    exit_on_sigterm,
    free_port,
    http_clients,
    keep_or_remove,
    load_at_end,
    log,
    machine_line,
    run_bounded,
    sleep_until,
    socket_states,
    start_videogate,
    stop_servers,
    videogate_command,
    videogate_env,
)
from _tasks_db import Db
from _upstream_report import (
    CEILING_CONCURRENCY,
    SAMPLE_SECONDS,
    ModeResult,
    Report,
    collect,
    poll_cap,
    print_report,
    route_poll_limit,
    worker_concurrency,
)

if TYPE_CHECKING:
    from fakes import FakeArk

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = ROOT / "tests"  # holds the ``fakes`` package

MODEL = "doubao-seedance-2-0-fast-260128"
TOTAL_SECONDS = 540.0  # hard bound on the whole run
START_SECONDS = 60.0  # server start, key creation
SUBMIT_SECONDS = 150.0  # creating N tasks and the worker submitting all of them upstream
WAIT_SECONDS = 120.0  # after the last upstream completion, for every task to end here
HOLD_MEASURE_SECONDS = 10.0  # the steady-state poll rate is measured over the hold's end
CREATE_CONCURRENCY = 20
MAX_CREATE_ERRORS = 50
FAKE_QUEUED_SECONDS = 0.5  # queued → running upstream (a callback each, when configured)
FAKE_RUNNING_SECONDS = 3600.0  # never reached: the script completes every task
FAKE_TICK = 0.25  # the fake's schedule ticker (its default 0.02 s walks 1,000 tasks 50×/s)

CREATE_BODY = {"model": MODEL, "prompt": "bench", "duration": 4, "resolution": "480p"}


# Processes ------------------------------------------------------------------------------


def new_fake(tasks: int) -> FakeArk:
    """A FakeArk that takes every task and lets the script decide when each one ends."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    from fakes import FakeArk

    fake = FakeArk(
        api_key=f"ark-bench-{secrets.token_hex(8)}",
        max_queued=tasks + 100,
        tick=FAKE_TICK,
        callback_timeout=10.0,
    )
    fake.set_schedule(
        queued_seconds=FAKE_QUEUED_SECONDS,
        running_seconds=FAKE_RUNNING_SECONDS,
        max_running=None,
        auto_advance=True,
    )
    return fake


async def fake_ceiling(tasks: int) -> dict[str, float]:
    """The fake's own creates/s and polls/s under a bare client in a subprocess."""
    fake = new_fake(tasks)
    await asyncio.to_thread(fake.start)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("_fake_load.py")),
            fake.base_url,
            fake.api_key,
            str(tasks),
            str(CEILING_CONCURRENCY),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    finally:
        await asyncio.to_thread(fake.stop)
    figures: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


# Phases ---------------------------------------------------------------------------------


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


async def complete_all(
    fake: FakeArk, upstream_ids: Sequence[str], start: float, spread: float
) -> None:
    """Complete the tasks upstream in order, evenly from ``start`` (wall clock) over ``spread``."""
    last = max(len(upstream_ids) - 1, 1)
    for i, upstream_id in enumerate(upstream_ids):
        delay = start + spread * i / last - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        fake.complete(upstream_id)


async def run_mode(
    result: ModeResult, args: argparse.Namespace, work: Path, report: Report, end: float
) -> None:
    mode_dir = work / result.name
    mode_dir.mkdir()
    data_dir = mode_dir / "data"
    tasks = args.tasks

    # 0. the fake's own ceiling, 1. the fake upstream
    log(f"{result.name}: the fake's own ceiling ({tasks} creates, then polls)")
    result.ceiling = await fake_ceiling(tasks)
    fake = new_fake(tasks)
    if not result.callbacks:
        fake.callback_drop_rate = 1.0  # configured everywhere, delivered never
    report.fakes.append(fake)
    await asyncio.to_thread(fake.start)
    log(f"{result.name}: FakeArk on {fake.base_url}")

    # 2. config, key, server
    port = free_port()
    config = mode_dir / "videogate.toml"
    config.write_text(
        '[[groups]]\nname = "default"\n\n'
        "[[routes]]\n"
        'name = "bench-ark"\n'
        f'model = "{MODEL}"\n'
        'provider = "ark"\n'
        f'base_url = "{fake.base_url}"\n'
        'api_key_env = "BENCH_ARK_API_KEY"\n'
        f'upstream_model = "{MODEL}"\n'
        f"max_in_flight = {tasks + 100}\n"
        'groups = ["default"]\n'
    )
    extra = {
        "VIDEOGATE_CONFIG": str(config),
        "VIDEOGATE_ALLOW_PRIVATE_URLS": "1",  # the fake's result URLs are on loopback
        "BENCH_ARK_API_KEY": fake.api_key,
    }
    extra["VIDEOGATE_PUBLIC_URL"] = f"http://{HOST}:{port}"
    env = videogate_env(data_dir, port, **extra)
    split = report.topology == "split"
    server, key = await start_videogate(
        env,
        mode_dir,
        report.servers,
        label=result.name,
        timeout=START_SECONDS,
        command="api" if split else "serve",
    )
    worker = None
    if split:  # started by _measure once every task is queued
        worker = Server(
            f"videogate worker ({result.name})",
            [videogate_command(), "worker"],
            env,
            mode_dir / "videogate-worker.log",
        )
    try:
        await server.wait_ready(f"http://{HOST}:{port}/healthz", START_SECONDS)
        db = Db(data_dir / "videogate.db")
        await _measure(result, args, fake, server, worker, report, db, port, key, end)
    finally:
        result.log_problems = server.log_problems() + (worker.log_problems() if worker else [])
        result.fake_errors = fake.internal_errors
        if worker is not None:
            worker.stop()
        server.stop()
        await asyncio.to_thread(fake.stop)


async def _measure(
    result: ModeResult,
    args: argparse.Namespace,
    fake: FakeArk,
    server: Server,
    worker: Server | None,
    report: Report,
    db: Db,
    port: int,
    key: str,
    end: float,
) -> None:
    tasks = args.tasks
    engine = server  # the process that polls: the worker's, when it is a process of its own
    try:
        # 3. create, wait until every task is running upstream
        log(f"{result.name}: {tasks} × POST /v1/videos at concurrency {CREATE_CONCURRENCY}")
        submit_deadline = min(time.monotonic() + SUBMIT_SECONDS, end)
        first_post = time.time()
        result.created, result.create_errors = await create_tasks(port, key, tasks, submit_deadline)
        result.create_seconds = time.time() - first_post
        if result.created == 0:
            raise RuntimeError(f"no task was created:\n{server.log_tail()}")
        if worker is not None:
            log(f"{result.name}: {result.created} tasks queued; starting videogate worker")
            report.servers.append(worker)
            result.worker_started = time.time()
            worker.start()
            engine = worker
        log(f"{result.name}: waiting for the worker to submit {result.created} tasks upstream")
        while True:
            sample = db.sample()
            upstream = len(fake.tasks)
            if (
                sample.submitted + sample.terminal >= result.created
                and upstream >= sample.submitted
            ):
                break
            if time.monotonic() >= submit_deadline or not engine.alive():
                result.notes.append(
                    f"gave up waiting for submissions: {sample.submitted} of {result.created} "
                    f"running upstream, {sample.terminal} ended, {upstream} in the fake"
                )
                break
            await asyncio.sleep(0.2)
        rows = db.rows()
        started = [r.started_at for r in rows if r.started_at is not None]
        if started:
            result.submitted_seconds = max(started) - first_post
        result.submit_latency = [r.started_at - r.created_at for r in rows if r.started_at]
        all_submitted = max(started) if started else time.time()

        # Hold: every task running upstream; measure the steady poll rate at the end.
        hold_end = all_submitted + args.running_seconds
        result.hold_seconds = args.running_seconds
        measure_from = hold_end - min(HOLD_MEASURE_SECONDS, args.running_seconds)
        log(f"{result.name}: holding every task running upstream for {args.running_seconds:g} s")
        await sleep_until(measure_from, end)
        cpu_before, measure_from = engine.cpu_seconds(), time.time()
        await sleep_until(hold_end, end)
        cpu_after, hold_end = engine.cpu_seconds(), time.time()
        result.hold_window = hold_end - measure_from
        if cpu_before is not None and cpu_after is not None:
            result.hold_cpu = cpu_after - cpu_before
        if time.monotonic() >= end:
            raise TimeoutError("out of time while holding")

        # 4. complete upstream, watch our database
        order = sorted(fake.tasks.values(), key=lambda t: t.seq)
        upstream_ids = [t.id for t in order if t.status not in fake.TERMINAL]
        start = time.time() + 0.2
        log(
            f"{result.name}: completing {len(upstream_ids)} tasks upstream over "
            f"{args.spread:g} s and waiting for them here"
        )
        completer = asyncio.create_task(complete_all(fake, upstream_ids, start, args.spread))
        wait_deadline = min(time.monotonic() + 0.2 + args.spread + WAIT_SECONDS, end)
        cpu_before = engine.cpu_seconds()
        concurrency = worker_concurrency() or 0
        try:
            while True:
                sample = db.sample()
                result.samples += 1
                result.max_leased = max(result.max_leased, sample.leased)
                result.max_due = max(result.max_due, sample.due)
                if sample.due > 0 and sample.leased < concurrency:  # 0: unknown, never
                    result.stalled_samples += 1
                if completer.done() and sample.terminal >= result.created:
                    break
                if time.monotonic() >= wait_deadline or not engine.alive():
                    result.notes.append(
                        f"stopped waiting: {sample.terminal} of {result.created} ended here"
                    )
                    break
                await asyncio.sleep(SAMPLE_SECONDS)
        finally:
            if not completer.done():
                completer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await completer
        cpu_after = engine.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            result.wait_cpu = cpu_after - cpu_before
        states = socket_states(fake.port)
        result.sockets = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"

        # 5. figures
        collect(result, fake, db.rows(), hold_end - result.hold_window, hold_end)
        result.finished = True
    finally:
        db.close()


# Entry point ----------------------------------------------------------------------------


async def run_bench(args: argparse.Namespace, work: Path, report: Report, end: float) -> None:
    report.topology = args.topology
    modes = [("dropped", False)] + ([] if args.no_callbacks else [("callbacks", True)])
    for name, callbacks in modes:
        result = ModeResult(name=name, callbacks=callbacks, tasks=args.tasks)
        report.modes.append(result)
        await run_mode(result, args, work, report, end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in flight (N)")
    parser.add_argument(
        "--running-seconds",
        type=float,
        default=30.0,
        help="how long every task stays running upstream after the last one was submitted",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=10.0,
        help="seconds over which the upstream completions are spread (0: all at once)",
    )
    parser.add_argument(
        "--no-callbacks", action="store_true", help="only the mode whose callbacks are dropped"
    )
    parser.add_argument(
        "--topology",
        choices=("split", "serve"),
        default="split",
        help="split: videogate api + videogate worker (started once every task is queued); "
        "serve: both in one process, submitting while the creates go on",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not 1 <= args.tasks <= 5000:
        parser.error("--tasks must be between 1 and 5000")
    if not 0 <= args.running_seconds <= 120:
        parser.error("--running-seconds must be between 0 and 120")
    if not 0 <= args.spread <= 60:
        parser.error("--spread must be between 0 and 60")

    exit_on_sigterm()
    report = Report()
    report.environment = [
        f"{machine_line()}; the fake and this script share the CPUs with the server",
        f"topology: {args.topology}; upstream: FakeArk in this process; queued → running "
        f"after {FAKE_QUEUED_SECONDS:g} s, "
        f"held running {args.running_seconds:g} s after the last submit, then completed in "
        f"creation order over {args.spread:g} s",
        f"engine defaults: worker concurrency {worker_concurrency()}, route "
        f"max_concurrent_polls {route_poll_limit()}, polls 1 s × 1.5ⁿ up to "
        f"{poll_cap()} s apart (every 1 s around a route's expected finish)",
    ]
    work = Path(tempfile.mkdtemp(prefix="upstream-bench-"))
    try:
        bench = run_bench(args, work, report, time.monotonic() + TOTAL_SECONDS - 20)
        failed = run_bounded(bench, TOTAL_SECONDS, report.notes)
    finally:
        load_at_end(report.notes, warn_busy=True)
        stop_servers(report.servers)
        for fake in report.fakes:
            fake.stop()
        keep_or_remove(work, args.keep, "server logs, configs, data dirs", report.notes)
    print_report(args, report)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
