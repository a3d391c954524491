"""The results of ``upstream_bench.py``: what one mode measured (:class:`ModeResult`), how
the samples and the fake's request log become per-task figures (:func:`collect`), and the
printed report.

Imported as ``_upstream_report`` by ``upstream_bench.py``; not a test, not part of the
package.
"""

from __future__ import annotations

import argparse
import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from _common import Server, percentile
from _fake_control import FakeLog
from _tasks_db import Row

LOST_AFTER = 5.0  # a task seen this long after its callback was answered: the hint was lost
SAMPLE_SECONDS = 0.1  # database sampling period while waiting
CEILING_CONCURRENCY = 32  # the bare client that measures the fake's own ceiling
TERMINAL = ("succeeded", "failed", "cancelled", "expired")
IN_FLIGHT = 1.0  # a poll this close before the upstream completion was probably in flight


def count_between(times: Sequence[float], start: float, end: float) -> int:
    """How many of the sorted ``times`` lie in [start, end]."""
    return bisect_right(times, end) - bisect_left(times, start)


def spread_of(values: list[float]) -> str:
    """``p50 / p90 / p99 / max`` in seconds, or ``-``."""
    if not values:
        return "-"
    v = sorted(values)
    return " / ".join(f"{percentile(v, q):.3f}" for q in (0.5, 0.9, 0.99, 1.0))


# Results -------------------------------------------------------------------------------


@dataclass
class ModeResult:
    name: str
    callbacks: bool
    tasks: int
    created: int = 0
    ceiling: dict[str, float] = field(default_factory=dict)  # the fake's, this mode
    worker_started: float = math.nan  # wall clock (split topology)
    submits: list[float] = field(default_factory=list)  # the fake's accepted creates (times)
    create_errors: Counter[str] = field(default_factory=Counter)
    create_seconds: float = math.nan  # first POST → last answer
    submitted_seconds: float = math.nan  # first POST → the last task running upstream
    all_submitted: float = math.nan  # wall clock: the last task running upstream
    submit_latency: list[float] = field(default_factory=list)  # created → started, here
    hold_seconds: float = math.nan
    hold_polls: int = 0
    hold_window: float = math.nan
    hold_from: float = math.nan  # wall clock: the measured end of the hold
    hold_to: float = math.nan
    hold_cpu: float | None = None
    fake_hold_cpu: float = math.nan  # the fake's threads, same window: on a CPU
    fake_hold_waited: float = math.nan  # … and runnable but waiting for one
    completion_spread: float = math.nan  # first → last upstream completion
    latencies: list[float] = field(default_factory=list)  # upstream done → completed here
    discovery: list[float] = field(default_factory=list)  # upstream done → the poll that saw it
    to_download: list[float] = field(default_factory=list)  # that poll → result download
    download: list[float] = field(default_factory=list)  # result download → completed here
    callback_delay: list[float] = field(default_factory=list)  # upstream done → callback answered
    callback_queued: list[float] = field(default_factory=list)  # upstream done → its POST began
    callback_answer: list[float] = field(default_factory=list)  # that POST began → answered
    callback_outcomes: Counter[str] = field(default_factory=Counter)
    callbacks_sent: Counter[str] = field(default_factory=Counter)  # every status, by outcome
    after_callback: list[float] = field(default_factory=list)  # callback answered → seen
    # Seen > LOST_AFTER s after its callback: (our id, that wait, upstream done - the last
    # poll before it): a small last figure means a poll was in flight at the completion.
    late_after_callback: list[tuple[str, float, float]] = field(default_factory=list)
    wait_seconds: float = math.nan  # first upstream completion → the last task ended here
    wait_polls: int = 0
    wait_cpu: float | None = None
    wait_window: float = math.nan  # the fake told to complete → every task ended here
    fake_wait_cpu: float = math.nan  # the fake's threads in that window: on a CPU
    fake_wait_waited: float = math.nan  # … and runnable but waiting for one
    callbacks_idle_after: float | None = None  # every task ended → the fake's sender idle
    callbacks_dropped: int = 0
    callbacks_before_completed: int = 0  # success callback answered before completed here
    gets_after_success: int = 0  # polls at or after the task's upstream completion
    result_downloads: int = 0
    max_leased: int = 0
    max_due: int = 0
    stalled_samples: int = 0  # due tasks unclaimed while the worker had free slots
    stalled_batch_samples: int = 0  # … a whole claim batch of them
    samples: int = 0
    sockets: str = ""
    outcomes: Counter[str] = field(default_factory=Counter)  # non-succeeded, with reasons
    unfinished: int = 0
    fake_errors: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = False

    @property
    def failed(self) -> int:
        return sum(self.outcomes.values()) + self.unfinished + sum(self.create_errors.values())


