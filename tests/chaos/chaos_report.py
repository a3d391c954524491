"""The table of faults injected and survived, and a one-paragraph summary of a run."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from chaos_audit import Audit
from chaos_cluster import Cluster
from chaos_load import ClientTask
from chaos_plan import CHECKS, FAULTS, Plan
from chaos_upstream import Upstreams

if TYPE_CHECKING:
    from chaos_run import Injected


def _outcomes(nonces: set[str], result: Audit) -> str:
    states = Counter(result.outcome_by_nonce.get(n, "not created") for n in nonces)
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"


def table(
    plan: Plan,
    result: Audit,
    injected: Injected,
    upstreams: Upstreams,
    cluster: Cluster,
    clients: list[ClientTask],
) -> tuple[str, list[str]]:
    """Markdown: one row per fault, what was injected, which tasks it touched, how they
    ended, and whether every check held for them; and the faults that never happened."""
    unexercised: list[str] = []
    bad = {v.nonce for v in result.violations}
    global_bad = None in bad or bool(result.violations and not any(bad))
    hits = upstreams.hits()
    touched: dict[str, set[str]] = defaultdict(set)
    count: Counter[str] = Counter()
    for hit in hits:
        count[hit.kind] += 1
        if hit.nonce:
            touched[hit.kind].add(hit.nonce)
    cancels = {c.nonce for c in clients if c.cancel_sent}
    rows = [
        f"| fault | injected | tasks touched: how they ended | survived ({plan.backend}) |",
        "| --- | --- | --- | --- |",
    ]
    for name in FAULTS:
        if not plan.on(name):
            rows.append(f"| {name} | off: {plan.excluded[name]} | - | - |")
            continue
        if name in count:
            n, nonces = str(count[name]), touched[name]
            outcome = f"{len(nonces)}: {_outcomes(nonces, result)}"
            ok = not (nonces & bad) and not global_bad
        elif name == "callback_drop":
            n, outcome = str(upstreams.callbacks_dropped()), "every task still finished"
            ok = not result.violations
        elif name == "client_cancel":
            n, outcome = str(len(cancels)), f"{len(cancels)}: {_outcomes(cancels, result)}"
            ok = not (cancels & bad) and not global_bad
        elif name.startswith("kill_") or name in ("db_outage", "disk_full"):
            n = str(injected.count[name])
            extra = "; ".join(injected.detail.get(name, [])[:2])
            n = f"{n} ({extra})" if extra else n
            outcome = f"{injected.in_flight[name]} tasks in flight at the time(s)"
            ok = not result.violations
        else:
            n, outcome, ok = "0", "-", True
        if n.startswith("0"):
            unexercised.append(name)
            rows.append(f"| {name} | {n} | - | not exercised |")
            continue
        rows.append(f"| {name} | {n} | {outcome} | {'yes' if ok else 'NO'} |")
    restarts = {p.name: p.starts - 1 for p in cluster.procs.values()}
    rows.append(
        f"| (restarts) | {', '.join(f'{k} {v}' for k, v in restarts.items())} | "
        f"unexpected exits: {sum(len(p.unexpected_exits) for p in cluster.procs.values())} | - |"
    )
    rows += ["", "| check | failures | enforced |", "| --- | --- | --- |"]
    for name in CHECKS:
        enforced = "yes" if plan.enforced(name) else f"no: {plan.relaxed[name]}"
        rows.append(f"| {name} | {result.failed_checks[name]} | {enforced} |")
    return "\n".join(rows), unexercised


def summary(
    plan: Plan, result: Audit, clients: list[ClientTask], upstreams: Upstreams, seconds: float
) -> str:
    refused = Counter(c.refused for c in clients if c.refused)
    failures = ", ".join(f"{n}× {k}" for k, n in result.failures.most_common()) or "none"
    lines = [
        f"{plan.backend}: {len(clients)} creates in {seconds:.0f} s "
        f"({plan.load_seconds:g} s of faults, seed {plan.seed}); "
        f"tasks {dict(result.statuses)}; refused {dict(refused)}",
        f"failed tasks: {failures}",
        f"upstream jobs {result.jobs} (requests {dict(upstreams.requests_by_endpoint())}); "
        f"jobs that succeeded for a task that did not: {result.orphaned_paid_jobs}",
        f"checked: {result.downloads_checked} downloads byte for byte, "
        f"{result.ledger_rows} ledger rows, {result.keys_checked} key balances; "
        f"violations: {len(result.violations)}",
    ]
    for v in result.relaxed[:5]:
        lines.append(f"relaxed check failed: {v.text[:300]}")
    internal = upstreams.internal_errors()
    if internal:
        lines.append(f"fake upstream errors: {internal[:3]}")
    return "\n".join(lines)
