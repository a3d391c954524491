"""The ``videogate`` command."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from videogate.cli import batch as batch_cmd
from videogate.cli import generate as generate_cmd
from videogate.cli import keys, routes, usage, webhooks
from videogate.cli import mcp as mcp_cmd
from videogate.cli import tasks as tasks_cmd
from videogate.cli._console import make_console

if TYPE_CHECKING:
    import uvicorn

    from videogate.context import AppContext
    from videogate.settings import Settings

# Server modules (settings, store, api, worker) are imported inside the server commands,
# so that the client commands work from a client-only install.

# prometheus-client's multi-process directory (videogate/metrics.py). Spelled out here:
# importing that module would fix prometheus-client's mode before the variable is set.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

app = typer.Typer(
    help="videogate: a self-hostable, Seedance-2.0-compatible video generation service.",
    no_args_is_help=True,
)
app.add_typer(keys.app, name="keys")
app.command("routes")(routes.routes_command)
app.command("webhooks")(webhooks.webhooks_command)
app.command("usage")(usage.usage_command)
# Client commands (the SDK only: they work from the client-only install).
app.command("generate")(generate_cmd.generate_command)
app.command("status")(tasks_cmd.status_command)
app.command("wait")(tasks_cmd.wait_command)
app.command("download")(tasks_cmd.download_command)
app.command("cancel")(tasks_cmd.cancel_command)
app.command("list")(tasks_cmd.list_command)
app.command("models")(tasks_cmd.models_command)
app.command("batch")(batch_cmd.batch_command)
app.command("mcp")(mcp_cmd.mcp_command)
console = make_console()


def _settings(host: str | None, port: int | None, *, shared_metrics: bool = True) -> Settings:
    """The settings, with prometheus-client's directory in the environment for a process
    that shares its port's ``/metrics`` (``shared_metrics``: serve, api). Any other keeps
    its values to itself: a worker's metrics port is its own, and its counts in an API's
    directory would be counted twice. Call it before importing the server modules."""
    from videogate.settings import load_settings

    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = load_settings(**overrides)
    # prometheus-client takes its directory from the environment once, when the server
    # modules first import it: one named in the settings file must be there by then.
    if not shared_metrics:
        os.environ.pop(MULTIPROC_ENV, None)
        os.environ.pop(MULTIPROC_ENV.lower(), None)
        return settings.model_copy(update={"prometheus_multiproc_dir": ""})
    if settings.prometheus_multiproc_dir and not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = settings.prometheus_multiproc_dir
    return settings


def _logging(settings: Settings, *, role: str) -> None:
    from videogate.logs import configure_logging

    configure_logging(settings, role=role)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (VIDEOGATE_HOST)"),
    port: int | None = typer.Option(None, help="Port (VIDEOGATE_PORT)"),
) -> None:
    """API and worker in one process: the embedded default."""
    from videogate.cli.first_run import prepare

    settings = _settings(host, port)
    _logging(settings, role="serve")
    asyncio.run(prepare(settings, console))
    _uvicorn(settings, run_worker=True)


@app.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (VIDEOGATE_HOST)"),
    port: int | None = typer.Option(None, help="Port (VIDEOGATE_PORT)"),
    workers: int = typer.Option(1, min=1, help="API processes sharing the port"),
) -> None:
    """Serve HTTP only; run workers separately with 'videogate worker'."""
    from videogate.store.migrate import upgrade

    settings = _settings(host, port)
    if workers > settings.api_processes:
        settings = settings.model_copy(update={"api_processes": workers})
    _logging(settings, role="api")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(upgrade(settings.effective_database_url))
    _uvicorn(settings, run_worker=False, workers=workers)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None, help="Serve GET /metrics on this port (VIDEOGATE_HOST is the bind address)"
    ),
) -> None:
    """Run a task worker alone (several may share one database)."""
    settings = _settings(None, None, shared_metrics=False)
    _logging(settings, role="worker")
    from videogate.context import open_context
    from videogate.worker import Worker

    async def run() -> None:
        ctx = await open_context(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = _metrics_server(ctx, settings.host, metrics_port) if metrics_port else None
        serving = asyncio.create_task(server.serve()) if server else None
        try:
            await Worker(ctx).run(stop)
        finally:
            if server is not None and serving is not None:
                server.should_exit = True
                await serving
            await ctx.close()

    asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations (serve, api and worker also do this at start)."""
    from videogate.store.migrate import upgrade

    settings = _settings(None, None)
    _logging(settings, role="migrate")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(upgrade(settings.effective_database_url))
    console.print("database is up to date")


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be removed"),
    limit: int = typer.Option(
        50, "--limit", min=0, max=100_000, help="With --dry-run: list at most this many per kind"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts"),
) -> None:
    """Remove what the retention settings say has expired (workers also do this)."""

    settings = _settings(None, None, shared_metrics=False)
    _logging(settings, role="gc")
    from videogate.cli.gc import show
    from videogate.context import open_context
    from videogate.errors import StorageUnavailable
    from videogate.worker.retention import Doomed, SweepReport, preview, sweep

    async def run() -> tuple[SweepReport, list[Doomed] | None]:
        ctx = await open_context(settings)
        try:
            # A wrong bucket or an unreachable store would otherwise look like nothing
            # to remove: the store must answer first.
            await ctx.blobs.check()
            if dry_run:
                return await preview(ctx, time.time(), limit)
            # Without a batch limit: one run works off the whole backlog.
            return await sweep(ctx, time.time(), max_batches=1_000_000), None
        finally:
            await ctx.close()

    try:
        report, items = asyncio.run(run())
    except StorageUnavailable as exc:
        console.print(f"[red]error:[/red] cannot reach the blob store: {exc.message}")
        raise typer.Exit(1) from None
    show(console, report, items, limit=limit, as_json=as_json)


