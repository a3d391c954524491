"""The ledger: holds, settlements, refunds and top-ups, each its own row.

A task's terminal transition and its money movement commit in ONE transaction (see
``TaskStore.transition``), and the ledger is unique per (task, kind): a refund or a
settlement can happen only once, however often a crashed worker retries the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.records import TaskRecord
from videogate.store.tables import ApiKey, LedgerEntry, Task


def hold_values(task: TaskRecord) -> dict[str, Any]:
    """The ledger row of a new task's hold (attribute name → value)."""
    return {
        "key_id": task.key_id,
        "task_id": task.id,
        "kind": "hold",
        "amount_micros": task.hold_micros or 0,
        "currency": task.currency or "USD",
        "created_at": task.created_at,
    }


async def hold(
    s: AsyncSession, *, key_id: str, task_id: str, micros: int, currency: str, now: float
) -> bool:
    """Take ``micros`` from the key's balance (unlimited keys have none) and record it.
    False, with nothing changed, when the balance is short."""
    taken = await s.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.balance_micros.is_(None)) | (ApiKey.balance_micros >= micros),
        )
        .values(balance_micros=ApiKey.balance_micros - micros)
    )
    if taken.rowcount == 0:  # type: ignore[attr-defined]
        return False
    s.add(
        LedgerEntry(
            key_id=key_id,
            task_id=task_id,
            kind="hold",
            amount_micros=micros,
            currency=currency,
            created_at=now,
        )
    )
    return True


def settlement(
    *,
    key_id: str,
    task_id: str,
    held: int,
    charged: int | None,
    currency: str,
    now: float,
) -> tuple[list[dict[str, Any]], int, dict[str, Any]]:
    """What settling a hold writes (see :func:`settle`): the ledger rows (attribute name →
    value), the refund that goes back to the key's balance, and the task's columns."""
    succeeded = charged is not None
    charged = max(0, min(charged or 0, held))
    refund = held - charged
    entry = {"key_id": key_id, "task_id": task_id, "currency": currency, "created_at": now}
    rows = [entry | {"kind": "settle", "amount_micros": charged}] if charged else []
    note = "rest of the hold" if succeeded else "task did not complete"
    rows.append(entry | {"kind": "refund", "amount_micros": refund, "note": note})
    task_values = {
        "charged_micros": charged,
        "refunded_micros": refund,
        "billing_state": "settled" if succeeded else "refunded",
    }
    return rows, refund, task_values


async def settle(
    s: AsyncSession,
    *,
    key_id: str,
    task_id: str,
    held: int,
    charged: int | None,
    currency: str,
    now: float,
) -> dict[str, Any]:
    """Charge ``charged`` (never more than was held) and give the rest of the hold back;
    ``charged=None`` means the task did not complete: everything goes back.
    Returns the task columns that describe the outcome."""
    rows, refund, task_values = settlement(
        key_id=key_id, task_id=task_id, held=held, charged=charged, currency=currency, now=now
    )
    for row in rows:
        s.add(LedgerEntry(**row))
    if refund:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.balance_micros.is_not(None))
            .values(balance_micros=ApiKey.balance_micros + refund)
        )
    return task_values


@dataclass(frozen=True)
class UsageRow:
    key_id: str
    model: str
    tasks: int
    succeeded: int
    seconds: float
    tokens: int
    amount_micros: int
    currency: str


@dataclass(frozen=True)
class UnbilledJob:
    """An upstream job that ran to its end for a task nobody was charged for (cancelled,
    failed or expired on our side): see worker/aftercare.py."""

    task_id: str
    route: str
    usage: dict[str, Any]
    price: dict[str, Any] | None
    currency: str


class LedgerStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def topup(
        self, key_id: str, micros: int, note: str | None = None, *, max_balance: int | None = None
    ) -> int | None:
        """Add to a key's balance; returns the new balance (None: unlimited). Raises
        OverflowError, changing nothing, if the balance would pass ``max_balance``."""
        # One conditional UPDATE first: on SQLite a read that turns into a write in the
        # same transaction fails at once ("database is locked") if anyone wrote since the
        # read, whatever the busy timeout; a write first takes the lock (and waits for it).
        balance = func.coalesce(ApiKey.balance_micros, 0)
        stmt = update(ApiKey).where(ApiKey.id == key_id)
        if max_balance is not None:
            stmt = stmt.where(balance + micros <= max_balance)
        stmt = stmt.values(balance_micros=balance + micros).returning(ApiKey.balance_micros)
        async with self._sessions.begin() as s:
            new_balance = (await s.execute(stmt)).scalar_one_or_none()
            if new_balance is None:
                if await s.get(ApiKey, key_id) is None:
                    raise LookupError(key_id)
                raise OverflowError("the balance would pass its maximum")
            s.add(
                LedgerEntry(
                    key_id=key_id,
                    task_id=None,
                    kind="topup",
                    amount_micros=micros,
                    currency="USD",
                    created_at=time.time(),
                    note=note,
                )
            )
            return int(new_balance)

    async def for_task(self, task_id: str) -> list[LedgerEntry]:
        stmt = select(LedgerEntry).where(LedgerEntry.task_id == task_id).order_by(LedgerEntry.id)
        async with self._sessions() as s:
            return list((await s.execute(stmt)).scalars())

    async def unbilled_jobs(self, *, since: float | None = None) -> list[UnbilledJob]:
        """Upstream work recorded on tasks that ended unbilled (``upstream_result.unbilled``)."""
        stmt = select(Task.id, Task.route, Task.upstream_result, Task.price, Task.currency).where(
            Task.status != "succeeded", Task.upstream_result.is_not(None)
        )
        if since is not None:
            stmt = stmt.where(Task.created_at >= since)
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        jobs = []
        for task_id, route, result, price, currency in rows:
            usage = result.get("unbilled") if isinstance(result, dict) else None
            if isinstance(usage, dict):
                route_name = str(usage.get("route") or route or "")
                jobs.append(UnbilledJob(task_id, route_name, usage, price, currency or "USD"))
        return jobs

    async def usage(
        self, *, key_id: str | None = None, since: float | None = None
    ) -> list[UsageRow]:
        """Tasks, seconds, tokens and amount charged, per key and model."""
        stmt = (
            select(
                Task.key_id,
                Task.model,
                func.count(),
                func.sum((Task.status == "succeeded").cast(Integer)),
                func.coalesce(func.sum(Task.seconds), 0.0),
                func.coalesce(func.sum(Task.completion_tokens), 0),
                func.coalesce(func.sum(Task.charged_micros), 0),
                func.max(Task.currency),
            )
            .group_by(Task.key_id, Task.model)
            .order_by(Task.key_id, Task.model)
        )
        if key_id:
            stmt = stmt.where(Task.key_id == key_id)
        if since is not None:
            stmt = stmt.where(Task.created_at >= since)
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [
            UsageRow(
                str(k),
                str(m),
                int(n),
                int(ok or 0),
                float(sec or 0),
                int(tok or 0),
                int(amt or 0),
                str(cur or "USD"),
            )
            for k, m, n, ok, sec, tok, amt, cur in rows
        ]
