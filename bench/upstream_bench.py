"""Benchmark how quickly videogate notices upstream completions with N Ark tasks in flight.

Usage: .venv/bin/python bench/upstream_bench.py [--tasks N] [--running-seconds S]
       [--spread SECONDS] [--no-callbacks] [--topology split|serve] [--pin] [--keep]

What it does, all on 127.0.0.1 and bounded in count and time (about 9 minutes at most):

0. measures the fake's own ceiling: a bare client in a subprocess (a minimal HTTP/1.1 client,
   ~70 µs of CPU per request) sends max(N, 2000) creates, then as many polls, at concurrency
   32 to a fresh fake; what the engine is compared with;

1. starts the fake upstream in a process of its own (``_fake_ark.py``: ``tests/fakes``
   FakeArk, Volcengine Ark's task API, with a small control API on loopback). It accepts
   every task (``max_queued`` above N), moves each to ``running`` after 0.5 s and never
   finishes one by itself; its own thread completes them when asked, and its
   ``completed_at`` is the upstream time. Its server, ticker and callback sender share no
   interpreter with this script, so its figures are not the script's own;
2. writes a TOML config with one ``ark`` route for doubao-seedance-2-0-fast-260128 to the
   fake (``max_in_flight`` above N), makes a key (``videogate keys create --json``) and
   starts ``videogate api`` as a subprocess on a free port with a temporary data dir
   (``--topology serve``: ``videogate serve``, API and worker in one process);
3. creates N tasks (``POST /v1/videos``, concurrency 20); with ``split`` they wait
   ``queued`` until ``videogate worker`` starts after the last create, so the submit rate
   (first → last create the fake accepted) is the worker's alone. Waits until the worker has
   submitted every one upstream (``running`` with an upstream id in the database, N tasks
   in the fake), then leaves them running S more seconds (default 30: long enough for
   every task's poll interval to reach its cap, as with a real multi-minute job);
4. has the fake complete them in creation order, evenly spread over ``--spread`` seconds
   (default 10; 0 = all at once), and watches the database read-only (sqlite3: cheaper
   and more precise than polling the API) until every task has ended; with callbacks, then
   waits (bounded) until the fake's callback sender is idle;
5. reports, per mode, upstream completion → ``completed`` here (p50/p90/p99/max), split
   into stages from the fake's request log (the poll that saw ``succeeded``, the result
   download), the upstream polls per second while holding and while waiting, the server's
   and the fake's CPU, the worker's lease/backlog samples, sockets to the fake, every
   callback the fake sent, and every failure with its reason.

Two modes, each with a fresh fake, servers and data dir, both with ``VIDEOGATE_PUBLIC_URL``
set (every create carries a ``callback_url``): ``dropped``, where the fake drops every
callback (polling alone must notice completions), then ``callbacks``, where the fake POSTs
each status change to ``/v1/callbacks/ark/{token}`` of the API process, which must wake the
worker (another process with ``split``); ``--no-callbacks`` runs only the first.

The fake, this script and the servers share the machine's CPUs (``--pin``: the servers on
CPU 0, the fake and this script on the others): on a small machine every figure is an
upper bound.

It is a benchmark run by hand, not a test. The fake and the servers are always stopped at
the end and the temporary directory removed (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    HOST,
    Server,
    exit_on_sigterm,
    free_port,
    keep_or_remove,
    load_at_end,
    log,
    machine_line,
    run_bounded,
    socket_states,
    start_videogate,
    stop_servers,
    videogate_command,
    videogate_env,
)
from _fake_ark import QUEUED_SECONDS
from _fake_control import FakeUpstream, fake_ceiling
from _tasks_db import Db
from _upstream_phases import MODEL, Mode, complete_and_wait, hold, submit_all
from _upstream_report import (
    CEILING_CONCURRENCY,
    ModeResult,
    Report,
    collect,
    poll_cap,
    print_report,
    route_poll_limit,
    worker_concurrency,
)

TOTAL_SECONDS = 540.0  # hard bound on the whole run
START_SECONDS = 60.0  # server start, key creation
CALLBACK_IDLE_SECONDS = 30.0  # after every task ended, for the fake's callback sender


# Processes ------------------------------------------------------------------------------


def write_config(path: Path, fake: FakeUpstream, tasks: int) -> None:
    path.write_text(
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


async def run_mode(
    result: ModeResult, args: argparse.Namespace, work: Path, report: Report, end: float
) -> None:
    mode_dir = work / result.name
    mode_dir.mkdir()
    data_dir = mode_dir / "data"
    tasks = args.tasks

    # 0. the fake's own ceiling, 1. the fake upstream
    log(f"{result.name}: the fake's own ceiling (creates, then polls, from a bare client)")
    result.ceiling = await fake_ceiling(
        tasks, CEILING_CONCURRENCY, mode_dir, result.name, report.servers, report.other_cpus
    )
    fake = FakeUpstream(
        mode_dir,
        result.name,
        max_queued=tasks + 100,
        drop_callbacks=not result.callbacks,
        cpus=report.other_cpus,
    )
    report.servers.append(fake.server)  # always stopped, even when this run is cut short
    try:
        await fake.start()
        log(f"{result.name}: fake Ark (pid {fake.server.pid}) on {fake.base_url}")

        # 2. config, key, server
        port = free_port()
        config = mode_dir / "videogate.toml"
        write_config(config, fake, tasks)
        env = videogate_env(
            data_dir,
            port,
            VIDEOGATE_CONFIG=str(config),
            VIDEOGATE_ALLOW_PRIVATE_URLS="1",  # the fake's result URLs are on loopback
            BENCH_ARK_API_KEY=fake.api_key,
            VIDEOGATE_PUBLIC_URL=f"http://{HOST}:{port}",
        )
        split = report.topology == "split"
        server, key = await start_videogate(
            env,
            mode_dir,
            report.servers,
            label=result.name,
            cpus=report.server_cpus,
            timeout=START_SECONDS,
            command="api" if split else "serve",
        )
        worker = None
        if split:  # started by submit_all once every task is queued
            worker = Server(
                f"videogate worker ({result.name})",
                [videogate_command(), "worker"],
                env,
                mode_dir / "videogate-worker.log",
            )
        try:
            await server.wait_ready(f"http://{HOST}:{port}/healthz", START_SECONDS)
            db = Db(data_dir / "videogate.db")
            mode = Mode(result, args, report, fake, server, worker, db, port, key, end)
            try:
                await measure(mode)
            finally:
                db.close()
        finally:
            result.log_problems = server.log_problems() + (worker.log_problems() if worker else [])
            if worker is not None:
                worker.stop()
            server.stop()
    finally:
        result.fake_errors += fake.server.log_problems()
        await fake.stop()


async def measure(mode: Mode) -> None:
    await submit_all(mode)
    await hold(mode)
    await complete_and_wait(mode)
    result = mode.result
    if result.callbacks:
        log(f"{result.name}: waiting for the fake's callback sender to finish")
        waited = time.monotonic()
        timeout = max(0.0, min(CALLBACK_IDLE_SECONDS, mode.end - time.monotonic()))
        if await mode.fake.wait_callbacks(timeout):
            result.callbacks_idle_after = time.monotonic() - waited
        else:
            result.notes.append(f"the fake was still sending callbacks after {timeout:.0f} s")
    states = socket_states(mode.fake.port)
    result.sockets = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"

    # 5. figures
    fake_log = await mode.fake.log()
    collect(result, fake_log, mode.db.rows(), result.hold_from, result.hold_to)
    result.finished = True


# Entry point ----------------------------------------------------------------------------


async def run_bench(args: argparse.Namespace, work: Path, report: Report, end: float) -> None:
    report.topology = args.topology
    modes = [("dropped", False)] + ([] if args.no_callbacks else [("callbacks", True)])
    for name, callbacks in modes:
        result = ModeResult(name=name, callbacks=callbacks, tasks=args.tasks)
        report.modes.append(result)
        await run_mode(result, args, work, report, end)


def parse_args() -> argparse.Namespace:
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
    parser.add_argument(
        "--pin", action="store_true", help="servers on CPU 0, the fake and this script on the rest"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not 1 <= args.tasks <= 5000:
        parser.error("--tasks must be between 1 and 5000")
    if not 0 <= args.running_seconds <= 120:
        parser.error("--running-seconds must be between 0 and 120")
    if not 0 <= args.spread <= 60:
        parser.error("--spread must be between 0 and 60")
    return args


def main() -> None:
    args = parse_args()
    exit_on_sigterm()
    report = Report()
    all_cpus = os.sched_getaffinity(0)
    cpus_line = "the fake, this script and the servers share the CPUs"
    if args.pin and len(all_cpus) >= 2:
        report.server_cpus = {min(all_cpus)}
        report.other_cpus = all_cpus - report.server_cpus
        os.sched_setaffinity(0, report.other_cpus)  # this process and its load client
        cpus_line = (
            f"--pin: servers on CPU {sorted(report.server_cpus)}, the fake and this script "
            f"on {sorted(report.other_cpus)}"
        )
    report.environment = [
        f"{machine_line()}; {cpus_line}",
        f"topology: {args.topology}; upstream: FakeArk in a process of its own; queued → "
        f"running after {QUEUED_SECONDS:g} s, "
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
        keep_or_remove(work, args.keep, "server and fake logs, configs, data dirs", report.notes)
    print_report(args, report)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
