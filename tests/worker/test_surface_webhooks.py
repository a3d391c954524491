"""Webhooks and task objects in the shape of the surface a task was created on: OpenAI's
events for OpenAI-shaped tasks, Ark's task object (and error codes, and echoed fields)
for Ark tasks."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from webhook_support import Api, Receiver, api, receiver, settings, settled

__all__ = ["api", "receiver", "settings"]  # fixtures

ARK_TASKS = "/api/v3/contents/generations/tasks"
FAST = "doubao-seedance-2-0-fast-260128"


# The slow tier (make test, not make test-fast): each surface's webhooks to a live receiver.
pytestmark = pytest.mark.slow


def payloads(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.acked()]


async def test_openai_tasks_send_openais_events(api: Api, receiver: Receiver) -> None:
    body = {
        "prompt": "a lighthouse",
        "seconds": "4",
        "size": "1280x720",
        "callback_url": receiver.url,
    }
    r = await api.client.post("/v1/videos", json=body, headers=api.auth)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    await settled(api, task_id)
    got = payloads(receiver)
    # Only the terminal event, in OpenAI's shape, signed like every webhook of ours.
    assert [p["type"] for p in got] == ["video.completed"]
    event = got[0]
    assert event["object"] == "event" and event["data"] == {"id": task_id}
    assert event["id"] == receiver.acked()[0].id and isinstance(event["created_at"], int)
    assert all(r.verified for r in receiver.acked())


async def test_ark_tasks_send_arks_task_object(api: Api, receiver: Receiver) -> None:
    body = {
        "model": FAST,
        "content": [{"type": "text", "text": "a lighthouse"}],
        "duration": 4,
        "resolution": "480p",
        "callback_url": receiver.url,
        "execution_expires_after": 7200,
        "priority": 3,
        "safety_identifier": "user-42",
        "camera_fixed": True,
        "service_tier": "default",
        "tools": None,
    }
    r = await api.client.post(ARK_TASKS, json=body, headers=api.auth)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    await settled(api, task_id)
    got = payloads(receiver)
    statuses = [p["status"] for p in got]
    assert (
        statuses[-1] == "succeeded"
        and "in_progress" not in statuses
        and "completed" not in statuses
    )
    final = got[-1]
    assert final["content"]["video_url"] and final["id"] == task_id
    # The create fields are honoured and echoed as Ark does.
    task = (await api.client.get(f"{ARK_TASKS}/{task_id}", headers=api.auth)).json()
    assert task["execution_expires_after"] == 7200
    assert (task["priority"], task["safety_identifier"], task["camera_fixed"]) == (
        3,
        "user-42",
        True,
    )
    row = await api.state.ctx.store.tasks.get(task_id)
    assert row is not None and round(row.deadline_at - row.created_at) == 7200


async def test_failed_ark_tasks_carry_arks_error_codes(api: Api) -> None:
    body = {"model": FAST, "content": [{"type": "text", "text": "x"}], "duration": 12}
    r = await api.client.post(ARK_TASKS, json=body, headers=api.auth)
    task_id = r.json()["id"]
    await api.client.post(f"/v1/videos/{task_id}/cancel", headers=api.auth)
    task = (await api.client.get(f"{ARK_TASKS}/{task_id}", headers=api.auth)).json()
    assert task["status"] == "cancelled" and task["error"] is None  # Ark shows no error then
    row = await api.state.ctx.store.tasks.get(task_id)
    assert row is not None
    from videogate.views.ark import ark_error_code

    assert ark_error_code("upstream_timeout") == "ServiceUnavailable"
    assert ark_error_code("result_invalid") == "InternalServiceError"
    assert ark_error_code("OutputVideoSensitiveContentDetected.PolicyViolation") == (
        "OutputVideoSensitiveContentDetected.PolicyViolation"
    )
    # A failed task on the Ark surface: Ark's code, our detail kept in the message
    # (presented from the stored row, as the poll and the callbacks do).
    row = replace(
        row, status="failed", error_code="upstream_timeout", error_message="took too long"
    )
    from videogate.views.ark import ark_task

    shown = ark_task(row, api.state.ctx.signer, 60)
    assert shown["error"] == {
        "code": "ServiceUnavailable",
        "message": "took too long (upstream_timeout)",
    }
