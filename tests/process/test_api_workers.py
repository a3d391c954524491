"""``videogate api --workers 2``: two processes behind one port, one ``/metrics``.

prometheus-client's multi-process mode: whichever process answers a scrape reports what
both served; the gauges read from the database appear once, not once per process; a
previous run's values are wiped at start; on exit each process drops its live gauges and
a directory the command made for itself goes. The spawned processes log as the command
was told to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
from test_processes import (
    HTTP_TIMEOUT,
    SHORT,
    START_TIMEOUT,
    Client,
    Launcher,
    create_key,
    launcher,
    process_env,
    wait_healthy,
    wait_until,
)

from conftest import free_port
from metrics_text import metric

pytestmark = pytest.mark.slow
__all__ = ["launcher"]  # a fixture, imported for this module's tests

QUEUED = 3
STALE = 1000.0  # what a previous run left in a given directory
MODELS = {"route": "/v1/models", "method": "GET", "status": "2xx"}


def served_by(response: requests.Response) -> str:
    """The process that answered: a request id is a per-process prefix of 12 hex digits and
    a counter (api/observe.py)."""
    return response.headers["x-request-id"][:12]


def leave_stale_values(directory: Path) -> None:
    """A previous run's counter file, as a process of it would have left it."""
    code = (
        "from prometheus_client import Counter\n"
        "c = Counter('videogate_http_requests', '', ['route', 'method', 'status'])\n"
        f"c.labels('/v1/models', 'GET', '2xx').inc({STALE})\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": ""}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))


@pytest.mark.parametrize("directory", ["given", "made"])
def test_api_workers_report_every_process_on_one_port(
    tmp_path: Path, launcher: Launcher, directory: str
) -> None:
    data = tmp_path / "api"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra: dict[str, str] = {}
    shared = data / "metrics"  # where the command makes its own
    if directory == "given":
        shared = tmp_path / "prometheus"
        shared.mkdir()
        leave_stale_values(shared)
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    # JSON logs at info: the processes' start lines say who they are.
    env = process_env(data, port, VIDEOGATE_LOG_FORMAT="json", VIDEOGATE_LOG_LEVEL="info", **extra)
    client = Client(base, create_key(env, tmp_path)["key"])
    api = launcher.start("api", "api", "--workers", "2", env=env)
    wait_healthy(api, base)
    assert shared.is_dir()

    # No worker runs: the tasks stay queued, a cluster-wide gauge read from the database.
    for i in range(QUEUED):
        client.create(prompt=f"queued {i}", **SHORT)
    # Requests on fresh connections until both processes have answered some.
    answered: Counter[str] = Counter()
    while len(answered) < 2 and sum(answered.values()) < 500:
        r = requests.get(f"{base}/v1/models", headers=client.headers, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        answered[served_by(r)] += 1
    assert len(answered) == 2, f"one process answered all {answered.total()} requests"

    # Scrapes until both processes have answered one: each reports the sum.
    scraped_by: set[str] = set()
    for _ in range(500):
        r = requests.get(f"{base}/metrics", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        text = r.text
        assert metric(text, "videogate_http_requests_total", **MODELS) == answered.total()
        assert metric(text, "videogate_tasks_created_total") == QUEUED
        queued = [
            line
            for line in text.splitlines()
            if line.startswith('videogate_tasks_in_flight{status="queued"}')
        ]
        assert queued == [f'videogate_tasks_in_flight{{status="queued"}} {float(QUEUED)}'], queued
        scraped_by.add(served_by(r))
        if len(scraped_by) == 2:
            break
    assert len(scraped_by) == 2, "one process answered every scrape"
    live = sorted(p.name for p in shared.glob("gauge_live*.db"))
    assert len(live) == 2, live  # one per process, each has read the database

    api.stop()
    # Every process logs in the chosen format with its role, the spawned ones included.
    lines = [json.loads(line) for line in api.stderr().splitlines() if line.strip()]
    assert {r["role"] for r in lines} == {"api"}, lines
    started = [r for r in lines if r["event"].startswith("Started server process")]
    assert len(started) == 2, lines
    if directory == "made":
        assert not shared.exists()
    else:
        # The counters stay (totals never go down); the live gauges went with their process.
        assert list(shared.glob("counter_*.db"))
        assert not list(shared.glob("gauge_live*.db"))
        # A worker given the same environment keeps its values to itself: its metrics port
        # is its own, and its counts in the API's directory would be counted twice.
        metrics_port = free_port()
        worker = launcher.start("worker", "worker", "--metrics-port", str(metrics_port), env=env)
        scraped = wait_until(
            lambda: _scrape(f"http://127.0.0.1:{metrics_port}/metrics"),
            "the worker's /metrics",
            START_TIMEOUT,
            [worker],
        )
        assert "videogate_tasks_in_flight" in scraped
        assert not list(shared.glob(f"*_{worker.pid}.db"))


def _scrape(url: str) -> str | None:
    try:
        r = requests.get(url, timeout=HTTP_TIMEOUT)
    except requests.RequestException:
        return None
    return r.text if r.status_code == 200 else None
