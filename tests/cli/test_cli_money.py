"""``videogate keys create/topup/list`` and ``videogate usage``, through the real CLI."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from videogate.cli.main import app
from videogate.ids import new_id
from videogate.settings import Settings
from videogate.store import Store
from videogate.store.records import TaskChange, new_task

MODEL = "doubao-seedance-2-0-260128"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("VIDEOGATE_CONFIG", "VIDEOGATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIDEOGATE_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return run


def database_url(tmp_path: Path) -> str:
    return Settings(data_dir=tmp_path / "var").effective_database_url


def add_task(
    tmp_path: Path,
    key_id: str,
    *,
    hold: int,
    charged: int | None,
    tokens: int = 0,
    seconds: float = 5.0,
    model: str = MODEL,
    created_at: float | None = None,
) -> str:
    """A task created with a hold and finished through the store, as the worker does:
    succeeded with ``charged`` micros, or failed (``charged=None``)."""

    async def run() -> str:
        store = Store.open(database_url(tmp_path))
        try:
            now = created_at or time.time()
            task = new_task(
                id=new_id("video"),
                key_id=key_id,
                model=model,
                request={"model": model, "prompt": "x"},
                created_at=now,
                deadline_at=now + 3600,
                next_run_at=now,
                hold_micros=hold,
            )
            assert await store.tasks.insert(replace(task, lease_owner="test", lease_until=now + 60))
            if charged is None:
                change = TaskChange(status="failed", error_code="boom", error_message="boom")
            else:
                change = TaskChange(status="succeeded", seconds=seconds, completion_tokens=tokens)
            change = replace(change, updated_at=now, completed_at=now)
            assert await store.tasks.transition(
                task.id, "test", "queued", change, charged_micros=charged
            )
            return task.id
        finally:
            await store.close()

    return asyncio.run(run())


def balance_of(tmp_path: Path, key_id: str) -> int | None:
    async def run() -> int | None:
        store = Store.open(database_url(tmp_path))
        try:
            key = await store.keys.get(key_id)
            assert key is not None
            return key.balance_micros
        finally:
            await store.close()

    return asyncio.run(run())


def test_create_with_balance_and_limits_then_topup(cli: Any, tmp_path: Path) -> None:
    created = json.loads(
        cli(
            "keys", "create", "--name", "acme", "--balance", "1", "--rpm", "60",
            "--max-unfinished", "5", "--json",
        ).output
    )  # fmt: skip
    key_id = created["id"]
    assert created["balance"] == "1.00"
    assert (created["requests_per_minute"], created["max_unfinished_tasks"]) == (60, 5)

    async def limits() -> tuple[int | None, int | None]:
        store = Store.open(database_url(tmp_path))
        try:
            key = await store.keys.get(key_id)
            assert key is not None
            return key.requests_per_minute, key.max_unfinished_tasks
        finally:
            await store.close()

    assert asyncio.run(limits()) == (60, 5)

    out = cli("keys", "topup", key_id, "2.5").output
    assert "balance 3.50" in out
    assert balance_of(tmp_path, key_id) == 3_500_000
    topped = json.loads(cli("keys", "topup", key_id, "0.25", "--json").output)
    assert topped["balance"] == "3.75" and topped["balance_micros"] == 3_750_000
    listed = json.loads(cli("keys", "list", "--json").output)
    assert [k["balance"] for k in listed if k["id"] == key_id] == ["3.75"]


def test_topup_errors(cli: Any) -> None:
    key_id = json.loads(cli("keys", "create", "--balance", "1", "--json").output)["id"]
    missing = cli("keys", "topup", "key_doesnotexist", "5", ok=False)
    assert missing.exit_code == 1 and "no key 'key_doesnotexist'" in missing.output
    for amount in ("0", "-3", "lots"):
        bad = cli("keys", "topup", key_id, "--", amount, ok=False)
        assert bad.exit_code == 1 and "amount" in bad.output, bad.output
    bad_rpm = cli("keys", "create", "--rpm", "0", ok=False)
    assert bad_rpm.exit_code == 2  # typer's own range check


def test_topup_of_an_unlimited_key_makes_it_prepaid(cli: Any, tmp_path: Path) -> None:
    key_id = json.loads(cli("keys", "create", "--json").output)["id"]
    assert balance_of(tmp_path, key_id) is None
    out = cli("keys", "topup", key_id, "4").output
    assert "balance 4.00" in out and "now prepaid" in out
    assert balance_of(tmp_path, key_id) == 4_000_000


def test_usage_per_key_and_model(cli: Any, tmp_path: Path) -> None:
    one = json.loads(cli("keys", "create", "--balance", "10", "--json").output)["id"]
    two = json.loads(cli("keys", "create", "--json").output)["id"]
    add_task(tmp_path, one, hold=500_000, charged=275_000, tokens=39_285, seconds=4.0)
    add_task(tmp_path, one, hold=500_000, charged=125_000, tokens=17_857, seconds=2.0)
    add_task(tmp_path, one, hold=500_000, charged=None)  # failed: refunded
    add_task(tmp_path, two, hold=0, charged=0, model="sandbox", seconds=5.0)
    old = time.mktime((2020, 6, 1, 12, 0, 0, 0, 0, -1))
    add_task(tmp_path, two, hold=0, charged=0, model="sandbox", seconds=5.0, created_at=old)
    # every hold was settled or refunded: 10 − 0.275 − 0.125
    assert balance_of(tmp_path, one) == 9_600_000

    rows = json.loads(cli("usage", "--json").output)
    by = {(r["key_id"], r["model"]): r for r in rows}
    assert set(by) == {(one, MODEL), (two, "sandbox")}
    mine = by[(one, MODEL)]
    assert (mine["tasks"], mine["succeeded"], mine["tokens"]) == (3, 2, 57_142)
    assert mine["seconds"] == 6.0
    assert (mine["amount"], mine["amount_micros"], mine["currency"]) == ("0.40", 400_000, "USD")
    assert (by[(two, "sandbox")]["tasks"], by[(two, "sandbox")]["amount"]) == (2, "0.00")

    only_two = json.loads(cli("usage", "--key", two, "--json").output)
    assert [(r["key_id"], r["tasks"]) for r in only_two] == [(two, 2)]
    recent = json.loads(cli("usage", "--key", two, "--since", "2024-01-01", "--json").output)
    assert [r["tasks"] for r in recent] == [1]
    assert json.loads(cli("usage", "--since", "2999-01-01", "--json").output) == []

    table = cli("usage").output
    assert one in table and MODEL in table and "0.40 USD" in table
    assert "total charged: 0.40 USD" in table
    assert "no tasks since 2999-01-01" in cli("usage", "--since", "2999-01-01").output

    bad = cli("usage", "--since", "yesterday", ok=False)
    assert bad.exit_code == 1 and "YYYY-MM-DD" in bad.output


def test_one_amount_reads_the_same_everywhere(cli: Any, tmp_path: Path) -> None:
    """725,000 micros is "0.725" in the task, in `usage` and in `keys list` (it once read
    0.73, 0.725 and 0.72)."""
    from videogate.views.relay import billing_detail

    key_id = json.loads(cli("keys", "create", "--balance", "0.725", "--json").output)["id"]
    listed = json.loads(cli("keys", "list", "--json").output)
    assert [k["balance"] for k in listed if k["id"] == key_id] == ["0.725"]
    assert "0.725" in cli("keys", "list").output

    task_id = add_task(tmp_path, key_id, hold=725_000, charged=725_000)
    [row] = [r for r in json.loads(cli("usage", "--json").output) if r["key_id"] == key_id]
    assert row["amount"] == "0.725"

    async def task_view() -> dict[str, Any]:
        store = Store.open(database_url(tmp_path))
        try:
            task = await store.tasks.get(task_id)
            assert task is not None
            return billing_detail(task)
        finally:
            await store.close()

    assert asyncio.run(task_view())["amount"] == "0.725"


def test_format_money_is_exact_with_two_decimals_at_least() -> None:
    from videogate.money import format_money

    assert [format_money(m) for m in (0, 1_500_000, 725_000, 1, None, 12_345_678)] == [
        "0.00", "1.50", "0.725", "0.000001", "0.00", "12.345678",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "kwargs", "expected"),
    [
        ("2.5", {}, 2_500_000),
        (0.000001, {}, 1),
        ("0", {"allow_zero": True}, 0),
        ("1.0000009", {}, 1_000_000),  # fractions of a micro are dropped
    ],
)
def test_parse_amount(typed: Any, kwargs: dict[str, Any], expected: int) -> None:
    from videogate.money import parse_amount

    assert parse_amount(typed, **kwargs) == expected


@pytest.mark.parametrize(
    ("typed", "kwargs", "message"),
    [
        ("abc", {}, "amount 'abc' is not a number"),
        ("nan", {}, "is not a finite number"),
        ("1e309", {"what": "balance"}, "balance '1e309' is too large"),
        ("0", {}, "must be a positive amount"),
        ("-1", {"allow_zero": True}, "must be a non-negative amount"),
        ("-0.0000001", {"allow_zero": True}, "must be a non-negative amount"),
    ],
)
def test_parse_amount_refuses_clearly(typed: str, kwargs: dict[str, Any], message: str) -> None:
    from videogate.errors import InvalidRequest
    from videogate.money import parse_amount

    with pytest.raises(InvalidRequest, match=message):
        parse_amount(typed, **kwargs)
