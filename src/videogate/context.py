"""Everything a running videogate needs, built once from the settings and passed down."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from videogate.billing import Billing
from videogate.blobs import BlobStore, open_blob_store
from videogate.blobs.metered import MeteredBlobStore
from videogate.catalog import ModelSpec
from videogate.clock import Clock, SystemClock
from videogate.errors import VideogateError
from videogate.fetch import UrlGuard, guard_from_settings
from videogate.httppool import CookielessClient, ShardedTransport
from videogate.metrics import Metrics
from videogate.routing import Router, build_catalog_and_routes
from videogate.settings import Settings
from videogate.signing import UrlSigner
from videogate.store import Store
from videogate.store.db import PoolOptions, is_infrastructure
from videogate.store.failures import DRIVER_ERRORS, translate
from videogate.store.migrate import upgrade

log = logging.getLogger("videogate")

#: What the resources of a process raise (the database's drivers, the file system) that may
#: mean something to a client rather than a bug: :func:`resource_failure` says what.
RESOURCE_ERRORS: tuple[type[Exception], ...] = (*DRIVER_ERRORS, OSError, OverflowError)


def resource_failure(exc: BaseException) -> VideogateError | None:
    """What a failure of this process's resources means for the client: a value the
    database cannot store is a 400, our infrastructure's trouble (database unreachable,
    disk full, data directory not writable) a 503 with Retry-After; None for a bug. The
    drivers' errors are read in ``store/failures.py``, the one module that knows them."""
    return translate(exc)


T = TypeVar("T")


@dataclass
class WorkerHeartbeat:
    """What the in-process worker last did; read by ``/readyz`` (service/health.py)."""

    clock: Callable[[], float] = time.time
    started_at: float | None = None
    last_loop_at: float | None = None
    last_error: str | None = None
    errors_in_a_row: int = 0

    def start(self) -> None:
        self.started_at = self.clock()
        self.last_loop_at = None

    def beat(self) -> None:
        """A loop round completed."""
        self.last_loop_at = self.clock()
        self.errors_in_a_row = 0

    def failed(self, message: str) -> None:
        self.last_error = message[:300]
        self.errors_in_a_row += 1

    def stop(self) -> None:
        self.started_at = None

    def problem(self, stale_after: float) -> str | None:
        """Why the worker counts as not ready, or None (also when no worker runs here)."""
        if self.started_at is None:
            return None
        age = self.clock() - (self.last_loop_at or self.started_at)
        if age <= stale_after:
            return None
        why = f"the worker has not completed a loop for {age:.0f} s"
        if self.errors_in_a_row and self.last_error:
            why += f" ({self.errors_in_a_row} errors in a row; the last: {self.last_error})"
        return why


@dataclass
class AppContext:
    """Shared, long-lived resources of one process."""

    settings: Settings
    store: Store
    blobs: BlobStore
    signer: UrlSigner
    http: httpx.AsyncClient
    guard: UrlGuard
    router: Router
    models: dict[str, ModelSpec]
    billing: Billing
    metrics: Metrics
    # Every engine time read and timed wait goes through it (tests pass a fake).
    clock: Clock = field(default_factory=SystemClock)
    # Client-facing model names (``sora-2``) -> the catalog model that serves them.
    aliases: dict[str, str] = field(default_factory=dict)
    # Set when a task becomes due, so an in-process worker starts it at once.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # What the in-process worker last did (``/readyz``).
    heartbeat: WorkerHeartbeat = field(default_factory=WorkerHeartbeat)
    # Told the id of a finished task whose media or record the engine removed, so caches in
    # this process (the API's finished-task cache) drop it at once; other processes notice
    # when their signing window turns.
    task_changed: list[Callable[[str], None]] = field(default_factory=list)

    def notify_task_changed(self, task_id: str) -> None:
        for listener in self.task_changed:
            listener(task_id)

    @property
    def tmp_dir(self) -> Path:
        path = self.settings.data_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def work_dir(self) -> Path:
        path = self.settings.data_dir / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve_model(self, name: str) -> tuple[str, str | None]:
        """``(served model, alias)`` for a client's model name (alias None if it is not one)."""
        target = self.aliases.get(name)
        return (target, name) if target is not None else (name, None)

    async def close(self) -> None:
        """Close every part, the store even when closing another failed: a store left
        open keeps its pooled aiosqlite connections, which nothing closes after."""
        try:
            try:
                await self.http.aclose()
            finally:
                await self.blobs.close()
        finally:
            try:
                await self.store.close()
            finally:
                self.metrics.process_exited()


