"""Schemathesis over the OpenAPI document: both task surfaces, no 5xx, every response as
documented.

Fuzzed: ``/v1/videos*`` (relay and OpenAI form), ``/v1/files*``, ``/v1/models`` and
``/api/v3/*`` (Ark). Left out: ``/admin/*`` (admin token, not the API key),
``/files/{blob_key}`` (signed URLs: random paths only ever give 403s), the upstream
callback, ``/healthz``. The fuzz runs without the worker (tasks stay queued, no renders on a
2-core machine); the finished-task shapes are checked against the same document by
``test_finished_tasks_match_the_document``. Each operation gets 25 positive and 25 negative
cases (``VG_FUZZ_EXAMPLES`` raises that for a longer hunt).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import TEST_BASE, wait_for_status
from videogate.api.app import create_app
from videogate.context import open_context
from videogate.request import GenerationRequest
from videogate.service.keys import KeyAuthenticator, create_key
from videogate.service.tasks import TaskService
from videogate.settings import Settings

FAST = "doubao-seedance-2-0-fast-260128"
# Hypothesis-driven fuzzing of every documented operation: the slow tier (make test).
pytestmark = pytest.mark.slow
FUZZED = r"^/(v1/(videos|files|models)|api/v3/)"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@dataclass
class Gate:
    app: FastAPI
    headers: dict[str, str]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    config = Settings(
        data_dir=tmp_path / "var",
        public_url=TEST_BASE,
        allow_private_urls=True,
        key_cache_seconds=0,
    )

    async def prepare() -> str:
        ctx = await open_context(config, migrate=True)
        try:
            key = (await create_key(ctx.store, name="schemathesis")).key
            # A few queued tasks, so the lists have items to check.
            caller = await KeyAuthenticator(ctx.store, 0).authenticate(f"Bearer {key}")
            for seed in (None, 7):
                req = GenerationRequest(model=FAST, prompt="a fox", duration=4, seed=seed)
                await TaskService(ctx).create(caller, req)
            return key
        finally:
            await ctx.close()

    key = asyncio.run(prepare())
    # Schemathesis runs the lifespan itself (in its own event loop thread).
    app = create_app(config, run_worker=False, migrate=False)
    gate = Gate(app, {"Authorization": f"Bearer {key}"})
    yield gate
    shutdown_lifespans()


def fuzzed_operations() -> list[tuple[str, str]]:
    """(method, path) of every fuzzed operation, read from the document (no lifespan)."""
    document = create_app(Settings(data_dir=Path("/nonexistent"))).openapi()
    paths: dict[str, dict[str, Any]] = document["paths"]
    return [
        (method.upper(), path)
        for path, item in paths.items()
        if re.match(FUZZED, path)
        for method in item
    ]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), fuzzed_operations())
def test_api_matches_its_document(method: str, path: str, mode: GenerationMode, gate: Gate) -> None:
    # Schemathesis' pytest integration (`from_fixture`/`parametrize`) does not run on
    # pytest 9, so each operation is a plain parametrized test driving its strategy.
    operation = schemathesis.openapi.from_asgi("/openapi.json", gate.app)[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=int(os.environ.get("VG_FUZZ_EXAMPLES", "25")),
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=gate.headers, checks=CHECKS)

    run()


# --- finished tasks, on both surfaces ---------------------------------------------------


def check(document: Any, path: str, method: str, response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    document[path][method].validate_response(response)


async def test_finished_tasks_match_the_document(
    app: FastAPI, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    document = schemathesis.openapi.from_dict(app.openapi())
    relay = "/v1/videos"
    ark = "/api/v3/contents/generations/tasks"
    body = {"model": FAST, "prompt": "a red fox in snow", "duration": 4, "resolution": "480p"}
    r = await client.post(relay, json=body, headers=auth)
    check(document, relay, "POST", r)
    relay_id = r.json()["id"]
    r = await client.post(
        ark,
        json={
            "model": FAST,
            "content": [{"type": "text", "text": "a red fox in snow"}],
            "duration": 4,
            "resolution": "480p",
            "return_last_frame": True,
            "safety_identifier": "user-1",
        },
        headers=auth,
    )
    check(document, ark, "POST", r)
    ark_id = r.json()["id"]
    for task_id in (relay_id, ark_id):
        await wait_for_status(client, task_id, auth, statuses=("completed",))
        r = await client.get(f"{relay}/{task_id}", headers=auth)
        check(document, relay + "/{task_id}", "GET", r)
        assert r.json()["video_url"] and r.json()["usage"]
        r = await client.get(f"{ark}/{task_id}", headers=auth)
        check(document, ark + "/{task_id}", "GET", r)
        assert r.json()["content"]["video_url"] and r.json()["usage"]
    check(document, relay, "GET", await client.get(relay, headers=auth))
    check(document, ark, "GET", await client.get(ark, headers=auth))
    r = await client.get(f"{relay}/{relay_id}/content", headers=auth)
    check(document, relay + "/{task_id}/content", "GET", r)
    r = await client.delete(f"{relay}/{relay_id}", headers=auth)
    check(document, relay + "/{task_id}", "DELETE", r)
    r = await client.delete(f"{ark}/{ark_id}", headers=auth)
    check(document, ark + "/{task_id}", "DELETE", r)
    # Errors, in each surface's envelope.
    for path in (f"{relay}/video_unknown", f"{ark}/{ark_id}"):  # the Ark delete is for good
        r = await client.get(path, headers=auth)
        assert r.status_code == 404
        template = path.rsplit("/", 1)[0] + "/{task_id}"
        check(document, template, "GET", r)
        r = await client.get(path)
        assert r.status_code == 401
        check(document, template, "GET", r)