@dataclass
class Report:
    environment: list[str] = field(default_factory=list)
    modes: list[ModeResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    topology: str = "split"
    server_cpus: set[int] | None = None  # --pin: videogate's processes
    other_cpus: set[int] | None = None  # --pin: the fake, this script, its load client


def engine_default(model: str, name: str) -> int | None:
    """A default of ``videogate.settings`` (None when the package does not import)."""
    try:
        from videogate import settings
    except Exception:
        return None
    return int(getattr(settings, model).model_fields[name].default)


def worker_concurrency() -> int | None:
    return engine_default("Settings", "worker_concurrency")


def route_poll_limit() -> int | None:
    return engine_default("RouteConfig", "max_concurrent_polls")


def claim_batch() -> int:
    """How many free slots the worker waits for before it claims again (``worker/loop.py``:
    concurrency // 8, claiming costs a write); fewer free slots are no stall."""
    return max(1, (worker_concurrency() or 0) // 8)


def poll_cap() -> int | None:
    return engine_default("Settings", "poll_max_interval_seconds")


def collect(
    result: ModeResult, fake: FakeLog, rows: list[Row], hold_from: float, hold_to: float
) -> None:
    """Per-task latencies and stages from our rows and the fake's tasks and request log."""
    upstream = fake.tasks
    gets: dict[str, list[float]] = defaultdict(list)
    downloads: dict[str, list[float]] = defaultdict(list)
    all_gets: list[float] = []
    result.fake_errors += fake.internal_errors
    result.callbacks_dropped = fake.callbacks_dropped
    for rec in fake.requests:
        if rec.endpoint == "create" and rec.status == 200:
            result.submits.append(rec.at)
        if rec.endpoint == "get":
            gets[rec.key or ""].append(rec.at)
            all_gets.append(rec.at)
        elif rec.endpoint == "result":
            name = rec.key or ""
            if name.endswith(".mp4"):
                downloads[name.removesuffix(".mp4")].append(rec.at)
    for times in (*gets.values(), *downloads.values(), all_gets, result.submits):
        times.sort()
    result.hold_polls = count_between(all_gets, hold_from, hold_to)
    result.result_downloads = sum(len(v) for v in downloads.values())

    done_at = {uid: t.completed_at for uid, t in upstream.items() if t.completed_at is not None}
    first_callback: dict[str, float] = {}
    callback_started: dict[str, float] = {}  # of the attempt that was answered
    for cb in fake.callbacks:
        ok = cb.answered
        result.callbacks_sent[f"{cb.status} {'answered' if ok else 'not answered'}"] += 1
        if cb.status == "succeeded":
            result.callback_outcomes[
                f"{cb.status} → {cb.response_status if ok else cb.error or cb.response_status}"
            ] += 1
            if ok and cb.task_id not in first_callback:
                first_callback[cb.task_id] = cb.at
                if cb.started is not None:
                    callback_started[cb.task_id] = cb.started
    for uid, at in first_callback.items():
        if uid in done_at:
            result.callback_delay.append(at - done_at[uid])
            if uid in callback_started:
                result.callback_queued.append(callback_started[uid] - done_at[uid])
                result.callback_answer.append(at - callback_started[uid])

    ends: list[float] = []
    for row in rows:
        if row.status not in TERMINAL:
            result.unfinished += 1
            continue
        if row.completed_at is not None:
            ends.append(row.completed_at)
        if row.status != "succeeded":
            message = (row.error_message or "")[:160]
            result.outcomes[f"{row.status}: {row.error_code}: {message}"] += 1
            continue
        if row.upstream_id is None or row.completed_at is None or row.upstream_id not in done_at:
            result.outcomes["succeeded without a known upstream completion"] += 1
            continue
        done = done_at[row.upstream_id]
        result.latencies.append(row.completed_at - done)
        task_gets = gets.get(row.upstream_id, [])
        result.gets_after_success += len(task_gets) - bisect_left(task_gets, done)
        fetches = [t for t in downloads.get(row.upstream_id, []) if t >= done]
        if fetches:
            fetch = fetches[0]
            # The poll that saw "succeeded": the last one the fake received before the download.
            seen = [t for t in task_gets if t <= fetch]
            if seen:
                result.discovery.append(max(seen[-1] - done, 0.0))
                result.to_download.append(fetch - seen[-1])
            result.download.append(row.completed_at - fetch)
        callback = first_callback.get(row.upstream_id)
        if callback is not None and callback <= row.completed_at:
            result.callbacks_before_completed += 1
        after = task_gets[bisect_left(task_gets, done) :]
        if callback is not None and after:
            result.after_callback.append(after[0] - callback)
            if after[0] - callback > LOST_AFTER:
                before = task_gets[: bisect_left(task_gets, done)]
                gap = done - before[-1] if before else math.inf
                result.late_after_callback.append((row.id, after[0] - callback, gap))
    if done_at:
        first, last = min(done_at.values()), max(done_at.values())
        result.completion_spread = last - first
        if ends:
            finish = max(ends)
            result.wait_seconds = finish - first
            result.wait_polls = count_between(all_gets, first, finish)


# Output ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def rate(count: int, seconds: float) -> str:
    return "-" if math.isnan(seconds) or seconds <= 0 else f"{count / seconds:.0f}"


def submit_line(m: ModeResult) -> str:
    """The worker's submit rate beside the fake's own create ceiling."""
    if len(m.submits) < 2:
        return "  submit rate: -"
    first, last = m.submits[0], m.submits[-1]
    line = (
        f"  submit rate: {len(m.submits)} creates accepted upstream in {last - first:.2f} s = "
        f"{rate(len(m.submits) - 1, last - first)} tasks/s (first → last accepted create)"
    )
    if not math.isnan(m.worker_started):
        line += (
            f"; worker start → first create {first - m.worker_started:.2f} s, → last "
            f"{last - m.worker_started:.2f} s"
        )
    ceiling = m.ceiling.get("creates_per_s")
    if ceiling:
        per_s = (len(m.submits) - 1) / (last - first) if last > first else math.nan
        line += f"\n    the fake's own ceiling: {ceiling:.0f} creates/s"
        line += f" ({per_s / ceiling:.1%} of it)" if not math.isnan(per_s) else ""
        line += f", {m.ceiling.get('gets_per_s', 0):.0f} polls/s (raw client, concurrency "
        line += f"{CEILING_CONCURRENCY}, {int(m.ceiling.get('errors', 0))} errors)"
        if "create_cpu_us" in m.ceiling:
            line += "\n" + ceiling_cpu(m.ceiling)
    return line


def ceiling_cpu(c: dict[str, float]) -> str:
    """The ceiling run's CPU per request: what the fake would take on a CPU of its own."""
    create, get = c["create_cpu_us"], c.get("get_cpu_us", math.nan)
    return (
        f"    per request, on a CPU / waiting for one (µs): the fake {create:.0f} / "
        f"{c.get('create_waited_us', math.nan):.0f} per create, {get:.0f} / "
        f"{c.get('get_waited_us', math.nan):.0f} per poll; the bare client "
        f"{c.get('client_cpu_us', math.nan):.0f} / {c.get('client_waited_us', math.nan):.0f}"
        f"\n    the fake alone on a CPU: ~{1e6 / create if create > 0 else math.nan:.0f} "
        f"creates/s, ~{1e6 / get if get > 0 else math.nan:.0f} polls/s"
    )


def fake_cpu(cpu: float, waited: float, window: float, count: int, unit: str) -> str:
    """``; the fake N% of one CPU (waited W% for one), M µs per <unit>`` (empty when
    unknown): a fake that waits for a CPU answers late, and the figures are partly its own."""
    if math.isnan(cpu) or not count or not window > 0:
        return ""
    return (
        f"; the fake {cpu / window:.0%} of one CPU (its threads waited {waited / window:.0%} "
        f"of the time for one), {cpu / count * 1e6:.0f} µs per {unit}"
    )


def print_report(args: argparse.Namespace, report: Report) -> None:
    print()
    print(f"videogate upstream bench: {args.tasks} Ark tasks in flight")
    for line in report.environment:
        print(f"  {line}")
    print()
    header = (
        f"{'mode':<11}{'tasks':>6}{'create s':>9}{'submit s':>9}{'polls/s':>9}{'polls/s':>9}"
        f"{'p50 s':>8}{'p90 s':>8}{'p99 s':>8}{'max s':>8}{'failed':>7}"
    )
    print(f"{'':<11}{'':>6}{'(HTTP)':>9}{'(upstr.)':>9}{'(hold)':>9}{'(wait)':>9}")
    print(header)
    print("-" * len(header))
    for m in report.modes:
        lat = sorted(m.latencies)
        print(
            f"{m.name:<11}{m.created:>6}{fmt(m.create_seconds, 1):>9}"
            f"{fmt(m.submitted_seconds, 1):>9}{rate(m.hold_polls, m.hold_window):>9}"
            f"{rate(m.wait_polls, m.wait_seconds):>9}"
            + "".join(f"{fmt(percentile(lat, q), 3):>8}" for q in (0.5, 0.9, 0.99, 1.0))
            + f"{m.failed:>7}"
            + ("" if m.finished else "  (incomplete)")
        )
    print()
    print(
        "p50…max: upstream completion (the fake's completed_at) → completed here "
        "(tasks.completed_at); 'submit s': first POST → the last task running upstream"
    )
    for m in report.modes:
        print()
        print(f"[{m.name}]")
        print(submit_line(m))
        print(
            f"  submit, created → running upstream here (p50/p90/p99/max s): "
            f"{spread_of(m.submit_latency)}"
        )
        print(
            f"  upstream completions spread over {fmt(m.completion_spread)} s; the last task "
            f"ended here {fmt(m.wait_seconds)} s after the first upstream completion"
        )
        print(
            f"  stages (p50/p90/p99/max s): upstream done → the poll that saw it "
            f"{spread_of(m.discovery)}"
        )
        print(f"    that poll → result download started {spread_of(m.to_download)}")
        print(f"    download started → completed here {spread_of(m.download)}")
        if m.hold_cpu is not None and m.hold_polls:
            print(
                f"  hold: {m.hold_polls} upstream polls in {fmt(m.hold_window, 1)} s, server "
                f"CPU {m.hold_cpu / m.hold_window:.0%} of one CPU, "
                f"{m.hold_cpu / m.hold_polls * 1e6:.0f} µs per poll"
                + fake_cpu(m.fake_hold_cpu, m.fake_hold_waited, m.hold_window, m.hold_polls, "poll")
            )
        if m.wait_cpu is not None:
            print(
                f"  wait: {m.wait_polls} upstream polls, {m.result_downloads} result downloads, "
                f"{m.gets_after_success} polls at or after the upstream completion "
                f"(1 per task is the least); server CPU "
                f"{m.wait_cpu:.1f} s"
                + fake_cpu(
                    m.fake_wait_cpu,
                    m.fake_wait_waited,
                    m.wait_window,
                    m.wait_polls + m.result_downloads + len(m.callback_delay),
                    "poll, download or callback",
                )
            )
        print(
            f"  worker (sampled every {SAMPLE_SECONDS:g} s, {m.samples} samples): "
            f"at most {m.max_leased} tasks leased (concurrency {worker_concurrency()}), at "
            f"most {m.max_due} due and unclaimed; {m.stalled_samples} samples with due tasks "
            f"unclaimed while slots were free, {m.stalled_batch_samples} while ≥ "
            f"{claim_batch()} were (the worker's claim batch)"
        )
        if not m.callbacks:
            print(f"  callbacks configured and dropped by the fake: {m.callbacks_dropped}")
        if m.sockets:
            print(f"  client sockets to the fake at the end: {m.sockets}")
        if m.callbacks:
            print(f"  callbacks the fake sent (attempts): {dict(m.callbacks_sent) or 'none'}")
            idle = m.callbacks_idle_after
            print(
                "  the fake's callback sender: "
                + ("still busy at the end" if idle is None else f"idle {idle:.1f} s after")
                + f" every task ended here; {m.callbacks_before_completed} success callbacks "
                "answered before their task was completed here"
            )
            print(
                f"  callbacks on success: {dict(m.callback_outcomes) or 'none'}, answered for "
                f"{len(m.callback_delay)} of {len(m.latencies)} tasks by the end of the wait; "
                f"upstream done → callback answered (p50/p90/p99/max s) "
                f"{spread_of(m.callback_delay)}"
            )
            print(
                f"    upstream done → its POST began (the fake's sender) "
                f"{spread_of(m.callback_queued)}; POST began → answered (videogate) "
                f"{spread_of(m.callback_answer)}"
            )
            print(
                "  callback answered → the poll that saw success (p50/p90/p99/max s) "
                f"{spread_of(m.after_callback)}"
            )
            late = m.late_after_callback
            if late:
                in_flight = [x for x in late if x[2] <= IN_FLIGHT]
                shown = ", ".join(f"{i} {w:.1f} s (poll {g:.2f} s before)" for i, w, g in late[:3])
                print(
                    f"  {len(late)} task(s) polled > {LOST_AFTER:g} s after their callback was "
                    f"answered; {len(in_flight)} of them had been polled < {IN_FLIGHT:g} s "
                    "before the upstream completion (a poll in flight whose 'running' result "
                    f"overwrote the callback's next_run_at): {shown}"
                )
        for reason, n in m.create_errors.most_common(5):
            print(f"  create failed ×{n}: {reason}")
        for reason, n in m.outcomes.most_common(5):
            print(f"  task ×{n}: {reason}")
        if m.unfinished:
            print(f"  {m.unfinished} task(s) had not ended when the wait stopped")
        for line in m.fake_errors[:5]:
            print(f"  fake internal error: {line}")
        for line in m.log_problems:
            print(f"  server log: {line}")
        for note in m.notes:
            print(f"  note: {note}")
    for note in report.notes:
        print(f"note: {note}")
