"""The chaos suite, long form: a few hundred tasks per backend under every fault.

    make chaos                                     # both backends, every fault
    .venv/bin/python bench/chaos.py --backend sqlite --tasks 100 --seconds 60
    .venv/bin/python bench/chaos.py --exclude db_outage --relax no_500

The same harness as the CI form (``tests/chaos/``): real ``videogate`` processes behind two
faulty fake Ark upstreams, SIGKILLs, database outages and a full disk, then the audit.
Prints the table of faults injected and survived per backend (Markdown, ready for
docs/reliability.md) and exits non-zero when any guarantee was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos_plan import Backend

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"


def main() -> int:
    for folder in (TESTS_DIR, TESTS_DIR / "chaos"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from chaos_plan import CHECKS, FAULTS, long_plan
    from chaos_run import run_chaos

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "both"], default="both", help="database"
    )
    parser.add_argument("--tasks", type=int, help="tasks per backend (default 300)")
    parser.add_argument("--seconds", type=float, help="seconds of faults (default 180)")
    parser.add_argument("--seed", type=int, default=1, help="makes the faults repeatable")
    parser.add_argument(
        "--exclude", action="append", default=[], choices=sorted(FAULTS), help="a fault to skip"
    )
    parser.add_argument(
        "--relax", action="append", default=[], choices=sorted(CHECKS), help="report, not fail"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and data dirs")
    args = parser.parse_args()

    backends: list[Backend] = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    broken = 0
    for backend in backends:
        plan = long_plan(
            backend,
            seed=args.seed,
            excluded={name: "--exclude" for name in args.exclude},
            relaxed={name: "--relax" for name in args.relax},
        )
        if args.tasks:
            plan = replace(plan, tasks=args.tasks)
        if args.seconds:
            plan = replace(plan, load_seconds=args.seconds)
        root = Path(tempfile.mkdtemp(prefix=f"videogate-chaos-{backend}-"))
        print(f"… {backend}: {plan.tasks} tasks, {plan.load_seconds:g} s of faults, in {root}")
        outcome = asyncio.run(run_chaos(plan, root))
        print(f"\n{outcome.summary}\n\n{outcome.table}\n")
        for text in outcome.violations[:50]:
            print(f"VIOLATION: {text}")
        for exit_ in outcome.unexpected_exits[:5]:
            print(f"exit: {exit_[:400]}")
        broken += len(outcome.violations)
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    print("every guarantee held" if not broken else f"{broken} violation(s)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
