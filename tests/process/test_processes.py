"""End to end with real ``videogate`` processes: a machine crash mid-render and the
takeover after a restart, scale-out on PostgreSQL (one API, two workers, one of them
killed), ``api`` without a worker, the documented relay loop with ``requests`` and
``curl``, the first start's banner, and the ``keys`` command.

Every process runs in its own session (process group), so a ``SIGKILL`` of the group also
takes its render processes down, as a real crash would; the ``launcher`` fixture kills
whatever is still running when a test ends, pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import av
import pytest
import requests

from conftest import free_port

pytestmark = pytest.mark.slow

T = TypeVar("T")

# The console script next to the interpreter running the tests, so any cwd works.
VIDEOGATE = str(Path(sys.executable).parent / "videogate")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT = 60.0  # process start-up, migrations included (~1-2 s normally)
RENDER_TIMEOUT = 180.0  # one render plus a lease takeover (seconds normally)
HTTP_TIMEOUT = 15.0
LEASE_SECONDS = 3
FAST = "doubao-seedance-2-0-fast-260128"
SHORT = {"model": "sandbox", "duration": 4, "resolution": "480p", "generate_audio": False}
LONG = {"model": "sandbox", "duration": 15, "resolution": "1080p"}


# Processes --------------------------------------------------------------------------------


def process_env(data_dir: Path, port: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of one videogate process: nothing inherited from VIDEOGATE_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        # COLUMNS/LINES would change how rich lays out the CLI's output.
        if not k.startswith("VIDEOGATE_") and k not in ("COLUMNS", "LINES")
    }
    env.update(
        VIDEOGATE_DATA_DIR=str(data_dir),
        VIDEOGATE_HOST="127.0.0.1",
        VIDEOGATE_LEASE_SECONDS=str(LEASE_SECONDS),
        VIDEOGATE_WORKER_POLL_INTERVAL="0.1",
        VIDEOGATE_LOG_LEVEL="warning",
    )
    if port is not None:
        env["VIDEOGATE_PORT"] = str(port)
    env.update(extra)
    return env


@dataclass
class Proc:
    """One started ``videogate`` process (the leader of its own process group)."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        return (
            f"{self.name} (pid {self.pid}, exit code {self.popen.poll()})\n"
            f"--- stdout ---\n{self.stdout()[-3000:]}\n--- stderr ---\n{self.stderr()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL the whole process group: the process and its render processes."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, and check that the process shuts down cleanly within ``timeout``."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        code = self.popen.poll()
        self.kill()  # sweeps anything left in the group either way
        # uvicorn re-raises the SIGTERM it handled once shut down, hence -SIGTERM.
        assert code in (0, -signal.SIGTERM), f"unclean stop:\n{self.describe()}"
        assert "Traceback" not in self.stderr(), f"unclean stop:\n{self.describe()}"


