"""Money through the API, against a fake Ark upstream: a hold at create (or 402), the
upstream's tokens charged at the end with the rest refunded, a full refund on failure, and
group multipliers in ``/v1/models``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE, wait_for_status
from engine_support import ark
from fakes import FakeArk
from videogate.api.app import create_app
from videogate.api.state import ApiState
from videogate.money import format_money
from videogate.pricing import seedance_tokens
from videogate.request import GenerationRequest, resolve_output
from videogate.service.keys import create_key
from videogate.settings import GroupConfig, ModelConfig, PriceConfig, RouteConfig, Settings

MODEL = "doubao-seedance-2-0-260128"
BODY: dict[str, Any] = {"model": MODEL, "prompt": "a fox", "duration": 4, "resolution": "480p"}
KEY_ENV = "KEY_BILLING_ARK"


__all__ = ["ark"]  # fixtures


class Harness:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app, self.client = app, client

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.state.api
        return state

    async def key(self, balance: str | None, group: str = "default") -> tuple[str, dict[str, str]]:
        new = await create_key(self.state.ctx.store, balance=balance, group=group)
        return new.id, {"Authorization": f"Bearer {new.key}"}

    async def balance(self, key_id: str) -> int | None:
        row = await self.state.ctx.store.keys.get(key_id)
        assert row is not None
        return row.balance_micros

    async def ledger(self, task_id: str) -> list[tuple[str, int]]:
        rows = await self.state.ctx.store.ledger.for_task(task_id)
        return [(r.kind, r.amount_micros) for r in rows]


@pytest.fixture
async def harness(
    tmp_path: Path, ark: FakeArk, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    monkeypatch.setenv(KEY_ENV, "ark-test-key")
    settings = Settings(
        data_dir=tmp_path / "var",
        public_url=TEST_BASE,
        allow_private_urls=True,
        worker_poll_interval=0.05,
        render_processes=1,
        key_cache_seconds=0,
        groups=(
            GroupConfig(name="default"),
            GroupConfig(name="premium", price_multiplier=Decimal("1.5")),
        ),
        models=(
            ModelConfig(name=MODEL, price=PriceConfig(unit="token", per_million=Decimal("7.0"))),
        ),
        routes=(
            RouteConfig(
                name="volc",
                model=MODEL,
                provider="ark",
                base_url=ark.base_url,
                api_key_env=KEY_ENV,
                timeout_seconds=5.0,
                groups=("default", "premium"),
            ),
        ),
    )
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url=TEST_BASE)
        )
        yield Harness(app, client)


def expected_hold(per_million: str = "7.0") -> int:
    """The price per million tokens on the Seedance formula for the requested size and
    length, in micros, rounded half up."""
    _, width, height = resolve_output(GenerationRequest.model_validate(BODY))
    return micros(seedance_tokens(width, height, 4), per_million)


def micros(tokens: int, per_million: str) -> int:
    return int((Decimal(tokens) * Decimal(per_million)).quantize(Decimal(1), ROUND_HALF_UP))


async def test_short_balance_is_402_and_nothing_happens(harness: Harness, ark: FakeArk) -> None:
    key_id, headers = await harness.key("0.10")
    assert expected_hold() > 100_000  # the hold is more than 0.10
    r = await harness.client.post("/v1/videos", json=BODY, headers=headers)
    assert r.status_code == 402, r.text
    error = r.json()["error"]
    assert error["code"] == "insufficient_balance" and error["type"] == "billing_error"
    assert format_money(expected_hold()) in error["message"]
    assert "videogate keys topup" in error["message"]
    assert await harness.balance(key_id) == 100_000
    listed = (await harness.client.get("/v1/videos", headers=headers)).json()
    assert listed["data"] == []
    assert ark.requests_to("create") == []
    assert await harness.state.ctx.store.ledger.usage(key_id=key_id) == []


async def test_hold_then_settle_on_the_upstream_tokens(harness: Harness, ark: FakeArk) -> None:
    key_id, headers = await harness.key("1.00")
    hold = expected_hold()
    r = await harness.client.post("/v1/videos", json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["billing_detail"] == {
        "currency": "USD",
        "estimated_amount": format_money(hold),
        "state": "held",
    }
    assert await harness.balance(key_id) == 1_000_000 - hold

    done = await wait_for_status(harness.client, created["id"], headers, timeout=30)
    assert done["status"] == "completed", done
    tokens = int(done["usage"]["completion_tokens"])  # type: ignore[index]
    assert tokens == ark.task_object(next(iter(ark.tasks)))["usage"]["completion_tokens"]
    charged = tokens * 7  # micros: 7.0 per million tokens
    assert 0 < charged <= hold
    assert done["billing_detail"] == {
        "currency": "USD",
        "amount": format_money(charged),
        "state": "settled",
    }
    assert await harness.balance(key_id) == 1_000_000 - charged
    assert await harness.ledger(created["id"]) == [
        ("hold", hold),
        ("settle", charged),
        ("refund", hold - charged),
    ]
    [usage] = await harness.state.ctx.store.ledger.usage(key_id=key_id)
    assert (usage.tokens, usage.amount_micros, usage.succeeded) == (tokens, charged, 1)


async def test_a_failed_task_is_refunded_in_full(harness: Harness, ark: FakeArk) -> None:
    key_id, headers = await harness.key("1.00")
    ark.fail_next_tasks(1, "InternalServiceError", "the upstream gave up")
    r = await harness.client.post("/v1/videos", json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    task_id = r.json()["id"]
    assert await harness.balance(key_id) == 1_000_000 - expected_hold()
    done = await wait_for_status(harness.client, task_id, headers, timeout=30)
    assert done["status"] == "failed", done
    assert done["billing_detail"] == {
        "currency": "USD",
        "amount": "0.00",
        "refunded_amount": format_money(expected_hold()),
        "state": "refunded",
    }
    assert await harness.balance(key_id) == 1_000_000
    assert await harness.ledger(task_id) == [("hold", expected_hold()), ("refund", expected_hold())]


async def test_models_show_the_price_times_the_group_multiplier(harness: Harness) -> None:
    _, default = await harness.key(None)
    _, premium = await harness.key(None, group="premium")

    async def price(headers: dict[str, str]) -> dict[str, Any]:
        r = await harness.client.get("/v1/models", headers=headers)
        assert r.status_code == 200, r.text
        [model] = [m for m in r.json()["data"] if m["id"] == MODEL]
        assert model["providers"] == ["ark"]
        result: dict[str, Any] = model["price"]
        return result

    assert await price(default) == {"unit": "token", "per_million": "7.0", "currency": "USD"}
    assert await price(premium) == {"unit": "token", "per_million": "10.50", "currency": "USD"}


async def test_premium_keys_are_charged_the_multiplied_price(
    harness: Harness, ark: FakeArk
) -> None:
    key_id, headers = await harness.key("1.00", group="premium")
    r = await harness.client.post("/v1/videos", json=BODY, headers=headers)
    assert r.status_code == 200, r.text
    hold = expected_hold("10.5")  # 7.0 × 1.5
    assert r.json()["billing_detail"]["estimated_amount"] == format_money(hold)
    done = await wait_for_status(harness.client, r.json()["id"], headers, timeout=30)
    tokens = int(done["usage"]["completion_tokens"])  # type: ignore[index]
    charged = micros(tokens, "10.5")
    assert await harness.balance(key_id) == 1_000_000 - charged