async def open_context(
    settings: Settings,
    *,
    migrate: bool = True,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    tls: ssl.SSLContext | None = None,
) -> AppContext:
    """Open the database (migrating it unless told not to), storage and HTTP client.

    ``tls`` is the HTTP client's certificate verification, built like httpx's default when
    not given; building one costs ~40 ms of CPU, so tests starting many apps share one.

    A process that starts while the database is briefly away (restarting, locked, the disk
    full) waits for it, up to ``STARTUP_PATIENCE`` seconds, instead of exiting."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        await _patiently(
            "migrating the database", settings, clock, upgrade, settings.effective_database_url
        )
    pool = PoolOptions(
        settings.db_pool_size,
        settings.db_max_overflow,
        settings.db_statement_cache_size,
        settings.db_hot_pool_size,
    )
    store = Store.open(
        settings.effective_database_url, pool, secret_key=settings.secret_key, clock=clock
    )
    try:
        secret = await _patiently(
            "reading the service secret", settings, clock, store.service_secret
        )
        if migrate:  # webhook secrets stored in clear by an older version are sealed now
            await _patiently(
                "sealing webhook secrets", settings, clock, store.keys.seal_plaintext_secrets
            )
    except BaseException:
        await store.close()
        raise
    metrics = metrics or Metrics(multiprocess_dir=settings.prometheus_multiproc_dir)
    blobs = MeteredBlobStore(open_blob_store(settings), metrics.blob_bytes_written)
    presign = blobs.presign_get if settings.download_mode == "presigned" else None
    models, routes = build_catalog_and_routes(settings, os.environ)
    router = Router(routes)
    return AppContext(
        settings=settings,
        store=store,
        blobs=blobs,
        signer=UrlSigner(secret, settings.effective_public_url, presign=presign),
        # No cookie jar: one client serves every tenant's URLs (httppool.py).
        http=CookielessClient(
            timeout=httpx.Timeout(settings.reference_timeout_seconds, connect=10.0),
            follow_redirects=False,
            # Keep a connection per concurrent step alive (httpx's default of 20 churns
            # sockets when a worker polls many tasks at once), in pools of a few each: in
            # one pool, a request's cost grows with the square of its size (httppool.py).
            transport=ShardedTransport(
                max_connections=settings.worker_concurrency * 2,
                max_keepalive=settings.worker_concurrency,
                verify=tls or httpx.create_ssl_context(trust_env=False),
            ),
            # An ambient proxy would bypass the SSRF guard's address pinning (see fetch.py).
            trust_env=False,
        ),
        guard=guard_from_settings(settings),
        router=router,
        models=models,
        billing=Billing(settings, router, models),
        aliases={alias: spec.name for spec in models.values() for alias in spec.aliases},
        metrics=metrics,
        clock=clock,
        heartbeat=WorkerHeartbeat(clock=clock.now),
    )


STARTUP_PATIENCE = 300.0  # seconds a starting process waits for its database


async def _patiently(
    what: str, settings: Settings, clock: Clock, fn: Callable[..., Awaitable[T]], *args: object
) -> T:
    """``await fn(*args)``, retrying infrastructure errors with a capped, doubling wait."""
    give_up = clock.monotonic() + STARTUP_PATIENCE
    failures = 0
    while True:
        try:
            return await fn(*args)
        except Exception as exc:
            if not is_infrastructure(exc) or clock.monotonic() >= give_up:
                raise
            failures += 1
            delay = min(0.5 * 2 ** (failures - 1), settings.worker_backoff_max_seconds)
            log.warning("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, delay)
            await clock.sleep(delay)
