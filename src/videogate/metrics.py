"""Prometheus metrics: one :class:`Metrics` per process, built with the context.

Labels are bounded sets (route templates, models, statuses, route names): never a task,
key or user. When ``PROMETHEUS_MULTIPROC_DIR`` is set (several processes behind one port:
``videogate api --workers N`` sets it up itself), prometheus-client keeps the values in
files there and :func:`render` adds up every process's counters and histograms, whichever
process answers the scrape.

Gauges that describe the shared database (tasks in flight, route health) are read from it
when scraped, so every process reports the same cluster-wide values: aggregate them with
``max``, not ``sum``. Behind one port the most recent reading of a live process is shown
(``livemostrecent``), once.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from videogate.statuses import UNFINISHED
from videogate.store.routes import is_benched

if TYPE_CHECKING:
    from videogate.routing import Router
    from videogate.store import Store

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
# How long a database-derived reading is reused: scrapes from several Prometheus servers
# cost one query.
DB_READ_SECONDS = 2.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("videogate.metrics")


def multiprocess_env() -> str:
    """The directory prometheus-client writes this process's values to, or "".

    prometheus-client reads the environment once, when it is first imported (both
    spellings): a directory named anywhere else is never written to."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or ""


def clear_multiprocess_dir(directory: str) -> None:
    """Remove the value files a previous run left (prometheus-client's rule: the directory
    is wiped before the processes that share it start), and nothing else."""
    for kind in ("counter", "gauge", "histogram", "summary"):
        for stale in Path(directory).glob(f"{kind}_*.db"):
            stale.unlink(missing_ok=True)


class Metrics:
    """Every metric videogate exports."""

    def __init__(self, *, multiprocess_dir: str = "") -> None:
        written = multiprocess_env()
        if multiprocess_dir and (
            not written or os.path.realpath(written) != os.path.realpath(multiprocess_dir)
        ):
            # Reading a directory nobody writes would show empty metrics: count here.
            log.warning(
                "prometheus_multiproc_dir %s is not this process's %s (it must be in the "
                "environment when the process starts); /metrics shows this process only",
                multiprocess_dir,
                MULTIPROC_ENV,
            )
            multiprocess_dir = ""
        self.multiprocess_dir = multiprocess_dir
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "videogate_http_requests",
            "HTTP requests by route template, method and status class",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "videogate_http_request_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tasks_created = Counter(
            "videogate_tasks_created", "Tasks accepted", ["model", "surface"], registry=r
        )
        self.tasks_finished = Counter(
            "videogate_tasks_finished",
            "Tasks that reached a final status",
            ["model", "surface", "status"],
            registry=r,
        )
        self.task_complete = Histogram(
            "videogate_task_complete_seconds",
            "Time from create to success",
            ["model"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "videogate_task_queue_wait_seconds",
            "Time from create to the upstream accepting the task",
            ["model"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.route_submits = Counter(
            "videogate_route_submits",
            "Submits to a route by outcome (submitted, failed, rejected)",
            ["route", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "videogate_upstream_request_seconds",
            "Time an upstream took to answer a submit or a poll",
            ["route", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "videogate_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, failed, skipped)",
            ["outcome"],
            registry=r,
        )
        self.money = Counter(
            "videogate_money",
            "Money moved, in currency units: held at create, charged or refunded at the end",
            ["currency", "kind"],
            registry=r,
        )
        self.blob_bytes_written = Counter(
            "videogate_blob_bytes_written",
            "Bytes written to the blob store, by kind (results, refs, uploads)",
            ["kind"],
            registry=r,
        )
        self.retention_deleted = Counter(
            "videogate_retention_deleted",
            "Records and blobs removed by the retention sweep",
            ["what"],
            registry=r,
        )
        # Read from the database at scrape time (the same in every process).
        self.tasks_in_flight = Gauge(
            "videogate_tasks_in_flight",
            "Unfinished tasks by status (cluster-wide)",
            ["status"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.route_in_flight = Gauge(
            "videogate_route_in_flight",
            "Unfinished upstream tasks per route (cluster-wide)",
            ["route"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.route_cap = Gauge(
            "videogate_route_max_in_flight",
            "The route's in-flight cap",
            ["route"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self.route_open = Gauge(
            "videogate_route_breaker_open",
            "1 while the route is benched by its circuit breaker",
            ["route"],
            multiprocess_mode="livemostrecent",
            registry=r,
        )
        self._db_read_at = 0.0

    def process_exited(self) -> None:
        """Drop this process's live gauges from the shared directory (its counters stay:
        the totals must not go down when a process ends)."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def count_money(self, currency: str, kind: str, micros: int) -> None:
        if micros > 0:
            self.money.labels(currency, kind).inc(micros / 1_000_000)

    async def read_database(self, store: Store, router: Router) -> None:
        """Refresh the cluster-wide gauges (at most every couple of seconds)."""
        now = time.monotonic()
        if now - self._db_read_at < DB_READ_SECONDS:
            return
        self._db_read_at = now
        counts = await store.tasks.in_flight_by_status()
        for status in UNFINISHED:
            self.tasks_in_flight.labels(status).set(counts.get(status, 0))
        routes = router.routes
        in_flight = await store.attempts.in_flight([r.name for r in routes])
        states = await store.route_state.all()
        wall = time.time()
        for route in routes:
            self.route_in_flight.labels(route.name).set(in_flight.get(route.name, 0))
            self.route_cap.labels(route.name).set(route.max_in_flight)
            state = states.get(route.name)
            self.route_open.labels(route.name).set(1 if is_benched(state, wall) else 0)


def render(metrics: Metrics) -> tuple[bytes, str]:
    """The exposition text: this process's registry, or every process's in multiprocess
    mode."""
    if metrics.multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
