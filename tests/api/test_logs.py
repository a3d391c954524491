"""Structured logs: one JSON object per line with the role, the request id of the request
that created a task, and each task transition once with its reason."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import wait_for_status
from videogate.logs import configure_logging
from videogate.settings import Settings


@pytest.fixture
def json_logs(tmp_path: Path) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    configure_logging(Settings(data_dir=tmp_path, log_format="json"), role="serve", stream=out)
    try:
        yield out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


async def test_json_lines_carry_role_request_id_and_transitions(
    json_logs: io.StringIO,
    client: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    body = {"model": "sandbox", "prompt": "log me", "duration": 4, "resolution": "480p"}
    created = await client.post(
        "/v1/videos", json=body, headers={**auth, "X-Request-Id": "req-abc-123"}
    )
    assert created.status_code == 200, created.text
    assert created.headers["x-request-id"] == "req-abc-123"
    task_id = created.json()["id"]
    done = await wait_for_status(client, task_id, auth, timeout=120)
    assert done["status"] == "completed", done

    records = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    mine = [r for r in records if r.get("task_id") == task_id]
    transitions = [r["status"] for r in mine if "reason" in r]
    assert transitions == ["queued", "running", "fetching", "succeeded"], mine
    for record in mine:
        assert record["role"] == "serve" and record["level"] == "info"
        assert "timestamp" in record and record["key_id"]
    created_line = next(r for r in mine if r.get("status") == "queued")
    assert created_line["request_id"] == "req-abc-123"
    assert created_line["reason"] == "created on the relay surface"
