"""Scale-out for real: 2 ``videogate api`` + 2 ``videogate worker`` processes, each with its
own empty data directory, on one PostgreSQL, one S3 store (moto on loopback) and Redis.

50 tasks with uploads and references go in through both API processes; one worker is
killed with SIGKILL midway; every task completes and downloads from either API; each
process's ``/metrics`` reports what it did; the ``X-Request-Id`` of each create is on the
worker log lines of its task.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from test_processes import (
    HTTP_TIMEOUT,
    START_TIMEOUT,
    Client,
    Launcher,
    create_key,
    launcher,
    pg_url,
    probe_mp4,
    process_env,
    wait_healthy,
    wait_until,
)

from conftest import free_port
from fakes.s3 import S3Server
from media_factory import png_bytes
from metrics_text import metric

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
__all__ = ["launcher", "pg_url"]  # fixtures, imported for this module's tests

TASKS = 50
SHORT = {"model": "sandbox", "duration": 4, "resolution": "480p", "generate_audio": False}


def upload(base: str, key: str, seed: int) -> str:
    image = png_bytes(480, 480, (seed * 5 % 255, 90, 160))
    r = requests.post(
        f"{base}/v1/files",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (f"frame{seed}.png", image, "image/png")},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, r.text
    url: str = r.json()["url"]
    return url


def test_two_apis_two_workers_postgres_s3_redis(
    pg_url: str, tmp_path: Path, launcher: Launcher, s3_server: S3Server
) -> None:
    bucket = s3_server.new_bucket()
    shared = {
        "VIDEOGATE_DATABASE_URL": pg_url,
        "VIDEOGATE_BLOB_URL": f"s3://{bucket}/videogate",
        "VIDEOGATE_RATE_LIMIT_STORAGE": "redis://127.0.0.1:6379/0",
        "VIDEOGATE_RENDER_PROCESSES": "1",
        # A real render, encode and upload of a 4 s clip, at a third of the frames: the
        # renders were most of this test's time.
        "VIDEOGATE_SANDBOX_FPS": "8",
        "VIDEOGATE_WORKER_CONCURRENCY": "8",
        # Long enough that a loaded machine does not lapse leases; the takeover after the
        # kill waits this long.
        "VIDEOGATE_LEASE_SECONDS": "8",
        **s3_server.env(),
    }
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    # Behind a load balancer every API process names the balancer's address; here the
    # first API stands in for it. URLs signed by one API are then known to the other.
    shared["VIDEOGATE_PUBLIC_URL"] = bases[0]
    # Everything starts at once on the new database (concurrent migrations are safe:
    # test_processes_starting_together_on_a_new_database_all_migrate).
    apis = [
        launcher.start(f"api-{i}", "api", env=process_env(tmp_path / f"api{i}", port, **shared))
        for i, port in enumerate(ports)
    ]
    metrics_ports = [free_port(), free_port()]
    workers = [
        launcher.start(
            f"worker-{i}",
            "worker",
            "--metrics-port",
            str(metrics_ports[i]),
            # JSON lines at info: each task's lines are checked for its request id.
            env=process_env(
                tmp_path / f"worker{i}",
                None,
                **shared,
                VIDEOGATE_LOG_FORMAT="json",
                VIDEOGATE_LOG_LEVEL="info",
            ),
        )
        for i in (0, 1)
    ]
    everyone = [*apis, *workers]
    key = create_key(process_env(tmp_path / "cli", None, **shared), tmp_path)["key"]
    for api, base in zip(apis, bases, strict=True):
        wait_healthy(api, base)
    clients = [Client(base, key) for base in bases]

    # Create through both APIs: an upload on one API is a reference on the other; every
    # other task also carries an inline image, stored as a reference in the bucket.
    inline = "data:image/png;base64," + base64.b64encode(png_bytes(480, 480)).decode()

    def create(i: int) -> str:
        file_url = upload(bases[(i + 1) % 2], key, i)
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": file_url}, "role": "first_frame"}
        ]
        if i % 2:
            content.append(
                {"type": "image_url", "image_url": {"url": inline}, "role": "last_frame"}
            )
        body = {"prompt": f"scale out {i}", "content": content, **SHORT}
        r = requests.post(
            f"{bases[i % 2]}/v1/videos",
            json=body,
            headers={**clients[0].headers, "X-Request-Id": f"scale-{i}"},
            timeout=HTTP_TIMEOUT,
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == f"scale-{i}", r.text
        return str(r.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(TASKS)))

    # Midway, SIGKILL a worker (and its render process); the other one finishes the rest.
    def some_done() -> bool | None:
        done = sum(clients[1].get(t)["status"] == "completed" for t in ids[:: TASKS // 10])
        return True if done >= 3 else None

    wait_until(some_done, "a few tasks to complete", START_TIMEOUT * 2, everyone, interval=0.5)
    victim, survivor = workers
    victim.kill()
    alive = [*apis, survivor]

    finished = {}
    for n, task_id in enumerate(ids):
        done = clients[n % 2].wait(task_id, watch=alive, timeout=240)
        assert done["status"] == "completed", (done.get("error"), done)
        finished[task_id] = done

    # Every download works from either API: the signed URL names the blob, not the host.
    for n, task_id in enumerate(ids):
        done = finished[task_id]
        path_and_query = done["video_url"].split("/files/", 1)[1]
        other = bases[(n + 1) % 2]
        r = requests.get(f"{other}/files/{path_and_query}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text[:300]
        assert r.url.startswith(s3_server.endpoint)  # redirected to the store itself
        if n % 10 == 0:
            facts = probe_mp4(r.content)
            assert facts["duration"] == 4.0, facts
            ranged = requests.get(
                f"{other}/files/{path_and_query}",
                headers={"Range": "bytes=0-99"},
                timeout=HTTP_TIMEOUT,
            )
            assert ranged.status_code == 206 and ranged.content == r.content[:100]
            content = requests.get(
                f"{bases[n % 2]}/v1/videos/{task_id}/content",
                headers=clients[0].headers,
                timeout=HTTP_TIMEOUT,
            )
            assert content.status_code == 200 and content.content == r.content

    # Nothing of the blob store is on any process's disk: results, uploads and stored
    # references are all in the bucket. (What is left is per-process scratch: the killed
    # worker's half-done render and reference copies, swept later.)
    for folder in tmp_path.glob("*/"):
        assert not (folder / "blobs").exists() or not any((folder / "blobs").rglob("*.*"))

    # Each process reports what it did.
    api_texts = [requests.get(f"{b}/metrics", timeout=HTTP_TIMEOUT).text for b in bases]
    created = sum(metric(t, "videogate_tasks_created_total") for t in api_texts)
    assert created == TASKS
    for text in api_texts:
        assert metric(text, "videogate_http_requests_total", route="/v1/videos") > 0
        assert metric(text, "videogate_http_requests_total", route="/files/{blob_key:path}") > 0
        assert metric(text, "videogate_tasks_in_flight") == 0  # all done, cluster-wide
        assert metric(text, "videogate_blob_bytes_written_total", kind="uploads") > 0
        assert metric(text, "videogate_money_total", kind="held") == 0  # the sandbox is free
    survivor_text = requests.get(
        f"http://127.0.0.1:{metrics_ports[1]}/metrics", timeout=HTTP_TIMEOUT
    ).text
    assert metric(survivor_text, "videogate_tasks_finished_total", status="succeeded") > 0
    assert metric(survivor_text, "videogate_blob_bytes_written_total") > 0
    assert metric(survivor_text, "videogate_task_complete_seconds_count") > 0
    for proc in alive:
        assert proc.alive(), proc.describe()

    # The request id of each create is on the worker lines of its task, in either worker.
    request_of = {task_id: f"scale-{n}" for n, task_id in enumerate(ids)}
    seen = set()
    for worker in workers:
        for line in worker.stderr().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the killed worker's last line may be cut short
                continue
            task_id = record.get("task_id")
            if task_id in request_of:
                assert record.get("request_id") == request_of[task_id], record
                seen.add(task_id)
    assert seen == set(ids), f"{len(ids) - len(seen)} tasks have no worker line"
