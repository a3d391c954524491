"""The upstream error policy (``providers/http.py``), and the proof that the Ark and the
OpenAI-compatible providers now answer the same way to the same upstream answer.

Each row of :data:`POLICY` is sent by both fakes (Ark and relay), to a create and to a
poll; both providers must raise an :class:`UpstreamError` with the row's disposition,
status and ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes import FakeArk, FakeRelay, Fault
from videogate.errors import Disposition, UpstreamError
from videogate.providers import load_provider
from videogate.providers.base import Provider, ProviderDeps, Route, TaskContext
from videogate.providers.http import disposition_of, retry_after
from videogate.request import GenerationRequest
from videogate.settings import Settings

RETRY, OVER, FAIL, MAYBE = (
    Disposition.RETRY,
    Disposition.FAIL_OVER,
    Disposition.FAIL_TASK,
    Disposition.MAYBE_SUBMITTED,
)
MODEL = "doubao-seedance-2-0-260128"


# ---- the status table, without a server ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (100, None, OVER),
        (301, None, OVER),  # base_url is wrong; our key never follows a redirect
        (302, None, OVER),
        (304, None, OVER),
        (307, None, OVER),
        (308, None, OVER),
        (400, None, FAIL),
        (400, "InvalidParameter", FAIL),
        (400, "InputTextSensitiveContentDetected", FAIL),
        (400, "ModelNotOpen", OVER),  # Ark: the account has not enabled the model
        (400, "InvalidEndpointOrModel.NotFound", OVER),
        (401, None, OVER),
        (402, None, OVER),
        (403, None, OVER),
        (403, "AccessDenied", OVER),
        (404, None, OVER),  # endpoint, model or job unknown to this route
        (404, "model_not_found", OVER),
        (405, None, OVER),
        (408, None, RETRY),  # the upstream gave up reading: nothing was acted on
        (409, None, FAIL),
        (410, None, FAIL),
        (413, None, FAIL),
        (422, None, FAIL),
        (425, None, RETRY),
        (429, None, RETRY),
        (429, "QuotaExceeded", RETRY),  # Ark's queued-task cap: passes
        (429, "insufficient_quota", OVER),  # OpenAI's billing: will not pass by waiting
        (500, None, RETRY),
        (500, "model_not_found", RETRY),  # a 5xx is the upstream's trouble, whatever it says
        (501, None, RETRY),
        (502, None, RETRY),
        (503, None, RETRY),
        (504, None, RETRY),
        (599, None, RETRY),
    ],
)
def test_status_policy(status: int, code: str | None, expected: Disposition) -> None:
    assert disposition_of(status, code) is expected


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        # A date counts from the answer's own Date: our clock and skew do not enter.
        (
            {
                "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
                "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
            },
            30.0,
        ),
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}, None),  # no Date: unknown
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(httpx.Response(429, headers=headers)) == seconds


def test_the_disposition_is_the_one_value() -> None:
    """No flag beside it that could disagree; a bare UpstreamError fails the task."""
    err = UpstreamError("x")
    assert err.disposition is FAIL and err.retry_after is None
    assert not hasattr(err, "retryable") and not hasattr(err, "route_fault")
    assert not hasattr(err, "maybe_submitted")


# ---- both providers against both fakes ----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the upstream does, and what the providers must make of it."""

    name: str
    fault: Fault | None  # None: see ``offline`` / ``hang``
    disposition: Disposition
    status: int | None
    retry_after: float | None = None
    on_poll: Disposition | None = None  # when a poll differs (never: only a create looks up)
    total_timeout: float | None = None  # upstream_total_timeout_seconds, if not the default


POLICY = [
    Answer("302", Fault.error(302), OVER, 302),
    Answer("400", Fault.error(400, "bad_field", "no"), FAIL, 400),
    Answer("401", Fault.error(401), OVER, 401),
    Answer("402", Fault.error(402), OVER, 402),
    Answer("403", Fault.error(403), OVER, 403),
    Answer("404", Fault.error(404), OVER, 404),
    Answer("408", Fault.error(408), RETRY, 408),
    Answer("409", Fault.error(409), FAIL, 409),
    Answer("422", Fault.error(422), FAIL, 422),
    Answer("429", Fault.rate_limited(), RETRY, 429),
    Answer("429 Retry-After", Fault.rate_limited(retry_after="7"), RETRY, 429, 7.0),
    Answer("429 insufficient_quota", Fault.rate_limited("insufficient_quota"), OVER, 429),
    Answer("400 ModelNotOpen", Fault.error(400, "ModelNotOpen"), OVER, 400),
    Answer("500", Fault.server_error(), RETRY, 500),
    Answer("502 HTML", Fault.wrong_content_type(status=502), RETRY, 502),
    Answer("503 Retry-After", Fault.error(503, retry_after="30"), RETRY, 503, 30.0),
    Answer("200 unreadable", Fault.malformed_json(), MAYBE, 200),
    Answer("200 HTML", Fault.wrong_content_type(), MAYBE, 200),
    Answer("broken mid-answer", Fault.disconnect(), MAYBE, None),
    # Over the total timeout: a slow connect on a loaded machine is past it too, and the
    # total timeout never tells whether the request left, so it is MAYBE_SUBMITTED either way.
    Answer("timeout after sending", Fault.hang(10), MAYBE, None, total_timeout=1.0),
    Answer("refused before sending", None, RETRY, None),
]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeArk | FakeRelay]]:
    with FakeArk() as ark, FakeRelay() as relay:
        yield {"ark": ark, "openai": relay}


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[ProviderDeps]:
    async def no_cpu(*args: Any) -> None:
        raise AssertionError("no rendering here")

    async with httpx.AsyncClient(trust_env=False) as http:
        yield ProviderDeps(settings=Settings(data_dir=tmp_path), http=http, run_cpu=no_cpu)


