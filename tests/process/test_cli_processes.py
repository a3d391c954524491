"""The client commands as real processes: every command, a batch SIGKILLed halfway (and
mid-create) and resumed without a duplicate task, Ctrl-C detaching, a download cut and
resumed, and the client-only install (no server dependencies)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client_support import (
    SHORT_FLAGS,
    VIDEOGATE,
    CuttingServer,
    Videogate,
    cli_env,
    cutting_server,
    fake_env,
    png,
    run_cli,
    vg,
)
from conftest import LiveServer, make_live_key
from fakes import FakeArk, FakeRelay, Fault, sample_mp4
from videogate.client import Client, mp4_duration

__all__ = ["cutting_server", "vg"]  # fixtures

pytestmark = pytest.mark.slow


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert result.returncode == code, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """A CLI process in its own session, output to files (``proc.args`` has the paths in
    ``cwd / "proc.out"`` and ``"proc.err"``); SIGKILLed at the end if still running."""
    with (cwd / "proc.out").open("w") as stdout, (cwd / "proc.err").open("w") as stderr:
        proc = subprocess.Popen(
            [VIDEOGATE, *args],
            env=cli_env(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def new_key(vg: Videogate) -> dict[str, str]:
    """A fresh key, so that listing its tasks counts only this test's."""
    return {**vg.env(), "VIDEOGATE_API_KEY": make_live_key(LiveServer(vg.base_url, vg.settings))}


def test_every_command_as_a_process(vg: Videogate, tmp_path: Path) -> None:
    env = vg.env()
    image = png(tmp_path / "a.png")
    made = as_json(
        ok(
            run_cli(
                "generate",
                "image 1",
                *SHORT_FLAGS,
                "-i",
                str(image),
                "--json",
                env=env,
                cwd=tmp_path,
            )
        )
    )
    default_out = tmp_path / f"{made['id']}.mp4"  # no -o: ID.mp4 in the working directory
    assert made["file"] == default_out.name and default_out.exists()
    task_id = made["id"]
    assert as_json(ok(run_cli("status", task_id, "--json", env=env, cwd=tmp_path)))["status"] == (
        "succeeded"
    )
    ok(run_cli("wait", task_id, "-o", "w.mp4", env=env, cwd=tmp_path))
    ok(run_cli("download", task_id, "-o", "d.mp4", env=env, cwd=tmp_path))
    assert (tmp_path / "w.mp4").read_bytes() == (tmp_path / "d.mp4").read_bytes()
    listed = as_json(ok(run_cli("list", "--json", env=env, cwd=tmp_path)))
    assert task_id in [t["id"] for t in listed["data"]]
    models = as_json(ok(run_cli("models", "--json", env=env, cwd=tmp_path)))
    assert "sandbox" in [m["id"] for m in models]
    assert "succeeded" in ok(run_cli("cancel", task_id, env=env, cwd=tmp_path)).stdout
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a fox", "model": "sandbox", "duration": 4}) + "\n")
    summary = as_json(
        ok(run_cli("batch", str(jobs), "--out", "b", "--json", env=env, cwd=tmp_path))
    )
    assert summary["succeeded"] == 1 and (tmp_path / "b" / "0001.mp4").exists()