def _metrics_server(ctx: AppContext, host: str, port: int) -> uvicorn.Server:
    import uvicorn

    from videogate.api.metrics import metrics_app

    class SignalFreeServer(uvicorn.Server):
        # The worker handles SIGINT/SIGTERM itself, then stops this server.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    config = uvicorn.Config(
        metrics_app(ctx), host=host, port=port, log_level="warning", access_log=False
    )
    return SignalFreeServer(config)


def _uvicorn(settings: Settings, *, run_worker: bool, workers: int = 1) -> None:
    import uvicorn

    from videogate.service.limits import check_limiter_scope

    check_limiter_scope(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "loop": _loop_option(settings.http_loop),
        "log_config": None,  # our handler (logs.py) formats uvicorn's records too
    }
    if workers > 1:
        # Each child process builds its own app from the environment: hand it what the
        # command line said.
        os.environ["VIDEOGATE_HOST"] = settings.host
        os.environ["VIDEOGATE_PORT"] = str(settings.port)
        os.environ["VIDEOGATE_API_PROCESSES"] = str(settings.api_processes)
        with _shared_metrics(settings, make=True):
            uvicorn.run(
                "videogate.api.app:api_from_environment", factory=True, workers=workers, **options
            )
        return

    from videogate.api.app import create_app

    # Migrations already ran above; every process must not race to run them again.
    with _shared_metrics(settings, make=False):
        app = create_app(settings, run_worker=run_worker, migrate=False, freeze_gc=True)
        uvicorn.run(app, **options)


def _loop_option(http_loop: str) -> str:
    """uvicorn's ``loop``: uvloop (``auto`` when it is installed) as
    ``serving_loop.EagerAcceptLoop``, which accepts every waiting connection per loop turn
    (plain uvloop admits one a turn: seconds of wait for the last of 200 clients)."""
    if http_loop == "asyncio" or importlib.util.find_spec("uvloop") is None:
        return http_loop
    return "videogate.cli.serving_loop:new_event_loop"


@contextlib.contextmanager
def _shared_metrics(settings: Settings, *, make: bool) -> Iterator[None]:
    """Several processes on one port (``make``): whichever answers ``/metrics`` must
    report them all, so their values go to one directory (prometheus-client's
    multi-process mode). Without ``PROMETHEUS_MULTIPROC_DIR`` that is ``metrics/`` in the
    data directory, removed at exit. A given directory is emptied of a previous run's
    files at start (prometheus-client's rule)."""
    made = None
    if make and not os.environ.get(MULTIPROC_ENV):
        made = settings.data_dir / "metrics"
        os.environ[MULTIPROC_ENV] = str(made)
    if os.environ.get(MULTIPROC_ENV):
        directory = Path(os.environ[MULTIPROC_ENV])
        directory.mkdir(parents=True, exist_ok=True)
        from videogate.metrics import clear_multiprocess_dir

        clear_multiprocess_dir(str(directory))
    try:
        yield
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def main() -> None:
    try:
        from pydantic import ValidationError
    except ImportError:  # a client-only install: no settings to validate
        ValidationError = _NeverRaised  # type: ignore[misc,assignment]

    from videogate.errors import VideogateError

    try:
        app()
    except ModuleNotFoundError as exc:
        console.print(
            f"[red]error:[/red] this command needs the server install ({exc.name} is missing): "
            "pip install 'videogate\\[server]'"  # \[: a literal bracket, not rich markup
        )
        raise SystemExit(2) from None
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:  # about the settings as a whole, e.g. an unknown key
                console.print(
                    f"[red]invalid settings:[/red] {err['msg'].removeprefix('Value error, ')}"
                )
                continue
            name = "VIDEOGATE_" + "_".join(str(p) for p in err["loc"]).upper()
            console.print(f"[red]invalid setting {name}:[/red] {err['msg']}")
        raise SystemExit(2) from None
    except VideogateError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(1) from None


class _NeverRaised(Exception):
    """Stands in for pydantic's ValidationError where pydantic is not installed."""
