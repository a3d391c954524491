"""What one chaos run does: how many tasks, which faults, how often, and which are off.

The short form runs in CI (``tests/chaos/test_chaos.py``); the long form is
``bench/chaos.py`` (``make chaos``). Both use the same harness and the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Backend = Literal["sqlite", "postgresql"]

# Every fault the harness can inject, by name. A plan may exclude some (``excluded``).
FAULTS: dict[str, str] = {
    "kill_api": "SIGKILL of the `videogate api` process",
    "kill_serve": "SIGKILL of the `videogate serve` process (API + worker)",
    "kill_worker": "SIGKILL of the `videogate worker` process",
    "db_outage": "database unavailable (PostgreSQL: connections refused and cut; "
    "SQLite: an exclusive lock held)",
    "disk_full": "the data dir's file system full (tmpfs filled to the last byte)",
    "upstream_hang": "an upstream create or poll that hangs past the route's timeout",
    "upstream_unreadable_2xx": "a create answered 200 with an unreadable body (job created)",
    "upstream_disconnect": "a create whose connection drops after the job was created",
    "upstream_5xx": "an upstream 500 on create, poll, list or result download",
    "upstream_garbage": "an upstream answering an HTML page (200 or 502) instead of JSON",
    "callback_drop": "upstream status callbacks that never arrive",
    "client_cancel": "clients cancelling a share of their tasks mid-flight",
}

# Checks that hold only once a fix of issue 10 is in; a plan may relax them (``relaxed``).
# The invariants (every task finished, one paid job per task, no crossed results, the
# downloaded bytes, the ledger) are never relaxed.
CHECKS: dict[str, str] = {
    "no_500": "no API answer is a 500 (infrastructure trouble is a 503)",
    "no_runtime_exit": "no process exits on its own after it started",
    "no_lost_job": "no task fails (other than by its client's cancel) while its upstream "
    "job succeeds, paid for and thrown away",
}


@dataclass(frozen=True)
class UpstreamRates:
    """The chance that one upstream request gets each fault (per fake, per request)."""

    create_hang: float = 0.04
    create_unreadable: float = 0.04
    create_disconnect: float = 0.02
    create_5xx: float = 0.05
    create_garbage: float = 0.03
    poll_hang: float = 0.02
    poll_5xx: float = 0.05
    poll_garbage: float = 0.03
    list_5xx: float = 0.05
    result_5xx: float = 0.05
    callback_drop: float = 0.3


@dataclass(frozen=True)
class Plan:
    backend: Backend
    tasks: int = 40
    keys: int = 3
    # Tasks are created over ``load_seconds``; faults are injected during that window.
    load_seconds: float = 30.0
    # After the faults stop, everything must be finished within this time.
    drain_seconds: float = 90.0
    # Mean seconds between two process kills (uniform from half to one and a half).
    kill_every: float = 5.0
    db_outages: int = 1
    db_outage_seconds: float = 4.0
    disk_fills: int = 1
    disk_full_seconds: float = 3.0
    cancel_share: float = 0.05
    # Upstream settings: a job is queued then running for these times.
    queued_seconds: float = 0.4
    running_seconds: float = 1.2
    route_timeout_seconds: float = 2.0
    max_in_flight: int = 12
    rates: UpstreamRates = field(default_factory=UpstreamRates)
    # Faults (names in FAULTS) not injected in this run, with the reason.
    excluded: dict[str, str] = field(default_factory=dict)
    # Checks (names in CHECKS) reported but not enforced in this run, with the reason.
    relaxed: dict[str, str] = field(default_factory=dict)
    seed: int = 1

    def __post_init__(self) -> None:
        for given, known in ((self.excluded, FAULTS), (self.relaxed, CHECKS)):
            unknown = set(given) - set(known)
            if unknown:
                raise ValueError(f"unknown names {sorted(unknown)}; known: {sorted(known)}")

    def on(self, fault: str) -> bool:
        assert fault in FAULTS, fault
        return fault not in self.excluded

    def enforced(self, check: str) -> bool:
        assert check in CHECKS, check
        return check not in self.relaxed


def short_plan(backend: Backend, **overrides: object) -> Plan:
    """The CI form: a few dozen tasks, about a minute per backend."""
    return replace(Plan(backend=backend), **overrides)  # type: ignore[arg-type]


def long_plan(backend: Backend, **overrides: object) -> Plan:
    """The ``make chaos`` form: a few hundred tasks over several minutes."""
    plan = Plan(
        backend=backend,
        tasks=300,
        keys=5,
        load_seconds=180.0,
        drain_seconds=240.0,
        kill_every=5.0,
        db_outages=3 if backend == "postgresql" else 2,
        # SQLite: longer than its 30 s busy timeout, so statements fail, not just wait.
        db_outage_seconds=35.0 if backend == "sqlite" else 6.0,
        disk_fills=3,
        disk_full_seconds=5.0,
        max_in_flight=20,
    )
    return replace(plan, **overrides)  # type: ignore[arg-type]
