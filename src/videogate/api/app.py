"""The ASGI app factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import ssl
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from videogate.api import (
    account,
    admin,
    admin_ops,
    ark,
    callbacks,
    files,
    meta,
    openai_form,
    openai_rework,
    relay,
)
from videogate.api.console import install_console
from videogate.api.edge import EdgeMiddleware, InFlight
from videogate.api.errors import install_error_handlers
from videogate.api.hot import HotLane
from videogate.api.metrics import metrics_endpoint
from videogate.api.observe import ObserveMiddleware, TemplatedRoute
from videogate.api.openapi_models import SECURITY_SCHEMES
from videogate.api.relay_schemas import RelayCreate
from videogate.api.state import ApiState
from videogate.clock import Clock
from videogate.context import AppContext, open_context
from videogate.logs import configure_logging
from videogate.metrics import Metrics
from videogate.service.keys import KeyAuthenticator
from videogate.service.limits import RequestLimiter
from videogate.service.tasks import TaskService
from videogate.settings import Settings, load_settings
from videogate.worker import Worker

log = logging.getLogger("videogate")


class VideogateApp(FastAPI):
    """The FastAPI app, with the poll and the create served by a short lane past FastAPI's
    stack while ``hot`` is set (``api/hot.py``)."""

    hot: HotLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and scope["type"] == "http" and hot.match(scope):
            scope["app"] = self
            await hot.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _telemetry_enabled(app: FastAPI) -> bool:
    """Is FastAPI's own telemetry on (an OpenTelemetry provider configured)? It is checked
    per request by FastAPI; the hot lane checks once, at start-up."""
    telemetry = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    return bool(enabled()) if callable(enabled) else False


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    migrate: bool = True,
    freeze_gc: bool = False,
    clock: Clock | None = None,
    tls: ssl.SSLContext | None = None,
) -> FastAPI:
    """The HTTP app; with ``run_worker`` it also runs a task worker in-process.

    ``freeze_gc`` (for a server process, not tests) moves everything alive after start-up
    out of the garbage collector's reach: the collector then never walks the app's
    long-lived objects (modules, models, settings) again, only what requests allocate.
    ``clock`` is the engine's time (tests pass a fake one); the system clock by default.
    ``tls`` is the outbound HTTP client's certificate verification (``open_context``).
    """
    metrics = Metrics(multiprocess_dir=settings.prometheus_multiproc_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: VideogateApp) -> AsyncIterator[None]:
        ctx = await open_context(settings, migrate=migrate, metrics=metrics, clock=clock, tls=tls)
        app.state.api = build_state(ctx)
        if not _telemetry_enabled(app):
            # Built now, with every exception handler registered.
            handlers = app.exception_handlers
            app.hot = HotLane(poll, create, handlers, settings, metrics, in_flight)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        stop = asyncio.Event()
        worker_task = None
        if run_worker:
            worker_task = asyncio.create_task(Worker(ctx).run(stop))
        try:
            yield
        finally:
            app.hot = None
            stop.set()
            try:
                if worker_task is not None:
                    await worker_task
            finally:  # a worker that ended in an error must not leave the store open
                try:
                    await app.state.api.aclose()
                finally:
                    await ctx.close()

    app = VideogateApp(
        title="videogate",
        version="0.1.0",
        summary="Self-hostable, Seedance-2.0-compatible video generation API",
        lifespan=lifespan,
        # Served by install_console from packaged assets, so they work offline.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    # Pure ASGI, outside the routing: sheds load and caps bodies before a handler runs.
    in_flight = InFlight()  # one count for the stack's edge and the hot lane's
    app.add_middleware(EdgeMiddleware, settings=settings, in_flight=in_flight)
    # The poll and the create are the hot path: served by plain Starlette routes, which
    # skip FastAPI's per-request dependency and validation machinery (~60 µs; both read
    # the request themselves). The FastAPI routes of the same paths stay for the OpenAPI
    # document.
    poll = TemplatedRoute("/v1/videos/{task_id}", relay.poll_video, methods=["GET"])
    create = TemplatedRoute("/v1/videos", relay.create_video, methods=["POST"])
    app.router.routes += [poll, create]
    app.router.routes.append(TemplatedRoute("/metrics", metrics_endpoint, methods=["GET"]))
    app.add_middleware(ObserveMiddleware, metrics=metrics)
    for module in (relay, openai_rework, account, files, meta, callbacks, ark, admin, admin_ops):
        app.include_router(module.router)
    install_console(app)
    _add_schema(app)
    return app


def api_from_environment() -> FastAPI:
    """The API-only app with settings from the environment: what each process of
    ``videogate api --workers N`` serves (migrations already ran in the parent)."""
    settings = load_settings()
    # A fresh interpreter (uvicorn spawns its workers): nothing of the parent's logging.
    configure_logging(settings, role="api")
    return create_app(settings, run_worker=False, migrate=False, freeze_gc=True)


def build_state(ctx: AppContext) -> ApiState:
    return ApiState(
        ctx=ctx,
        auth=KeyAuthenticator(ctx.store, ctx.settings.key_cache_seconds),
        tasks=TaskService(ctx),
        limits=RequestLimiter(ctx.settings),
    )


def _add_schema(app: FastAPI) -> None:
    """Publish the two bodies that ``POST /v1/videos`` parses by hand (JSON and the form),
    the bearer scheme, and no 422s (validation errors are 400s here)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        defs = RelayCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.pop("$defs", {}))
        components["RelayCreate"] = defs
        components["OpenAIVideoForm"] = openai_form.FORM_SCHEMA
        schema["components"]["securitySchemes"] = SECURITY_SCHEMES
        # Validation errors are answered 400 in the error envelope (errors.py), never with
        # FastAPI's 422 body: drop what FastAPI documents for them.
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