class Launcher:
    """Starts videogate processes and kills every one of them at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(self, name: str, *args: str, env: dict[str, str]) -> Proc:
        stem = f"{len(self.procs):02d}-{name}"
        out, err = self.logs / f"{stem}.out", self.logs / f"{stem}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                [VIDEOGATE, *args],
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        proc = Proc(name, popen, out, err)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launch = Launcher(tmp_path)
    try:
        yield launch
    finally:
        launch.close()


def cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a short videogate command (no terminal on any stream, as in CI or a script)."""
    return subprocess.run(
        [VIDEOGATE, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def create_key(env: dict[str, str], cwd: Path, *extra: str) -> dict[str, Any]:
    done = cli("keys", "create", "--json", *extra, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    return created


def wait_until(
    check: Callable[[], T | None],
    what: str,
    timeout: float,
    watch: Sequence[Proc] = (),
    interval: float = 0.1,
) -> T:
    """Poll ``check`` until it returns something other than None; fail fast if a watched
    process dies, and fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            if not proc.alive():
                raise AssertionError(
                    f"{proc.name} exited while waiting for {what}:\n{proc.describe()}"
                )
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_healthy(proc: Proc, base: str, timeout: float = START_TIMEOUT) -> None:
    def healthy() -> bool | None:
        try:
            r = requests.get(f"{base}/healthz", timeout=2)
        except requests.RequestException:
            return None
        return True if r.status_code == 200 and r.json().get("status") == "ok" else None

    wait_until(healthy, f"{proc.name} to answer /healthz", timeout, watch=[proc])


# HTTP -------------------------------------------------------------------------------------


@dataclass
class Client:
    base: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def create(self, **body: object) -> dict[str, Any]:
        r = requests.post(
            f"{self.base}/v1/videos", json=body, headers=self.headers, timeout=HTTP_TIMEOUT
        )
        assert r.status_code == 200, r.text
        created: dict[str, Any] = r.json()
        assert created["status"] == "submitted", created
        return created

    def get(self, task_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.base}/v1/videos/{task_id}", headers=self.headers, timeout=HTTP_TIMEOUT
        )
        assert r.status_code == 200, r.text
        task: dict[str, Any] = r.json()
        return task

    def wait(
        self,
        task_id: str,
        statuses: Sequence[str] = ("completed", "failed"),
        timeout: float = RENDER_TIMEOUT,
        watch: Sequence[Proc] = (),
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            task = self.get(task_id)
            return task if task["status"] in statuses else None

        return wait_until(reached, f"task {task_id} to be {'/'.join(statuses)}", timeout, watch)


def download(url: str, dest: Path) -> Path:
    r = requests.get(url, timeout=60)  # no auth: the URL is signed
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "video/mp4"
    dest.write_bytes(r.content)
    return dest


def probe_mp4(data: bytes) -> dict[str, object]:
    with av.open(io.BytesIO(data), "r") as c:
        assert c.format.name.startswith("mov,mp4"), c.format.name
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        return {
            "size": (v.codec_context.width, v.codec_context.height),
            "duration": round((c.duration or 0) / 1_000_000, 2),
            "codec": v.codec_context.name,
            "fps": float(v.average_rate or 0),
            "frames": frames,
            "audio": [s.codec_context.name for s in c.streams.audio],
        }


# What the processes left on disk and in the database --------------------------------------


def partial_render(data_dir: Path, task_id: str) -> Path | None:
    """The sandbox's half-written output while it renders (media/render.py: ``.partial``)."""
    found = sorted((data_dir / "work" / f"sbx-{task_id}").glob(".video.mp4.*.partial"))
    return found[0] if found else None


def result_files(data_dir: Path, task_id: str) -> list[str]:
    """Every file (hidden ones too) in the task's result folder(s) of the blob store."""
    return sorted(
        str(p.relative_to(data_dir / "blobs"))
        for p in (data_dir / "blobs").glob(f"results/*/{task_id}/*")
    )


def assert_one_video(data_dir: Path, task_id: str) -> None:
    files = result_files(data_dir, task_id)
    videos = [f for f in files if f.endswith("/video.mp4")]
    assert len(videos) == 1, files
    assert not [f for f in files if "/." in f], f"temporary files left behind: {files}"
    # The render's scratch folder goes once the task is finished.
    assert not (data_dir / "work" / f"sbx-{task_id}").exists()


def sqlite_task(data_dir: Path, task_id: str) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(data_dir / "videogate.db", timeout=30)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
    assert row is not None, task_id
    return dict(row)


async def _pg_admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it): {exc}")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    name = f"vg_proc_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


def pg_tasks(url: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    async def run() -> dict[str, dict[str, Any]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            rows = await conn.fetch("SELECT * FROM tasks WHERE id = ANY($1::text[])", list(ids))
        finally:
            await conn.close()
        return {r["id"]: dict(r) for r in rows}

    return asyncio.run(run())


def owner_pid(owner: str) -> int:
    """The pid in a worker's lease owner name (``host:pid:random``, worker.py)."""
    return int(owner.split(":")[-2])


# 1. A machine crash mid-render -------------------------------------------------------------


def test_kill_9_mid_render_then_restart_completes_the_task(
    tmp_path: Path, launcher: Launcher
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port)

    first = launcher.start("serve-1", "serve", env=env)
    wait_healthy(first, base)
    client = Client(base, create_key(env, tmp_path)["key"])
    task_id = client.create(prompt="crash me", **LONG)["id"]

    client.wait(task_id, ("in_progress",), timeout=START_TIMEOUT, watch=[first])
    wait_until(
        lambda: partial_render(data_dir, task_id),
        "the render to start writing its mp4",
        START_TIMEOUT,
        watch=[first],
    )
    assert client.get(task_id)["status"] == "in_progress"
    os.killpg(first.pid, signal.SIGKILL)  # the server and its render processes, at once
    first.popen.wait(timeout=30)
    assert first.popen.returncode == -signal.SIGKILL

    # Killed mid-render: no result yet, and the dead worker still holds the task's lease.
    assert result_files(data_dir, task_id) == []
    row = sqlite_task(data_dir, task_id)
    assert row["status"] == "running" and row["lease_owner"] is not None, row
    assert owner_pid(row["lease_owner"]) == first.pid

    second = launcher.start("serve-2", "serve", env=env)
    wait_healthy(second, base)
    done = client.wait(task_id, watch=[second])
    assert done["status"] == "completed", done
    assert done["size"] == "1920x1080" and done["seconds"] == "15", done

    facts = probe_mp4(download(done["video_url"], tmp_path / "out.mp4").read_bytes())
    assert facts["size"] == (1920, 1080) and facts["duration"] == 15.0, facts
    assert facts["frames"] == 15 * 24, facts

    # Finished once: one task, one video, nothing half-written left over.
    listed = requests.get(f"{base}/v1/videos", headers=client.headers, timeout=HTTP_TIMEOUT)
    assert [t["id"] for t in listed.json()["data"]] == [task_id]
    assert_one_video(data_dir, task_id)
    second.stop()
    row = sqlite_task(data_dir, task_id)
    assert row["status"] == "succeeded" and row["lease_owner"] is None, row
    # Claimed three times: submit, the killed render, and the one takeover that finished.
    assert row["steps"] == 3, row


# 2. Scale-out on PostgreSQL ---------------------------------------------------------------


@pytest.mark.postgres
def test_scale_out_on_postgres_two_workers_and_a_takeover(
    pg_url: str, tmp_path: Path, launcher: Launcher
) -> None:
    data_dir, port = tmp_path / "shared", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port, VIDEOGATE_DATABASE_URL=pg_url, VIDEOGATE_RENDER_PROCESSES="1")

    api = launcher.start("api", "api", env=env)
    wait_healthy(api, base)  # it has migrated the database; start the workers after it
    workers = [launcher.start(f"worker-{i}", "worker", env=env) for i in (1, 2)]
    everyone = [api, *workers]
    client = Client(base, create_key(env, tmp_path)["key"])

    ids = [client.create(prompt=f"scale out {i}", **SHORT)["id"] for i in range(6)]
    for task_id in ids:
        done = client.wait(task_id, watch=everyone)
        assert done["status"] == "completed", done
        facts = probe_mp4(download(done["video_url"], tmp_path / f"{task_id}.mp4").read_bytes())
        assert "x".join(map(str, facts["size"])) == done["size"]  # type: ignore[call-overload]
        assert facts["duration"] == 4.0 and facts["audio"] == [], facts
        assert_one_video(data_dir, task_id)
    rows = pg_tasks(pg_url, ids)
    for task_id in ids:
        row = rows[task_id]
        assert row["status"] == "succeeded" and row["lease_owner"] is None, row
        # Claimed twice (submit, render); a third claim is a takeover after a lease
        # lapsed on a starved machine (3 s leases here), which is allowed: the
        # compare-and-set lets only one finish, and there is one video per task.
        assert row["steps"] in (2, 3), row
    assert len({rows[i]["video_key"] for i in ids}) == len(ids)

    # Kill the worker that renders a long task; the other one takes it over.
    long_id = client.create(prompt="kill my worker", **LONG)["id"]

    def holder() -> str | None:
        row = pg_tasks(pg_url, [long_id])[long_id]
        if row["status"] == "running" and row["lease_owner"] and partial_render(data_dir, long_id):
            return str(row["lease_owner"])
        return None

    owner = wait_until(holder, "a worker to render the long task", START_TIMEOUT, everyone)
    victim = next((w for w in workers if w.pid == owner_pid(owner)), None)
    assert victim is not None, f"lease owner {owner} is not one of the workers"
    survivor = next(w for w in workers if w is not victim)
    victim.kill()
    assert not victim.alive()

    done = client.wait(long_id, watch=[api, survivor])
    assert done["status"] == "completed", done
    facts = probe_mp4(download(done["video_url"], tmp_path / "long.mp4").read_bytes())
    assert facts["size"] == (1920, 1080) and facts["duration"] == 15.0, facts
    assert_one_video(data_dir, long_id)
    row = pg_tasks(pg_url, [long_id])[long_id]
    assert row["status"] == "succeeded" and row["lease_owner"] is None and row["steps"] == 3, row


# 3. ``videogate api`` never renders --------------------------------------------------------


def test_api_alone_never_renders_until_a_worker_starts(tmp_path: Path, launcher: Launcher) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port)

    api = launcher.start("api", "api", env=env)
    wait_healthy(api, base)
    client = Client(base, create_key(env, tmp_path)["key"])
    task_id = client.create(prompt="nobody renders me", **SHORT)["id"]

    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        task = client.get(task_id)
        assert task["status"] == "queued" and task["video_url"] is None, task
        time.sleep(0.25)
    assert not (data_dir / "work" / f"sbx-{task_id}").exists()

    worker = launcher.start("worker", "worker", env=env)
    done = client.wait(task_id, watch=[api, worker])
    assert done["status"] == "completed", done
    facts = probe_mp4(download(done["video_url"], tmp_path / "out.mp4").read_bytes())
    assert facts["duration"] == 4.0 and facts["audio"] == [], facts


# 4. The relay loop as the docs show it -----------------------------------------------------


def test_documented_relay_loop_with_requests_and_curl(tmp_path: Path, launcher: Launcher) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port)
    server = launcher.start("serve", "serve", env=env)
    wait_healthy(server, base)
    key = create_key(env, tmp_path)["key"]

    # The README's Python loop, with a bound on the wait.
    deadline = time.monotonic() + RENDER_TIMEOUT
    H = {"Authorization": f"Bearer {key}"}
    t = requests.post(
        f"{base}/v1/videos",
        headers=H,
        json={"model": FAST, "prompt": "a fox", "duration": 8},
        timeout=HTTP_TIMEOUT,
    ).json()
    while t["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, t
        assert server.alive(), server.describe()
        time.sleep(1)
        t = requests.get(f"{base}/v1/videos/{t['id']}", headers=H, timeout=HTTP_TIMEOUT).json()
    assert t["status"] == "completed", t
    out = tmp_path / "out.mp4"
    out.write_bytes(requests.get(t["video_url"], timeout=60).content)
    expected = {
        "size": (1280, 720),
        "duration": 8.0,
        "codec": "h264",
        "fps": 24.0,
        "frames": 8 * 24,
        "audio": ["aac"],
    }
    assert probe_mp4(out.read_bytes()) == expected

    # And `curl -L "$VIDEO_URL" -o out.mp4`.
    curl = shutil.which("curl")
    if curl is None:
        return
    curl_dir = tmp_path / "curl"
    curl_dir.mkdir()
    ran = subprocess.run(
        [curl, "-L", t["video_url"], "-o", "out.mp4"],
        cwd=curl_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert (curl_dir / "out.mp4").read_bytes() == out.read_bytes()


# 5. ``make run``'s first start -----------------------------------------------------------


KEY_LINE = re.compile(r"Local API key: (vg-[A-Za-z0-9_-]+)")


def test_first_start_prints_a_working_key_and_the_same_key_again(
    tmp_path: Path, launcher: Launcher
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port)

    first = launcher.start("serve-1", "serve", env=env)
    wait_healthy(first, base)
    printed = first.stdout()
    keys = KEY_LINE.findall(printed)
    assert len(keys) == 1, printed
    key = keys[0]
    r = requests.get(
        f"{base}/v1/videos", headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
    )
    assert r.status_code == 200, r.text
    assert f"export VIDEOGATE_API_KEY={key}" in printed
    assert f"curl -s {base}/v1/videos -H " in printed
    assert 'curl -L "<video_url>" -o out.mp4' in printed
    key_file = data_dir / "local_api_key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    first.stop()

    second = launcher.start("serve-2", "serve", env=env)
    wait_healthy(second, base)
    assert KEY_LINE.findall(second.stdout()) == [key], second.stdout()


def banner_curl_example(printed: str, base: str) -> str:
    """The banner's ``export`` and create ``curl`` lines, as a user would paste them."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Try it (curl):")
    end = next(
        i for i, line in enumerate(lines) if line.lstrip().startswith(f"curl -s {base}/v1/videos/")
    )
    return textwrap.dedent("\n".join(lines[start + 1 : end]))


@pytest.mark.parametrize(
    "columns",
    [
        "200",
        None,
    ],
    ids=["wide-terminal", "not-a-terminal"],
)
def test_first_start_curl_example_runs_as_printed(
    tmp_path: Path, launcher: Launcher, columns: str | None
) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port)
    if columns is not None:
        env["COLUMNS"] = columns
    server = launcher.start("serve", "serve", env=env)
    wait_healthy(server, base)
    script = banner_curl_example(server.stdout(), base)
    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    answer = f"{script}\n-> exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    assert ran.returncode == 0 and ran.stdout.startswith("{"), answer
    assert json.loads(ran.stdout)["status"] == "submitted", answer


# 6. ``videogate keys`` ---------------------------------------------------------------------


def test_keys_create_list_revoke(tmp_path: Path, launcher: Launcher) -> None:
    data_dir, port = tmp_path / "var", free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(data_dir, port, VIDEOGATE_KEY_CACHE_SECONDS="0")
    server = launcher.start("serve", "serve", env=env)
    wait_healthy(server, base)

    created = create_key(env, tmp_path, "--name", "a", "--group", "g", "--balance", "10")
    assert {"id", "name", "key", "group"} <= created.keys()
    assert created["name"] == "a" and created["group"] == "g", created
    assert created["id"].startswith("key_") and created["key"].startswith("vg-"), created
    secret, key_id = created["key"], created["id"]

    listed = cli("keys", "list", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout + listed.stderr
    mine = [k for k in json.loads(listed.stdout) if k["id"] == key_id]
    assert len(mine) == 1, listed.stdout
    assert mine[0]["name"] == "a" and mine[0]["group"] == "g" and mine[0]["revoked"] is False
    assert mine[0]["balance"] == "10.00" and "key" not in mine[0], mine[0]
    table = cli("keys", "list", env=env, cwd=tmp_path)
    assert table.returncode == 0 and secret not in table.stdout + table.stderr

    url = f"{base}/v1/videos"
    auth = {"Authorization": f"Bearer {secret}"}
    assert requests.get(url, headers=auth, timeout=HTTP_TIMEOUT).status_code == 200

    revoked = cli("keys", "revoke", key_id, env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert key_id in revoked.stdout
    wait_until(
        lambda: (
            True
            if requests.get(url, headers=auth, timeout=HTTP_TIMEOUT).status_code == 401
            else None
        ),
        "the revoked key to be refused",
        timeout=5.0,
        watch=[server],
    )
    listed = cli("keys", "list", "--json", env=env, cwd=tmp_path)
    assert [k["revoked"] for k in json.loads(listed.stdout) if k["id"] == key_id] == [True]

    for unknown in ("key_doesnotexist", key_id):  # never existed; already revoked
        failed = cli("keys", "revoke", unknown, env=env, cwd=tmp_path)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0, output
        assert f"no active key {unknown}" in output and "Traceback" not in output, output


def test_keys_list_table_shows_whole_ids(tmp_path: Path) -> None:
    env = process_env(tmp_path / "var")
    ids = [create_key(env, tmp_path, "--name", f"key number {i}")["id"] for i in range(2)]
    table = cli("keys", "list", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    for key_id in ids:
        assert key_id in table.stdout, table.stdout


# Found on the way: the first start of several processes on one new database ---------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_processes_starting_together_on_a_new_database_all_migrate(
    tmp_path: Path, launcher: Launcher, backend: str
) -> None:
    for attempt in range(3):
        data_dir = tmp_path / f"var-{attempt}"
        with contextlib.ExitStack() as stack:
            extra: dict[str, str] = {}
            if backend == "postgresql":
                extra["VIDEOGATE_DATABASE_URL"] = stack.enter_context(fresh_pg_database())
            env = process_env(data_dir, None, **extra)
            procs = [launcher.start(f"migrate-{attempt}-{i}", "migrate", env=env) for i in range(4)]
            for proc in procs:
                proc.popen.wait(timeout=START_TIMEOUT)
            failed = [p for p in procs if p.popen.returncode != 0]
            assert not failed, "\n".join(p.describe() for p in failed)


# Submit at most once: a worker killed while the upstream holds its create call -------------


def test_worker_killed_mid_submit_never_submits_twice(tmp_path: Path, launcher: Launcher) -> None:
    from fakes import FakeArk, Fault

    model = "doubao-seedance-2-0-fast-260128"
    with FakeArk(queued_seconds=0.1, running_seconds=0.5) as ark:
        config = tmp_path / "videogate.toml"
        config.write_text(
            '[[groups]]\nname = "default"\n\n[[routes]]\n'
            f'name = "volc"\nmodel = "{model}"\nprovider = "ark"\n'
            f'base_url = "{ark.base_url}"\napi_key_env = "FAKE_ARK_KEY"\n'
            f'upstream_model = "{model}"\ntimeout_seconds = 60\n'
        )
        data_dir, port = tmp_path / "var", free_port()
        base = f"http://127.0.0.1:{port}"
        env = process_env(
            data_dir,
            port,
            VIDEOGATE_CONFIG=str(config),
            FAKE_ARK_KEY=ark.api_key,
            VIDEOGATE_ALLOW_PRIVATE_URLS="1",
        )
        # The upstream creates the job at once but holds the answer back: the worker is
        # exactly between "attempt recorded" and "upstream id recorded" when it dies.
        ark.inject(Fault.hang(60, process=True), on="create")
        first = launcher.start("serve-1", "serve", env=env)
        wait_healthy(first, base)
        client = Client(base, create_key(env, tmp_path)["key"])
        task_id = client.create(model=model, prompt="pay once", duration=4, resolution="480p")["id"]
        wait_until(lambda: ark.tasks or None, "the upstream to create the job", 30, [first])
        os.killpg(first.pid, signal.SIGKILL)
        first.popen.wait(timeout=30)
        row = sqlite_task(data_dir, task_id)
        assert row["status"] == "queued" and row["upstream_id"] is None, row

        second = launcher.start("serve-2", "serve", env=env)
        wait_healthy(second, base)
        done = client.wait(task_id, watch=[second])
        assert done["status"] == "completed", done
        assert len(ark.requests_to("create")) == 1  # found upstream, never sent again
        [upstream_id] = list(ark.tasks)
        assert sqlite_task(data_dir, task_id)["upstream_id"] == upstream_id
        assert ark.requests_to("list"), "the new worker looked the job up"
