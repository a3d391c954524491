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
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _api_report import Pair, Report, print_report, versions
from _api_tasks import CREATE_CONCURRENCY, drain, render_once
from _baseline import GRANIAN, granian_argv, start_bare
from _common import (
    HOST,
    Server,
    drop_postgres_database,
    exit_on_sigterm,
    free_port,
    http_client,
    http_clients,
    keep_or_remove,
    load_at_end,
    log,
    machine_line,
    new_postgres_database,
    run_bounded,
    start_videogate,
    stop_servers,
    videogate_env,
)
from _load import (
    WRK_CREATE_LUA,
    WRK_LUA,
    WRK_PACED_LUA,
    LoadResult,
    httpx_load,
    measured,
    raw_load,
    wrk_load,
)

TOTAL_SECONDS = 600.0  # hard bound on the whole run
RESERVE_SECONDS = 20.0  # kept back from the poll phases for shutdown
PHASE_SECONDS = 60.0  # at most this long for one measured load run
HTTPX_PHASE_SECONDS = 40.0  # the same for httpx, the slowest generator and the least telling
DRAIN_SECONDS = 120.0  # at most this long waiting for the created tasks' renders
WRK_SECONDS = 5

CREATE_BODY = {
    "model": "sandbox",
    "prompt": "bench",
    "duration": 4,
    "resolution": "480p",
    "generate_audio": False,
}
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
    granian: str | None = None
    loop: str = "auto"  # the event loop of the servers of the phases running now

    def deadline(self, seconds: float = PHASE_SECONDS) -> float:
        return min(time.monotonic() + seconds, self.end - RESERVE_SECONDS)


async def poll_load(
    run: Run,
    server: Server,
    port: int,
    key: str,
    ids: Sequence[str],
    target: str,
    gen: str,
    paced_ms: int = 0,
) -> LoadResult:
    """Polls of ``ids`` at the run's concurrency with one generator, after a warm-up; with
    ``paced_ms`` (wrk only) each client waits that long after an answer."""
    conc, polls = run.args.concurrency, run.args.polls
    paths = [f"/v1/videos/{i}" for i in ids]
    if gen == "wrk" and run.wrk is not None:
        lua = run.work / "poll.lua"
        script = WRK_PACED_LUA if paced_ms else WRK_LUA
        ids_list = ", ".join(f'"{i}"' for i in ids)
        lua.write_text(script % {"ids": ids_list, "key": key, "every_ms": paced_ms})
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
    bare, bare_port = await start_bare_for(run, sample, "2000", phase.split(",")[0].split()[-1])
    try:
        for gen in run.args.generators:
            log(f"{phase}: {gen} on videogate, then on the bare app, c={run.args.concurrency}")
            vg = await poll_load(run, api, port, key, ids, "videogate", gen)
            base = await poll_load(run, bare, bare_port, key, ids, "bare", gen)
            run.report.pairs.append(Pair(f"{phase} [{gen}, {run.loop}]", vg, base))
        if run.wrk is not None and run.args.paced_ms > 0 and "wrk" in run.args.generators:
            every = run.args.paced_ms
            log(f"{phase}: {run.args.concurrency} clients each polling every {every} ms")
            vg = await poll_load(run, api, port, key, ids, "videogate", "wrk", every)
            base = await poll_load(run, bare, bare_port, key, ids, "bare", "wrk", every)
            label = f"{phase}, every {every} ms [wrk, {run.loop}]"
            run.report.pairs.append(Pair(label, vg, base, paced=True))
    finally:
        bare.stop()


async def start_bare_for(run: Run, body: bytes, poll_after: str, label: str) -> tuple[Server, int]:
    return await start_bare(
        body,
        poll_after,
        label,
        run.work,
        run.loop,
        run.granian,
        run.report.servers,
        run.server_cpus,
    )


