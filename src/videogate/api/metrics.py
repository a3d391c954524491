"""``GET /metrics`` in Prometheus text format, on the API and on a worker's metrics port."""

from __future__ import annotations

import hmac

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from videogate.context import AppContext
from videogate.metrics import render


async def _serve(ctx: AppContext, request: Request) -> Response:
    token = ctx.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response(
                "send VIDEOGATE_METRICS_TOKEN as 'Authorization: Bearer <token>'\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
                media_type="text/plain",
            )
    await ctx.metrics.read_database(ctx.store, ctx.router)
    body, content_type = render(ctx.metrics)
    return Response(body, media_type=content_type)


async def metrics_endpoint(request: Request) -> Response:
    """The API's ``/metrics`` (a plain route: no schema, no auth dependency)."""
    return await _serve(request.app.state.api.ctx, request)


def metrics_app(ctx: AppContext) -> Starlette:
    """A one-route app for ``videogate worker --metrics-port``."""

    async def endpoint(request: Request) -> Response:
        return await _serve(ctx, request)

    return Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])
