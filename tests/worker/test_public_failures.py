"""Failed tasks speak the surfaces' words: no route name, upstream host or engine state
reaches a client, on ``/v1`` or the Ark surface (issue 14, point 8); the operator's detail
stays in the log."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import test_routing_e2e as e2e
from test_routing_e2e import Harness, route

from fakes import FakeArk, Fault
from videogate.worker.wording import PUBLIC_WORDING, public_message

ark = e2e.ark
harness_factory = e2e.harness_factory

ARK_TASKS = "/api/v3/contents/generations/tasks"
ROUTE = "ark-eu-primary"
# Words of the engine: its states no surface shows, and the routes.
INTERNAL = re.compile(r"\b(route|routes|fetching|worker)\b|its status is|ark-eu-primary", re.I)


# The slow tier (make test, not make test-fast): failures end to end against fake upstream servers.
pytestmark = pytest.mark.slow


async def shown_messages(h: Harness, task_id: str) -> list[str]:
    v1 = (await h.client.get(f"/v1/videos/{task_id}", headers=h.auth)).json()
    on_ark = (await h.client.get(f"{ARK_TASKS}/{task_id}", headers=h.auth)).json()
    assert v1["status"] == "failed" and on_ark["status"] == "failed", (v1, on_ark)
    return [v1["error"]["message"], on_ark["error"]["message"]]


def assert_public(messages: list[str], host: str) -> None:
    for message in messages:
        assert message and not INTERNAL.search(message), message
        assert host not in message, message


async def test_a_poll_that_keeps_failing(
    harness_factory: Any, ark: FakeArk, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider's error names the route ("route ark-eu-primary: the upstream sent …"):
    the task says what happened in the client's words, the log keeps the detail."""
    ark.inject(Fault.malformed_json(), on="get", times=None)
    async with harness_factory(route(ROUTE, ark), poll_failure_window_seconds=1.0) as h:
        with caplog.at_level(logging.INFO):
            task_id = await h.create()
            await h.wait(task_id, "failed", timeout=60)
        messages = await shown_messages(h, task_id)
    assert_public(messages, ark.root_url.split("//", 1)[1])
    assert PUBLIC_WORDING["upstream_malformed"] in messages[0]
    assert "gave up after" in messages[0]
    assert ROUTE in caplog.text  # the operator's detail is in the log


async def test_a_submit_that_every_route_refuses(
    harness_factory: Any, ark: FakeArk, caplog: pytest.LogCaptureFixture
) -> None:
    ark.inject(Fault.error(401, "AuthenticationError", "bad key"), on="create", times=None)
    # The breaker stays closed, so every round really asks the route.
    async with harness_factory(route(ROUTE, ark), breaker_failures=100) as h:
        task_id = await h.create()
        row = await h.state.ctx.store.tasks.get(task_id)
        assert row is not None
        # As if four rounds had failed already: the next one is the last.
        from sqlalchemy import update

        from videogate.store.tables import Task

        with caplog.at_level(logging.INFO):
            async with h.state.ctx.store.engine.begin() as conn:
                await conn.execute(update(Task).where(Task.id == task_id).values(errors_in_a_row=4))
            await h.wait(task_id, "failed", timeout=60)
        messages = await shown_messages(h, task_id)
    assert_public(messages, ark.root_url.split("//", 1)[1])


def test_public_message_keeps_what_the_client_can_use() -> None:
    upstream = "The request failed because the output video may be related to copyright."
    assert public_message("OutputVideoSensitiveContentDetected", upstream, [ROUTE]) == upstream
    for leaky in (
        f"could not connect to 10.0.0.7:443 (route {ROUTE}): refused",
        f"{ROUTE}: HTTP 500",
        "video_1 cannot be used: its status is running",
        "the result stayed fetching",
    ):
        public = public_message("upstream_unreachable", leaky, [ROUTE])
        assert public == PUBLIC_WORDING["upstream_unreachable"], leaky
    assert public_message("odd_code", f"route {ROUTE} broke") == (
        "the video could not be generated (odd_code)"
    )


async def test_a_task_whose_route_was_removed(harness_factory: Any, ark: FakeArk) -> None:
    """The deployment dropped the route a running task was on: the engine cannot follow it
    and says so without naming the route."""
    ark.set_schedule(auto_advance=False)  # the job stays queued upstream
    async with harness_factory(route(ROUTE, ark)) as first:
        task_id = await first.create()
        await first.wait(task_id, "in_progress")
        auth = first.auth
    async with harness_factory() as second:  # same database, no route for the model
        second.auth = auth
        await second.wait(task_id, "failed", timeout=60)
        messages = await shown_messages(second, task_id)
    assert_public(messages, ark.root_url.split("//", 1)[1])
    assert PUBLIC_WORDING["route_removed"] in messages[0]
