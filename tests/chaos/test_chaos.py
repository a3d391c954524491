"""The chaos suite, short form (CI): real ``videogate api``, ``serve`` and ``worker``
processes on SQLite and on PostgreSQL behind two faulty fake Ark upstreams, killed at
random, with a database outage and a full disk, then audited (see chaos_audit.py).

The long form is ``make chaos`` (bench/chaos.py); docs/reliability.md explains both.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from chaos_plan import Backend, short_plan
from chaos_run import run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# The CI form's switches. `make chaos` injects every fault and enforces every check; the
# CI form leaves out those whose fix (issue 10) has not landed yet, each with the reason,
# so that CI stays green without any assertion that cannot fail. Empty: nothing left out.
CI_EXCLUDED_FAULTS: dict[str, str] = {}
CI_RELAXED_CHECKS: dict[str, str] = {}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_chaos_short(backend: Backend, tmp_path: Path) -> None:
    excluded = dict(CI_EXCLUDED_FAULTS)
    if os.geteuid() != 0:
        excluded.setdefault("disk_full", "not root: no tmpfs to fill")
    plan = short_plan(backend, excluded=excluded, relaxed=dict(CI_RELAXED_CHECKS))
    outcome = asyncio.run(run_chaos(plan, tmp_path))
    report = f"{outcome.summary}\n\n{outcome.table}"
    print(report)
    assert outcome.violations == [], "\n".join([*outcome.violations[:40], "", report])
    # Every fault the plan has on did happen: a run that injected nothing proves nothing.
    assert outcome.unexercised == [], report
    assert outcome.audit.downloads_checked > 0, report
