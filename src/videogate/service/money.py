"""Top-ups and usage reports: shared by ``videogate keys topup``/``videogate usage`` and
the admin API, so both say the same thing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from videogate.billing import charge
from videogate.errors import InvalidRequest, NotFound
from videogate.fields import MAX_AMOUNT, MAX_AMOUNT_MICROS, has_nul
from videogate.money import format_money, parse_amount
from videogate.store import Store
from videogate.store.ledger import UsageRow


def parse_since(value: str | None) -> float | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time → a Unix time; empty → None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(
            f"since {value[:50]!r} is not a date: use YYYY-MM-DD (UTC) or an ISO 8601 time",
            param="since",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass(frozen=True)
class TopUp:
    key_id: str
    added_micros: int
    balance_micros: int
    was_unlimited: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "added": format_money(self.added_micros),
            "balance": format_money(self.balance_micros),
            "balance_micros": self.balance_micros,
            "was_unlimited": self.was_unlimited,
        }


async def topup(
    store: Store, key_id: str, amount: Decimal | str | float | int, note: str | None = None
) -> TopUp:
    """Add ``amount`` to a key's balance (a ledger ``topup`` row). A key with an unlimited
    balance becomes a prepaid key holding just ``amount``."""
    micros = parse_amount(amount)
    if note is not None and has_nul(note):
        raise InvalidRequest("the note must not contain NUL (\\u0000) characters", param="note")
    key = await store.keys.get(key_id)
    if key is None:
        raise NotFound(f"no key '{key_id[:100]}'; see 'videogate keys list'", param="id")
    try:
        balance = await store.ledger.topup(key_id, micros, note, max_balance=MAX_AMOUNT_MICROS)
    except LookupError:
        raise NotFound(f"no key '{key_id[:100]}'", param="id") from None
    except OverflowError:
        raise InvalidRequest(
            f"this top-up would take the balance over {MAX_AMOUNT:,}; "
            f"the balance is {format_money(key.balance_micros)}",
            param="amount",
        ) from None
    return TopUp(key_id, micros, balance or 0, key.balance_micros is None)


def usage_json(row: UsageRow) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "model": row.model,
        "tasks": row.tasks,
        "succeeded": row.succeeded,
        "seconds": round(row.seconds, 3),
        "tokens": row.tokens,
        "amount": format_money(row.amount_micros),
        "amount_micros": row.amount_micros,
        "currency": row.currency,
    }


async def usage(
    store: Store, *, key_id: str | None = None, since: str | None = None
) -> list[dict[str, Any]]:
    """Tasks, successes, seconds, tokens and amount charged per key and model."""
    rows = await store.ledger.usage(key_id=key_id or None, since=parse_since(since))
    return [usage_json(r) for r in rows]


async def unbilled_upstream(store: Store, *, since: str | None = None) -> list[dict[str, Any]]:
    """Per route: upstream jobs that ran to their end for tasks nobody paid for (cancelled
    while the upstream could not stop, failed or expired on our side), with their tokens,
    seconds and what they would have cost at the task's price."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for job in await store.ledger.unbilled_jobs(since=parse_since(since)):
        usage = job.usage
        tokens = usage.get("completion_tokens")
        seconds = usage.get("seconds")
        amount = charge(job.price, tokens, usage.get("width"), usage.get("height"), seconds)
        row = totals.setdefault(
            (job.route, job.currency),
            {"route": job.route, "jobs": 0, "seconds": 0.0, "tokens": 0, "amount_micros": 0},
        )
        row["jobs"] += 1
        row["seconds"] += float(seconds or 0)
        row["tokens"] += int(tokens or 0)
        row["amount_micros"] += amount
    out = []
    for (_, currency), row in sorted(totals.items()):
        row["seconds"] = round(row["seconds"], 3)
        row["amount"] = format_money(row["amount_micros"])
        row["currency"] = currency
        out.append(row)
    return out
