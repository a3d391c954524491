"""One chaos run end to end: start everything, load and break it, let it drain, audit.

``run_chaos(plan, root)`` returns an :class:`Outcome` with the violations (empty when
every guarantee held) and the table of faults injected and survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from chaos_audit import Audit, audit
from chaos_cluster import TERMINAL, Cluster, Database, DataDisk, PostgresDb, SqliteDb
from chaos_load import Clients
from chaos_plan import Plan
from chaos_upstream import API_KEY_ENV, Upstreams

# What each key starts with; the last key can pay for half of its tasks only, so some of
# its creates are refused (402) mid-run.
BALANCE_MICROS = 1_000_000_000
HOLD_MICROS = 227_326  # 480p, 4 s of the fast model at list price (what one task holds)


@dataclass
class Injected:
    """What the injector did, per fault name."""

    count: Counter[str] = field(default_factory=Counter)
    detail: dict[str, list[str]] = field(default_factory=dict)
    in_flight: Counter[str] = field(default_factory=Counter)

    def note(self, fault: str, detail: str = "") -> None:
        self.count[fault] += 1
        if detail:
            self.detail.setdefault(fault, []).append(detail)


@dataclass
class Outcome:
    plan: Plan
    audit: Audit
    injected: Injected
    table: str
    summary: str
    unexpected_exits: list[str]
    unexercised: list[str]  # faults the plan had on that never happened
    seconds: float

    @property
    def violations(self) -> list[str]:
        return [v.text for v in self.audit.violations]


class Injector:
    def __init__(
        self, plan: Plan, cluster: Cluster, db: Database, disk: DataDisk, clients: Clients
    ) -> None:
        self.plan = plan
        self.cluster = cluster
        self.db = db
        self.disk = disk
        self.clients = clients
        self.rng = random.Random(plan.seed)
        self.injected = Injected()

    def _in_flight(self) -> int:
        return sum(1 for t in self.clients.tasks if t.task_id and t.status not in TERMINAL)

    async def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        jobs = [asyncio.create_task(self._kills(end))]
        if self.plan.on("db_outage"):
            for i in range(self.plan.db_outages):
                at = seconds * (i + 0.5) / self.plan.db_outages
                jobs.append(asyncio.create_task(self._later(at, self._db_outage())))
        if self.plan.on("disk_full"):
            if not self.disk.mounted:
                self.injected.detail["disk_full"] = [f"not injected: {self.disk.why_not}"]
            else:
                for i in range(self.plan.disk_fills):
                    at = seconds * (i + 0.8) / (self.plan.disk_fills + 0.5)
                    jobs.append(asyncio.create_task(self._later(at, self._disk_full())))
        await asyncio.gather(*jobs)

    async def _later(self, delay: float, job: object) -> None:
        await asyncio.sleep(delay)
        await job  # type: ignore[misc]

    async def _kills(self, end: float) -> None:
        targets = [n for n in ("api", "serve", "worker") if self.plan.on(f"kill_{n}")]
        if not targets:
            return
        order: list[str] = []
        while True:
            await asyncio.sleep(self.plan.kill_every * self.rng.uniform(0.5, 1.5))
            if time.monotonic() >= end:
                return
            if not order:  # each process in turn, in a shuffled order: all get killed
                order = self.rng.sample(targets, len(targets))
            name = order.pop()
            if not self.cluster.procs[name].alive():
                continue
            self.injected.in_flight[f"kill_{name}"] += self._in_flight()
            self.cluster.kill(name)
            self.injected.note(f"kill_{name}")

    async def _db_outage(self) -> None:
        self.injected.in_flight["db_outage"] += self._in_flight()
        await self.db.outage(self.plan.db_outage_seconds)
        self.injected.note("db_outage", f"{self.plan.db_outage_seconds:g} s")

    async def _disk_full(self) -> None:
        self.injected.in_flight["disk_full"] += self._in_flight()
        written = await asyncio.to_thread(self.disk.fill, self.plan.disk_full_seconds)
        seconds = self.plan.disk_full_seconds
        self.injected.note("disk_full", f"{written >> 20} MiB filler, {seconds:g} s")


async def _wait_finished(db: Database, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the database may still be coming back
            if all(r["status"] in TERMINAL for r in await db.rows("tasks")):
                return
        await asyncio.sleep(1.0)


async def _create_keys(
    cluster: Cluster, count: int, tasks: int
) -> tuple[list[str], list[str], dict[str, int]]:
    secrets, ids, balances = [], [], {}
    for i in range(count):
        micros = BALANCE_MICROS if i < count - 1 else HOLD_MICROS * (tasks // count // 2) + 999
        balance = str(Decimal(micros) / 1_000_000)
        done = await asyncio.to_thread(
            cluster.cli, "keys", "create", "--json", "--name", f"chaos-{i}", "--balance", balance
        )
        if done.returncode != 0:
            raise RuntimeError(f"keys create failed: {done.stdout}{done.stderr}")
        created = json.loads(done.stdout)
        secrets.append(created["key"])
        ids.append(created["id"])
        balances[created["id"]] = micros
    return secrets, ids, balances


async def run_chaos(plan: Plan, root: Path) -> Outcome:
    started = time.monotonic()
    disk = DataDisk(root / "data")
    disk.mount()
    db: Database
    if plan.backend == "postgresql":
        db = PostgresDb()
        await db.create()
    else:
        db = SqliteDb(disk.path)
    cluster: Cluster | None = None
    try:
        upstreams = Upstreams(plan)
        with upstreams.running():
            extra = {
                "VIDEOGATE_CONFIG": str(upstreams.config(root / "routes.toml")),
                API_KEY_ENV: upstreams.api_key,
            }
            cluster = Cluster(root, db, disk.path, extra)
            await cluster.start()
            secrets, key_ids, balances = await _create_keys(cluster, plan.keys, plan.tasks)
            share = plan.cancel_share if plan.on("client_cancel") else 0.0
            clients = Clients(cluster.api_urls, secrets, seed=plan.seed, cancel_share=share)
            injector = Injector(plan, cluster, db, disk, clients)
            stop = asyncio.Event()
            supervisor = asyncio.create_task(cluster.supervise(stop))
            deadline = time.monotonic() + plan.load_seconds + plan.drain_seconds
            upstreams.start_faults()
            load = asyncio.create_task(clients.run(plan.tasks, plan.load_seconds * 0.8, deadline))
            try:
                await injector.run(plan.load_seconds)
                upstreams.stop_faults()
                await cluster.wait_healthy()
                await load
                await _wait_finished(db, deadline)
            finally:
                stop.set()
                await supervisor
                cluster.close()
                await clients.close()
            exits = [f"{p.name}: {e}" for p in cluster.procs.values() for e in p.unexpected_exits]
            result = audit(
                plan,
                [f"{p.name}: {e}" for p in cluster.procs.values() for e in p.runtime_exits],
                await db.rows("tasks"),
                await db.rows("ledger"),
                await db.rows("api_keys"),
                await db.rows("attempts"),
                upstreams.hits(),
                upstreams.jobs(),
                clients.tasks,
                key_ids,
                balances,
            )
            from chaos_report import summary, table

            faults, unexercised = table(
                plan, result, injector.injected, upstreams, cluster, clients.tasks
            )
            return Outcome(
                plan,
                result,
                injector.injected,
                faults,
                summary(plan, result, clients.tasks, upstreams, time.monotonic() - started),
                exits,
                unexercised,
                time.monotonic() - started,
            )
    finally:
        if cluster is not None:
            cluster.close()
        disk.unmount()
        await db.close()