def api_options(run: Run) -> dict[str, Any]:
    """How ``start_videogate`` starts an API-only process: ``videogate api``, or granian
    serving the same app (``api_from_environment``) on the environment's port."""
    options: dict[str, Any] = {"cpus": run.server_cpus, "command": "api"}
    if run.loop == GRANIAN:
        target = "videogate.api.app:api_from_environment"
        options["argv_for"] = lambda env: granian_argv(
            run.granian, run.work, int(env["VIDEOGATE_PORT"]), target, factory=True
        )
    return options


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
        if run.loop == GRANIAN:  # the renders needed serve's worker; the polls go to granian
            api.stop()
            env = {**env, "VIDEOGATE_PORT": str(free_port())}
            port = int(env["VIDEOGATE_PORT"])
            api, _ = await start_videogate(env, run.work, run.report.servers, **api_options(run))
            await api.wait_ready(f"http://{HOST}:{port}/healthz", 60)
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
    api, key = await start_videogate(env, run.work, run.report.servers, **api_options(run))
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
            name = f"create, {label} [{created.generator}, {run.loop}]"
            run.report.pairs.append(Pair(name, created))
            listed = (await client.get("/v1/videos?limit=100")).json()["data"]
            ids = [str(t["id"]) for t in listed if t["status"] in ("queued", "in_progress")]
            if not ids:
                raise RuntimeError(f"{label}: no unfinished task to poll")
            sample = await client.get(f"/v1/videos/{ids[0]}")
        await compare_polls(run, f"poll unfinished, {label}", api, port, key, ids, sample.content)
    finally:
        api.stop()


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
    granian = shutil.which("granian") or shutil.which(
        "granian", path=str(Path(sys.executable).parent)
    )
    run = Run(args, work, report, time.monotonic() + TOTAL_SECONDS, server_cpus, wrk, granian)

    databases: list[tuple[str, str]] = [("SQLite", "")]
    pg_name = None
    if args.postgres:
        pg_name, pg_url = await new_postgres_database(args.postgres, report.notes)
        databases.append(("PostgreSQL", pg_url))
    try:
        # Every phase once per event loop, one loop after the other: compare loops by
        # their share of the bare app (which runs on the same loop), within this run.
        for loop in args.loop:
            run.loop = loop
            for label, url in databases:
                data_dir = work / f"{label.lower()}-{loop}"
                # granian picks its own loop ('auto'); videogate's setting is uvicorn's.
                extra = {"VIDEOGATE_HTTP_LOOP": "auto" if loop == GRANIAN else loop}
                if url:
                    extra["VIDEOGATE_DATABASE_URL"] = url
                env = videogate_env(data_dir, free_port(), **extra)
                await finished_phase(run, label, env)
                env = videogate_env(data_dir, free_port(), **extra)
                await create_and_running_phase(run, label, env)
    finally:
        if pg_name is not None:
            await drop_postgres_database(args.postgres, pg_name)


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
        type=lambda v: [x for x in v.split(",") if x],
        default=["auto"],
        help="event loop(s) of both servers (VIDEOGATE_HTTP_LOOP), comma-separated: auto, "
        "asyncio, uvloop, or granian (both servers on granian instead of uvicorn); with "
        "several, every phase runs once per loop",
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="ADMIN_URL",
        help="also run on a new database made through this URL, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--paced-ms",
        type=int,
        default=100,
        help="after each poll phase, the same C clients each polling every this many ms "
        "(latency below saturation; 0: skip)",
    )
    parser.add_argument("--render", action="store_true", help="also time one 8 s 720p render")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, load on the rest")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    for name in ("requests", "polls", "concurrency", "seconds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if set(args.loop) - {"auto", "asyncio", "uvloop", GRANIAN} or not args.loop:
        parser.error("--loop takes auto, asyncio, uvloop and/or granian, comma-separated")
    unknown = set(args.generators) - {"wrk", "raw", "httpx"}
    if unknown:
        parser.error(f"unknown generator(s): {', '.join(sorted(unknown))}")

    exit_on_sigterm()
    report = Report()
    report.environment = [
        f"{machine_line()} (other processes on the machine skew every figure)",
        versions(),
        f"event loop of both servers: {', '.join(args.loop)} (uvicorn 'auto' picks "
        + (
            "uvloop, accepting every waiting connection per turn"
            if importlib.util.find_spec("uvloop")
            else "asyncio"
        )
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
