"""The system under test: real ``videogate`` processes on one database and one data dir.

* ``api`` (HTTP only), ``serve`` (HTTP + worker) and ``worker``, each in its own process
  group, so a SIGKILL takes its children too, as a crash would;
* a supervisor that restarts whatever died (after our kill or on its own), as systemd would;
* the database (a fresh PostgreSQL database, or SQLite in the data dir) with an outage
  switch, and the data dir on a small tmpfs that can be filled to the last byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

VIDEOGATE = str(Path(sys.executable).parent / "videogate")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 90.0
RUNTIME_AFTER = 10.0  # a worker up this long has started; its exit is a crash
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})


@dataclass
class Proc:
    """One supervised ``videogate`` process; ``start`` again after it died."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]
    logs: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    # Exits on its own after running a while: a crash, not a failed start-up.
    runtime_exits: list[str] = field(default_factory=list)
    killed_at: float | None = None
    started_at: float = 0.0
    up: bool = False  # answered /healthz (HTTP) or ran RUNTIME_AFTER s (worker) since start

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.monotonic()
        self.up = False
        stem = self.logs / f"{self.name}-{self.starts:03d}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            self.popen = subprocess.Popen(
                [VIDEOGATE, *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stderr_tail(self, chars: int = 1500) -> str:
        path = self.logs / f"{self.name}-{self.starts:03d}.err"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.kill()


# Databases ------------------------------------------------------------------------------


class SqliteDb:
    """SQLite in the data dir. Its outage: another connection holds the write lock."""

    name = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "videogate.db"
        self.url = ""  # the default: sqlite in the data dir

    async def outage(self, seconds: float) -> None:
        def hold() -> None:
            con = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            try:
                con.execute("BEGIN EXCLUSIVE")
                time.sleep(seconds)
                con.execute("COMMIT")
            finally:
                con.close()

        await asyncio.to_thread(hold)

    async def rows(self, table: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with contextlib.closing(sqlite3.connect(self.path, timeout=60)) as con:
                con.row_factory = sqlite3.Row
                return [dict(r) for r in con.execute(f"SELECT * FROM {table}")]

        return await asyncio.to_thread(read)

    async def close(self) -> None:
        pass


class PostgresDb:
    """A fresh database on the shared server. Its outage touches this database only:
    new connections are refused and the open ones are cut, then it comes back."""

    name = "postgresql"

    def __init__(self) -> None:
        self.db = f"vg_chaos_{uuid.uuid4().hex[:10]}"
        self.url = f"postgresql://postgres@127.0.0.1:5432/{self.db}"

    async def _admin(self, *sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            for statement in sql:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.db}"')

    async def outage(self, seconds: float) -> None:
        await self._admin(
            f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.db}' AND pid <> pg_backend_pid()",
        )
        try:
            await asyncio.sleep(seconds)
        finally:
            await self._admin(f'ALTER DATABASE "{self.db}" ALLOW_CONNECTIONS true')

    async def rows(self, table: str) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            return [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
        finally:
            await conn.close()

    async def close(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


Database = SqliteDb | PostgresDb


# The data dir's disk --------------------------------------------------------------------


class DataDisk:
    """The data dir on its own small tmpfs (root only), so it can really fill up."""

    def __init__(self, path: Path, megabytes: int = 256) -> None:
        self.path = path
        self.megabytes = megabytes
        self.mounted = False
        self.why_not = ""

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.why_not = "not root: cannot mount a tmpfs"
            return
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.megabytes}m", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        self.mounted = done.returncode == 0
        self.why_not = "" if self.mounted else f"mount failed: {done.stderr.strip()}"

    def fill(self, seconds: float) -> int:
        """Write until ENOSPC, keep the disk full for ``seconds``, free it; bytes written."""
        filler = self.path / ".chaos-filler"
        written = 0
        chunk = b"\0" * (1 << 20)
        try:
            with filler.open("wb", buffering=0) as f:
                while True:
                    try:
                        written += f.write(chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        if len(chunk) == 1:
                            break
                        chunk = chunk[: len(chunk) // 2]
            time.sleep(seconds)
        finally:
            filler.unlink(missing_ok=True)
        return written

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
            self.mounted = False


# The cluster ----------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """``api`` + ``serve`` + ``worker`` on one database and data dir, supervised."""

    def __init__(self, root: Path, db: Database, data_dir: Path, extra_env: dict[str, str]):
        self.root = root
        self.db = db
        self.data_dir = data_dir
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        api_port, serve_port = free_port(), free_port()
        self.public_url = f"http://127.0.0.1:{api_port}"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VIDEOGATE_") and k not in ("COLUMNS", "LINES")
        }
        base.update(
            VIDEOGATE_DATA_DIR=str(data_dir),
            VIDEOGATE_HOST="127.0.0.1",
            # Callbacks and signed URLs point at the `api` process.
            VIDEOGATE_PUBLIC_URL=self.public_url,
            VIDEOGATE_LEASE_SECONDS="3",
            VIDEOGATE_WORKER_POLL_INTERVAL="0.2",
            VIDEOGATE_RENDER_PROCESSES="1",
            VIDEOGATE_BREAKER_COOLDOWN_SECONDS="3",
            # Recovery believes "no job" only once the lost call must have ended: keep
            # that wait short (the routes' read timeout is 2 s, a hang 5 s).
            VIDEOGATE_UPSTREAM_TOTAL_TIMEOUT_SECONDS="8",
            VIDEOGATE_KEY_CACHE_SECONDS="1",
            VIDEOGATE_ALLOW_PRIVATE_URLS="1",
            VIDEOGATE_LOG_LEVEL="warning",
            **extra_env,
        )
        if db.url:
            base["VIDEOGATE_DATABASE_URL"] = db.url
        self.env = base
        self.procs = {
            "api": Proc("api", ("api",), {**base, "VIDEOGATE_PORT": str(api_port)}, self.logs),
            "serve": Proc(
                "serve", ("serve",), {**base, "VIDEOGATE_PORT": str(serve_port)}, self.logs
            ),
            "worker": Proc("worker", ("worker",), dict(base), self.logs),
        }
        self.procs["api"].port, self.procs["serve"].port = api_port, serve_port
        self._stopping = threading.Event()

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p.port}" for p in self.procs.values() if p.port]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VIDEOGATE, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    async def start(self) -> None:
        migrated = await asyncio.to_thread(self.cli, "migrate")
        if migrated.returncode != 0:
            raise RuntimeError(f"videogate migrate failed: {migrated.stdout}{migrated.stderr}")
        for proc in self.procs.values():
            proc.start()
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until both HTTP processes answer /healthz and every process runs."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as client:
            while True:
                ok = all(p.alive() for p in self.procs.values())
                for url in self.api_urls:
                    try:
                        ok = ok and (await client.get(f"{url}/healthz")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                if ok:
                    return
                if time.monotonic() > deadline:
                    dead = [f"{p.name}: {p.stderr_tail()}" for p in self.procs.values()]
                    raise RuntimeError("the cluster did not become healthy:\n" + "\n".join(dead))
                await asyncio.sleep(0.3)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.kills += 1
        proc.killed_at = time.monotonic()
        proc.kill()

    async def supervise(self, stop: asyncio.Event, restart_delay: float = 0.5) -> None:
        """Restart every process that is not running, like a service manager would, and
        tell a crash (an exit after start-up) from a failed start-up."""
        async with httpx.AsyncClient(timeout=1.0) as client:
            while not stop.is_set():
                for proc in self.procs.values():
                    if proc.alive():
                        if not proc.up:
                            proc.up = await self._started(client, proc)
                        continue
                    if proc.popen is None:
                        continue
                    code = proc.popen.returncode
                    if code != -signal.SIGKILL or proc.killed_at is None:
                        uptime = time.monotonic() - proc.started_at
                        what = f"exit {code} after {uptime:.0f} s: {proc.stderr_tail(600)}"
                        proc.unexpected_exits.append(what)
                        if proc.up:
                            proc.runtime_exits.append(what)
                    proc.killed_at = None
                    await asyncio.sleep(restart_delay)
                    proc.start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)

    @staticmethod
    async def _started(client: httpx.AsyncClient, proc: Proc) -> bool:
        if proc.port is None:
            return time.monotonic() - proc.started_at >= RUNTIME_AFTER
        try:
            r = await client.get(f"http://127.0.0.1:{proc.port}/healthz")
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()