@pytest.mark.parametrize("api", ["videogate", "relay", "ark"])
def test_batch_killed_halfway_resumes_without_duplicates(
    api: str, vg: Videogate, tmp_path: Path
) -> None:
    lines = 6
    fake: FakeArk | FakeRelay | None = None
    with contextlib.ExitStack() as stack:
        if api == "videogate":
            env = new_key(vg)
            job: dict[str, Any] = {"model": "sandbox", "duration": 4, "resolution": "480p"}
        else:
            started_fake: FakeArk | FakeRelay = (
                FakeArk(running_seconds=0.6) if api == "ark" else FakeRelay(running_seconds=0.6)
            )
            stack.enter_context(started_fake)
            env = {**fake_env(started_fake), "VIDEOGATE_POLL_INTERVAL": "0.05"}
            job = {"model": "doubao-seedance-2-0-fast-260128", "duration": 5}
            # The first create is carried out, but its answer never comes: the kill lands
            # between the POST and the journal's record of the id.
            started_fake.inject(Fault.hang(60, process=True), on="create", times=1)
            fake = started_fake
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text(
            "".join(json.dumps({"prompt": f"clip {i}", **job}) + "\n" for i in range(1, lines + 1))
        )
        out = tmp_path / "out"
        args = ["batch", str(jobs), "--out", str(out), "--concurrency", "2"]

        def clips() -> list[Path]:
            return sorted(out.glob("*.mp4"))

        with started(args, env, tmp_path) as proc:
            wait_until(lambda: len(clips()) >= 2, 120, "two clips")
            assert proc.poll() is None, (tmp_path / "proc.err").read_text()
            os.killpg(proc.pid, signal.SIGKILL)
        assert len(clips()) < lines
        if fake is not None:
            assert len(fake.requests_to("create")) >= 3  # the hung one and two more

        summary = as_json(ok(run_cli(*args, "--json", env=env, cwd=tmp_path, timeout=180)))
        assert summary["succeeded"] == lines

        rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        assert [r["status"] for r in rows] == ["succeeded"] * lines
        ids = {r["id"] for r in rows}
        assert len(ids) == lines
        assert [p.name for p in clips()] == [f"{i:04d}.mp4" for i in range(1, lines + 1)]
        assert not list(out.glob(".*part"))
        for clip in clips():
            assert (mp4_duration(clip) or 0) > 0
        if fake is not None:
            assert len(fake.requests_to("create")) == lines  # no task created twice
            assert set(fake.tasks) == ids
            assert all(c.read_bytes() == sample_mp4(True) for c in clips())
        else:
            with Client(vg.base_url, env["VIDEOGATE_API_KEY"]) as client:
                assert {t.id for t in client.list(limit=100).tasks} == ids


def test_ctrl_c_detaches_and_prints_how_to_resume(tmp_path: Path) -> None:
    with FakeRelay(auto_advance=False) as relay:
        env = {**fake_env(relay), "VIDEOGATE_POLL_INTERVAL": "0.05"}
        with started(["generate", "a slow one", "-o", "slow.mp4"], env, tmp_path) as proc:
            wait_until(lambda: len(relay.requests_to("get")) >= 2, 30, "polling")
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            stderr = (tmp_path / "proc.err").read_text()
            assert proc.returncode == 130, stderr
        (task_id,) = relay.tasks
        assert "keeps running" in stderr
        resume = f"videogate wait {task_id} -o slow.mp4"
        assert resume in stderr
        assert relay.requests_to("delete") == []  # not cancelled
        relay.complete(task_id)
        args = shlex.split(resume)[1:]
        result = ok(run_cli(*args, env=env, cwd=tmp_path))
        assert "saved slow.mp4" in result.stdout
        assert (tmp_path / "slow.mp4").read_bytes() == sample_mp4(True)


def test_download_cut_midway_resumes_as_a_process(
    cutting_server: CuttingServer, tmp_path: Path
) -> None:
    with FakeRelay(auto_advance=False) as relay:
        with Client(relay.base_url, relay.api_key, api="relay") as client:
            task = client.create("a fox", model="m")
        relay.complete(task.id, video_url=cutting_server.url)
        ok(run_cli("download", task.id, "-o", "cut.mp4", env=fake_env(relay), cwd=tmp_path))
    assert (tmp_path / "cut.mp4").read_bytes() == cutting_server.payload
    assert cutting_server.ranges == [None, f"bytes={cutting_server.cut}-"]


def test_the_client_install_needs_no_server(vg: Videogate, tmp_path: Path) -> None:
    """``pip install videogate`` (no extras) gives a working SDK and client CLI; the
    server commands say what to install."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    root = Path(__file__).resolve().parents[2]
    python = str(venv / "bin" / "python")
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "-q",
            "--no-compile",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if pip.returncode != 0:
        if "No matching distribution" in pip.stderr or "connection" in pip.stderr.lower():
            pytest.skip(f"no package index reachable: {pip.stderr[-300:]}")
        raise AssertionError(pip.stderr)
    videogate = str(venv / "bin" / "videogate")
    probe = subprocess.run(
        [python, "-c", "import fastapi"], capture_output=True, text=True, timeout=60
    )
    assert probe.returncode != 0, "the client install pulled in the server's dependencies"
    subprocess.run(
        [python, "-c", "import videogate.client as c; c.Client('http://h', 'k').close()"],
        check=True,
        timeout=60,
    )
    env = cli_env(vg.env())
    helped = subprocess.run(
        [videogate, "generate", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert helped.returncode == 0 and "--first-frame" in helped.stdout
    serve = subprocess.run(
        [videogate, "serve"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert serve.returncode == 2
    assert "needs the server install" in serve.stdout + serve.stderr
    assert "videogate[server]" in serve.stdout + serve.stderr
    made = subprocess.run(
        [videogate, "generate", "a fox", *SHORT_FLAGS, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["status"] == "succeeded"
