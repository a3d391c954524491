"""The checks after a chaos run, from three independent records: the database, what the
fake upstreams created, and what the clients downloaded.

1. every task is finished (the run waits for tasks still progressing);
2. no task has more than one upstream job, and every job belongs to a task;
3. no task carries another task's (or key's) job or result;
4. every downloaded video is byte for byte the one its own job produced;
5. the ledger balances to the micro: per task (hold = charge + refund, at most once each,
   matching the task's columns) and per key (initial + top-ups − holds + refunds = balance).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from chaos_cluster import TERMINAL
from chaos_load import ClientTask
from chaos_plan import Plan
from chaos_upstream import FaultHit, Job, nonce_of
from fakes import read_mp4_tag


@dataclass(frozen=True)
class Violation:
    nonce: str | None  # the task it concerns, when it concerns one
    text: str


@dataclass
class Audit:
    plan: Plan
    violations: list[Violation] = field(default_factory=list)
    # Failures of checks the plan relaxed: reported, not enforced.
    relaxed: list[Violation] = field(default_factory=list)
    failed_checks: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    jobs: int = 0
    orphaned_paid_jobs: int = 0  # upstream succeeded, task did not: the operator paid
    downloads_checked: int = 0
    ledger_rows: int = 0
    keys_checked: int = 0
    outcome_by_nonce: dict[str, str] = field(default_factory=dict)

    def fail(self, nonce: str | None, text: str, check: str | None = None) -> None:
        """Record a violation; of ``check`` (a name in CHECKS) when it is a relaxable one."""
        if check is None:
            self.violations.append(Violation(nonce, text))
            return
        self.failed_checks[check] += 1
        target = self.violations if self.plan.enforced(check) else self.relaxed
        target.append(Violation(nonce, f"[{check}] {text}"))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def audit(
    plan: Plan,
    runtime_exits: list[str],
    tasks: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    keys: list[dict[str, Any]],
    attempts: list[dict[str, Any]],
    hits: list[FaultHit],
    jobs: list[Job],
    clients: list[ClientTask],
    key_ids: list[str],
    initial_balances: dict[str, int],
) -> Audit:
    out = Audit(plan)
    for exit_ in runtime_exits:
        out.fail(None, f"a process exited on its own: {exit_[:300]}", "no_runtime_exit")
    by_nonce: dict[str, dict[str, Any]] = {}
    for row in tasks:
        nonce = nonce_of(str(_json(row["request"]).get("prompt", "")))
        if nonce is None:
            out.fail(None, f"task {row['id']} has no chaos nonce in its prompt")
            continue
        if nonce in by_nonce:
            out.fail(nonce, f"two tasks ({by_nonce[nonce]['id']}, {row['id']}) for one create")
        by_nonce[nonce] = row
        out.statuses[row["status"]] += 1
        out.outcome_by_nonce[nonce] = row["status"]
        if row["status"] not in TERMINAL:
            out.fail(
                nonce,
                f"task {row['id']} is still {row['status']} after the drain "
                f"(route {row['route']}, upstream {row['upstream_id']}, "
                f"lease {row['lease_owner']}, next run {row['next_run_at']})",
            )
        elif row["status"] != "succeeded":
            out.failures[f"{row['status']}: {row['error_code']}"] += 1
    _check_clients(out, clients, by_nonce, key_ids)
    _check_jobs(out, jobs, by_nonce, clients, _histories(tasks, attempts, hits))
    _check_ledger(out, tasks, ledger, keys, initial_balances)
    return out


def _check_clients(
    out: Audit,
    clients: list[ClientTask],
    by_nonce: dict[str, dict[str, Any]],
    key_ids: list[str],
) -> None:
    for ct in clients:
        for error, n in ct.errors.items():
            if error.endswith(" 500"):
                out.fail(ct.nonce, f"the API answered {n}× {error}", "no_500")
        row = by_nonce.get(ct.nonce)
        if ct.task_id is not None and row is None:
            out.fail(ct.nonce, f"the API created {ct.task_id} but the database has no such task")
            continue
        if row is None:
            continue
        if ct.task_id is not None and row["id"] != ct.task_id:
            out.fail(ct.nonce, f"the client got {ct.task_id}, the database has {row['id']}")
        if row["key_id"] != key_ids[ct.key_index]:
            out.fail(ct.nonce, f"task {row['id']} belongs to {row['key_id']}, not its creator")
        if ct.gave_up:
            out.fail(ct.nonce, f"the client could not {ct.gave_up} task {row['id']} in time")
        elif ct.status == "completed" and row["status"] != "succeeded":
            out.fail(ct.nonce, f"the API showed {row['id']} completed; it is {row['status']}")


def _histories(
    tasks: list[dict[str, Any]], attempts: list[dict[str, Any]], hits: list[FaultHit]
) -> dict[str, str]:
    """Per nonce: the task's attempts and the upstream faults it met, to explain a
    violation without the (dropped) database."""
    nonce_by_task = {t["id"]: nonce_of(str(_json(t["request"]).get("prompt", ""))) for t in tasks}
    lines: dict[str, list[str]] = defaultdict(list)
    for a in sorted(attempts, key=lambda a: float(a["created_at"])):
        nonce = nonce_by_task.get(a["task_id"])
        if nonce:
            lines[nonce].append(
                f"attempt {a['route']} {a['state']} {a['upstream_id']} {a['error_code']}"
            )
    for hit in hits:
        if hit.nonce:
            lines[hit.nonce].append(f"fault {hit.route} {hit.endpoint} {hit.kind}")
    return {n: "; ".join(v) for n, v in lines.items()}


def _check_jobs(
    out: Audit,
    jobs: list[Job],
    by_nonce: dict[str, dict[str, Any]],
    clients: list[ClientTask],
    history: dict[str, str],
) -> None:
    out.jobs = len(jobs)
    cancelled = {c.nonce for c in clients if c.cancel_sent}
    per_task: dict[str | None, list[Job]] = defaultdict(list)
    for job in jobs:
        per_task[job.nonce].append(job)
    by_id = {(j.route, j.id): j for j in jobs}
    for nonce, mine in per_task.items():
        if nonce is None or nonce not in by_nonce:
            out.fail(nonce, f"upstream job(s) {[j.id for j in mine]} belong to no task")
            continue
        if len(mine) > 1:
            paid = ", ".join(f"{j.route}/{j.id} ({j.status})" for j in mine)
            out.fail(
                nonce,
                f"task {by_nonce[nonce]['id']} has {len(mine)} upstream jobs: {paid} "
                f"[{history.get(nonce, '')}]",
            )
        row = by_nonce[nonce]
        if row["status"] != "succeeded" and any(j.status == "succeeded" for j in mine):
            out.orphaned_paid_jobs += 1
            if nonce not in cancelled:
                out.fail(
                    nonce,
                    f"task {row['id']} {row['status']} ({row['error_code']}: "
                    f"{str(row['error_message'])[:160]}) while its upstream job succeeded "
                    f"[{history.get(nonce, '')}]",
                    "no_lost_job",
                )
    for nonce, row in by_nonce.items():
        if row["upstream_id"] is None:
            if row["status"] == "succeeded":
                out.fail(nonce, f"task {row['id']} succeeded without an upstream job")
            continue
        adopted = by_id.get((row["route"], row["upstream_id"]))
        if adopted is None:
            out.fail(nonce, f"task {row['id']} follows {row['upstream_id']}, unknown upstream")
        elif adopted.nonce != nonce:
            owner = by_nonce.get(adopted.nonce or "", {}).get("id")
            out.fail(
                nonce,
                f"task {row['id']} adopted {adopted.route}/{adopted.id}, which task "
                f"{owner} created (crossed result) [{history.get(nonce, '')}]",
            )
    jobs_by_id = {j.id: j for j in jobs}
    for ct in clients:
        if ct.video is None:
            done = by_nonce.get(ct.nonce)
            if done is not None and done["status"] == "succeeded" and not ct.gave_up:
                out.fail(ct.nonce, f"task {done['id']} succeeded but its video was not downloaded")
            continue
        out.downloads_checked += 1
        tag = read_mp4_tag(ct.video)
        source = jobs_by_id.get(tag or "")
        if source is None:
            out.fail(ct.nonce, f"task {ct.task_id}'s video comes from no known job ({tag!r})")
        elif source.nonce != ct.nonce:
            out.fail(ct.nonce, f"task {ct.task_id} delivered the video of another task's job")
        elif ct.video != source.expected_video:
            out.fail(ct.nonce, f"task {ct.task_id}'s video differs from what its job produced")


def _check_ledger(
    out: Audit,
    tasks: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    keys: list[dict[str, Any]],
    initial_balances: dict[str, int],
) -> None:
    out.ledger_rows = len(ledger)
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in ledger:
        if e["task_id"] is not None:
            entries[e["task_id"]].append(e)
    tasks_by_id = {t["id"]: t for t in tasks}
    for task_id in entries.keys() - tasks_by_id.keys():
        out.fail(None, f"ledger rows for unknown task {task_id}")
    for t in tasks:
        nonce = nonce_of(str(_json(t["request"]).get("prompt", "")))
        kinds = Counter(e["kind"] for e in entries[t["id"]])
        amounts = {e["kind"]: int(e["amount_micros"]) for e in entries[t["id"]]}
        if any(e["key_id"] != t["key_id"] for e in entries[t["id"]]):
            out.fail(nonce, f"task {t['id']} has ledger rows on another key")
        if kinds["hold"] != 1 or amounts.get("hold") != t["hold_micros"]:
            out.fail(nonce, f"task {t['id']}: hold rows {dict(kinds)} vs {t['hold_micros']}")
            continue
        if t["status"] not in TERMINAL:
            continue
        hold, charge, refund = amounts["hold"], amounts.get("settle", 0), amounts.get("refund")
        if kinds["refund"] != 1 or kinds["settle"] > 1 or refund is None:
            out.fail(nonce, f"task {t['id']} ({t['status']}) has ledger rows {dict(kinds)}")
            continue
        if hold != charge + refund:
            out.fail(nonce, f"task {t['id']}: hold {hold} != charge {charge} + refund {refund}")
        if (t["charged_micros"] or 0) != charge or (t["refunded_micros"] or 0) != refund:
            out.fail(
                nonce,
                f"task {t['id']}: columns charge {t['charged_micros']} refund "
                f"{t['refunded_micros']} vs ledger {charge} / {refund}",
            )
        want_state = "settled" if t["status"] == "succeeded" else "refunded"
        if t["billing_state"] != want_state or (want_state == "refunded" and charge):
            out.fail(nonce, f"task {t['id']} ({t['status']}) is {t['billing_state']}, {charge}")
    for key in keys:
        if key["id"] not in initial_balances:
            continue
        out.keys_checked += 1
        moves = {"topup": 1, "hold": -1, "refund": 1, "settle": 0}
        expected = initial_balances[key["id"]] + sum(
            moves[e["kind"]] * int(e["amount_micros"]) for e in ledger if e["key_id"] == key["id"]
        )
        if key["balance_micros"] != expected:
            out.fail(
                None,
                f"key {key['id']}: balance {key['balance_micros']} but the ledger says {expected}",
            )
        if key["balance_micros"] is not None and key["balance_micros"] < 0:
            out.fail(None, f"key {key['id']} has a negative balance {key['balance_micros']}")
