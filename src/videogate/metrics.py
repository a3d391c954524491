"""Prometheus metrics: one :class:`Metrics` per process, built with the context.

Labels are bounded sets (route templates, models, statuses, route names): never a task,
key or user. When ``PROMETHEUS_MULTIPROC_DIR`` is set (several processes behind one port,
e.g. ``uvicorn --workers``), prometheus-client keeps the values in files there and
:func:`render` adds up every process's.

Gauges that describe the shared database (tasks in flight, route health) are read from it
when scraped, so every process reports the same cluster-wide values: aggregate them with
``max``, not ``sum``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from videogate.statuses import UNFINISHED

if TYPE_CHECKING:
    from videogate.routing import Router
    from videogate.store import Store

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
# How long a database-derived reading is reused: scrapes from several Prometheus servers
# cost one query.
DB_READ_SECONDS = 2.0


class Metrics:
    """Every metric videogate exports."""

    def __init__(self, *, multiprocess_dir: str = "") -> None:
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
            ["model", "status"],
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
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.route_in_flight = Gauge(
            "videogate_route_in_flight",
            "Unfinished upstream tasks per route (cluster-wide)",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.route_cap = Gauge(
            "videogate_route_max_in_flight",
            "The route's in-flight cap",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.route_open = Gauge(
            "videogate_route_breaker_open",
            "1 while the route is benched by its circuit breaker",
            ["route"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self._db_read_at = 0.0

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
            benched = state is not None and (state.benched_until or 0) > wall
            self.route_open.labels(route.name).set(1 if benched else 0)


def render(metrics: Metrics) -> tuple[bytes, str]:
    """The exposition text: this process's registry, or every process's in multiprocess
    mode."""
    if metrics.multiprocess_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