def _route(kind: str, fake: FakeArk | FakeRelay, **kw: Any) -> Route:
    fields: dict[str, Any] = {
        "name": f"{kind}-route",
        "model": MODEL,
        "provider": kind,
        "upstream_model": MODEL,
        "base_url": fake.base_url,
        "api_key_env": "UPSTREAM_KEY",
        "api_key": fake.api_key,
        "timeout_seconds": 5.0,  # a loaded machine may take a while to connect
        **kw,
    }
    return Route(**fields)


def _ctx(route: Route, tmp_path: Path) -> TaskContext:
    return TaskContext(
        task_id="tsk_policy",
        request=GenerationRequest(model=MODEL, prompt="a cat"),
        route=route,
        reference_paths={},
        reference_urls={},
        work_dir=tmp_path,
        attempt_id="policy0000000000",
    )


@dataclass(frozen=True)
class Seen:
    disposition: Disposition
    status: int | None
    retry_after: float | None


async def _answer_to(
    kind: str, fake: FakeArk | FakeRelay, answer: Answer, call: str, deps: ProviderDeps, tmp: Path
) -> Seen:
    fake.reset()
    fake.auto_advance = False
    route = _route(kind, fake)
    provider: Provider = load_provider(kind, route, deps)
    ctx = _ctx(route, tmp)
    upstream_id = await provider.submit(ctx) if call == "get" else ""
    if answer.total_timeout is not None:
        settings = deps.settings.model_copy(
            update={"upstream_total_timeout_seconds": answer.total_timeout}
        )
        provider = load_provider(kind, route, replace(deps, settings=settings))
    with pytest.raises(UpstreamError) as info:
        if answer.fault is None:
            with fake.offline():
                await _call(provider, ctx, call, upstream_id)
        else:
            fake.inject(answer.fault, on=call)
            await _call(provider, ctx, call, upstream_id)
    err = info.value
    assert fake.internal_errors == []
    return Seen(err.disposition, err.status, err.retry_after)


async def _call(provider: Provider, ctx: TaskContext, call: str, upstream_id: str) -> None:
    if call == "create":
        await provider.submit(ctx)
    else:
        await provider.poll(ctx, upstream_id)


@pytest.mark.parametrize("call", ["create", "get"])
@pytest.mark.parametrize("answer", POLICY, ids=[a.name for a in POLICY])
async def test_ark_and_openai_agree(
    fakes: dict[str, FakeArk | FakeRelay],
    deps: ProviderDeps,
    tmp_path: Path,
    answer: Answer,
    call: str,
) -> None:
    want = answer.disposition
    if call == "get" and answer.on_poll is not None:
        want = answer.on_poll
    expected = Seen(want, answer.status, answer.retry_after)
    seen = {
        kind: await _answer_to(kind, fake, answer, call, deps, tmp_path)
        for kind, fake in fakes.items()
    }
    assert seen == {"ark": expected, "openai": expected}


@pytest.mark.parametrize("kind", ["ark", "openai"])
@pytest.mark.parametrize("call", ["submit", "poll", "cancel", "recover"])
async def test_a_missing_key_fails_over_on_every_call_without_a_request(
    fakes: dict[str, FakeArk | FakeRelay], deps: ProviderDeps, tmp_path: Path, kind: str, call: str
) -> None:
    fake = fakes[kind]
    fake.reset()
    route = _route(kind, fake, api_key="")
    provider = load_provider(kind, route, deps)
    ctx = _ctx(route, tmp_path)
    with pytest.raises(UpstreamError) as info:
        if call == "submit":
            await provider.submit(ctx)
        elif call == "poll":
            await provider.poll(ctx, "job-1")
        elif call == "cancel":
            await provider.cancel(ctx, "job-1")
        else:
            await provider.recover(ctx, 0.0, frozenset())
    assert (info.value.code, info.value.disposition) == ("upstream_key_missing", OVER)
    assert "UPSTREAM_KEY" in info.value.message
    assert fake.requests == []
