"""The report of ``api_bench.py``: each phase beside the bare app of the same run, and
the targets of issue 12.

Imported as ``_api_report`` by ``api_bench.py``; not a test, not part of the package.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
from dataclasses import dataclass, field

from _common import Server
from _load import LoadResult


@dataclass
class Pair:
    """One measured phase: videogate and, when it applies, the bare app in the same run."""

    phase: str  # e.g. "poll finished, SQLite"
    vg: LoadResult
    bare: LoadResult | None = None
    paced: bool = False  # clients at a pace below saturation: only the latency is compared


@dataclass
class Report:
    environment: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    render: str = ""
    notes: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)


def versions() -> str:
    parts = []
    for name in ("uvicorn", "uvloop", "httptools", "starlette", "fastapi", "sqlalchemy", "httpx"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} MISSING")
    return ", ".join(parts)


# Output ---------------------------------------------------------------------------------

# The targets of issue 12: share of the bare app's req/s in the same run, per phase.
TARGETS = {"poll finished, SQLite": 0.50, "poll unfinished, SQLite": 0.25}
CREATE_TARGET = 2300.0  # creates/s
PG_TARGET = 0.60  # PostgreSQL poll req/s over SQLite's, same phase and generator
P99_TARGET = 0.020  # s, or at most 1.5 × the bare app's p99
P99_BARE_FACTOR = 1.5


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1e3:.1f}"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(args: argparse.Namespace, report: Report) -> None:
    print()
    print("videogate API bench")
    for line in report.environment:
        print(f"  {line}")
    print()
    width = max([38, *(len(p.phase) + 1 for p in report.pairs)])
    header = (
        f"{'phase':<{width}}{'target':<11}{'requests':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>9}"
        f"{'non-200':>8}{'server µs/req':>15}{'client µs/req':>15}"
    )
    print(header)
    print("-" * len(header))

    def row(phase: str, r: LoadResult) -> None:
        flag = " (cut short by time budget)" if r.cut_short else ""
        print(
            f"{phase:<{width}}{r.target:<11}{r.requests:>9}{r.rps:>9.0f}{ms(r.p50):>8}{ms(r.p99):>9}"
            f"{r.non_200:>8}{us(r.per_request_us(r.server_cpu)):>15}"
            f"{us(r.per_request_us(r.client_cpu)):>15}{flag}"
        )

    for pair in report.pairs:
        row(pair.phase, pair.vg)
        if pair.bare is not None:
            row(pair.phase, pair.bare)
    print()
    by_phase = {p.phase: p for p in report.pairs}
    for pair in report.pairs:
        if pair.bare is None:
            if pair.phase.startswith("create"):
                print(
                    f"{pair.phase}: {pair.vg.rps:.0f} creates/s "
                    f"(target ≥ {CREATE_TARGET:.0f}: {verdict(pair.vg.rps >= CREATE_TARGET)})"
                )
            continue
        vg, bare = pair.vg, pair.bare
        if pair.paced:
            p99_ok = vg.p99 <= P99_TARGET or vg.p99 <= P99_BARE_FACTOR * bare.p99
            print(
                f"{pair.phase}: {vg.rps:.0f} vs bare {bare.rps:.0f} req/s offered-paced; "
                f"p99 {ms(vg.p99)} ms vs bare {ms(bare.p99)} ms "
                f"(target ≤ 20 ms or ≤ 1.5× bare: {verdict(p99_ok)})"
            )
            continue
        share = vg.rps / bare.rps
        line = f"{pair.phase}: videogate/bare req/s = {share:.1%}"
        vg_us, bare_us = vg.per_request_us(vg.server_cpu), bare.per_request_us(bare.server_cpu)
        if vg_us and bare_us:
            line += f", by server CPU per request = {bare_us / vg_us:.1%}"
        target = TARGETS.get(pair.phase.split(" [")[0])
        if target is not None:
            line += f" (target ≥ {target:.0%}: {verdict(share >= target)})"
        p99_ok = vg.p99 <= P99_TARGET or vg.p99 <= P99_BARE_FACTOR * bare.p99
        line += (
            f"; p99 {ms(vg.p99)} ms vs bare {ms(bare.p99)} ms "
            f"(target ≤ 20 ms or ≤ 1.5× bare: {verdict(p99_ok)})"
        )
        print(line)
        if "PostgreSQL" in pair.phase:
            sqlite = by_phase.get(pair.phase.replace("PostgreSQL", "SQLite"))
            if sqlite is not None:
                ratio = vg.rps / sqlite.vg.rps
                print(
                    f"  PostgreSQL/SQLite req/s = {ratio:.1%} "
                    f"(target ≥ {PG_TARGET:.0%}: {verdict(ratio >= PG_TARGET)})"
                )
    for fact in report.facts:
        print(f"fact: {fact}")
    if report.render:
        print(f"render e2e, sandbox 8 s 720p + audio: {report.render}")
    print(
        f"latency at c={args.concurrency} is mostly queueing (≈ c / req/s); "
        "'server µs/req' is the service cost, the least noisy figure on a shared machine"
    )
    for note in report.notes:
        print(f"note: {note}")


# Entry point ----------------------------------------------------------------------------
