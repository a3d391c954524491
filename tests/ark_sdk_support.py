"""Shared by the tests that drive the official Ark SDK against a live server (tests/compat):
a text content item and a wait for a task to finish."""

from __future__ import annotations

import time
from typing import Any

FINISHED = ("succeeded", "failed", "cancelled", "expired")


def text(prompt: str) -> dict[str, str]:
    return {"type": "text", "text": prompt}


def wait_done(ark: Any, task_id: str, timeout: float = 90.0) -> Any:
    """The task once finished (the SDK's object), polled every 0.2 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = ark.content_generation.tasks.get(task_id=task_id)
        if task.status in FINISHED:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")
