"""What the benchmark scripts share: server subprocesses, API keys, clients, the run's frame.

Imported as ``_common`` by the scripts next to it (``python bench/x.py`` puts ``bench/`` on
``sys.path``); not a test, not part of the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any VIDEOGATE_* setting (never a real database), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOGATE_")}
    env.update(extra)
    return env


def videogate_command() -> str:
    """The ``videogate`` next to this interpreter (the venv's), else the one on PATH."""
    bin_dir = Path(sys.executable).parent
    return str(bin_dir / "videogate") if (bin_dir / "videogate").exists() else "videogate"


class Server:
    """A server subprocess in its own process group, so stopping it stops its children too."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, cpus: set[int] | None = None) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float | None:
        """utime + stime of every process of the server's process group (all threads; a
        server with worker processes, such as granian, counts them all), or None when
        the server itself is gone."""
        total, alive = 0, False
        for stat_path in Path("/proc").glob("[0-9]*/stat"):
            try:
                stat = stat_path.read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            # After the ")" that ends comm, field 3 (state) is index 0: pgrp is 2,
            # utime 11, stime 12.
            if int(fields[2]) != self.pid:
                continue
            alive = alive or stat_path.parent.name == str(self.pid)
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK") if alive else None

    async def wait_ready(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self, limit: int = 5) -> list[str]:
        """Lines of the log that say something went wrong (the level is ``warning``)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        bad = [x for x in lines if any(w in x for w in ("ERROR", "WARNING", "Traceback"))]
        shown = [x[:200] for x in bad[:limit]]
        if len(bad) > limit:
            shown.append(f"(+{len(bad) - limit} more such lines)")
        return shown

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Anything left behind by the leader (render processes), if any.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def create_key(videogate: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [videogate, "keys", "create", "--name", "bench", "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"'videogate keys create' failed:\n{done.stdout}\n{done.stderr}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
    key: str = json.loads(line)["key"]
    return key


def videogate_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for ``videogate`` on HOST:``port`` with ``data_dir``, plus extra."""
    return clean_env(
        VIDEOGATE_DATA_DIR=str(data_dir),
        VIDEOGATE_HOST=HOST,
        VIDEOGATE_PORT=str(port),
        VIDEOGATE_LOG_LEVEL="warning",
        **extra,
    )


async def start_videogate(
    env: dict[str, str],
    log_dir: Path,
    servers: list[Server],
    *,
    label: str = "",
    cpus: set[int] | None = None,
    timeout: float = 60.0,
    command: str = "serve",
    argv_for: Callable[[dict[str, str]], list[str]] | None = None,
) -> tuple[Server, str]:
    """Make an API key, then start ``videogate serve`` (or ``command``: ``api``; added to
    ``servers`` first, so it is always stopped) without waiting for it to be ready; returns
    it and the key. ``argv_for(env)`` replaces the command line (another server of the
    same app)."""
    prefix, suffix = (f"{label}: ", f" ({label})") if label else ("", "")
    videogate = videogate_command()
    log(f"{prefix}creating an API key")
    key = await asyncio.wait_for(asyncio.to_thread(create_key, videogate, env), timeout)
    server = Server(
        f"videogate {command}{suffix}",
        argv_for(env) if argv_for is not None else [videogate, command],
        env,
        log_dir / f"videogate-{command}-{env['VIDEOGATE_PORT']}.log",
    )
    servers.append(server)
    log(f"{prefix}starting videogate {command} on {HOST}:{env['VIDEOGATE_PORT']}")
    server.start(cpus)
    return server, key


def socket_states(port: int) -> Counter[str]:
    """Client-side TCP sockets to 127.0.0.1:``port`` by state (``/proc/net/tcp``)."""
    names = {"01": "established", "06": "time_wait", "08": "close_wait"}
    states: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 3 and int(parts[2].rpartition(":")[2], 16) == port:
                states[names.get(parts[3], f"state {parts[3]}")] += 1
    return states


async def sleep_until(wall: float, deadline: float) -> None:
    """Sleep until wall-clock ``wall`` but not past monotonic ``deadline``."""
    await asyncio.sleep(max(0.0, min(wall - time.time(), deadline - time.monotonic())))


# Clients --------------------------------------------------------------------------------


def http_client(port: int, key: str, concurrency: int = 1) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}",
        headers={"Authorization": f"Bearer {key}"},
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(30.0),
        http1=True,
        http2=False,
        trust_env=False,  # never through a proxy: only 127.0.0.1
    )


@contextlib.asynccontextmanager
async def http_clients(
    port: int, key: str, concurrency: int, *, shared_pool: bool = False
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``concurrency`` keep-alive connections: by default one client of one connection each,
    or with ``shared_pool`` one client whose pool holds them all. The shared pool costs 2-4×
    more client CPU per request (httpcore's pool walks its connections and waiting requests
    on every request), which on 2 CPUs takes that CPU from the server."""
    async with contextlib.AsyncExitStack() as stack:
        if shared_pool:
            clients = [await stack.enter_async_context(http_client(port, key, concurrency))]
        else:
            clients = [
                await stack.enter_async_context(http_client(port, key, 1))
                for _ in range(concurrency)
            ]
        yield clients


# The run --------------------------------------------------------------------------------


def machine_line() -> str:
    """CPUs, Python and the load average now: the start of a report's environment line."""
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C: through the ``finally`` that stops the servers."""
    signal.signal(signal.SIGTERM, _terminate)


def run_bounded(
    bench: Coroutine[Any, Any, None],
    limit: float,
    notes: list[str],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> bool:
    """Run ``bench`` for at most ``limit`` seconds; returns whether it failed, after adding a
    note that says why."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(asyncio.wait_for(bench, limit))
    except TimeoutError:
        notes.append(f"stopped by the overall {limit:.0f} s limit")
        return True
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        notes.append(f"stopped early: {type(exc).__name__}: {exc}")
        return True
    return False


def load_at_end(notes: list[str], *, warn_busy: bool = False) -> None:
    load = os.getloadavg()[0]
    notes.append(f"load average at the end {load:.2f}")
    if warn_busy and load > (os.cpu_count() or 1):
        notes.append(
            "the machine was busier than its CPU count: the server got less than a CPU, "
            "so latencies are inflated; compare runs only on a quiet machine"
        )


def stop_servers(servers: Sequence[Server]) -> None:
    """Stop the servers, the last started first."""
    for server in reversed(servers):
        server.stop()


def keep_or_remove(work: Path, keep: bool, kept: str, notes: list[str]) -> None:
    if keep:
        notes.append(f"kept {work} ({kept})")
    else:
        shutil.rmtree(work, ignore_errors=True)


# PostgreSQL -----------------------------------------------------------------------------


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
