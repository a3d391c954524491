"""The hot routes' short way through the app: the poll and the create.

Every request of a FastAPI app passes about ten ASGI layers before its handler: FastAPI's
telemetry check (it reads the environment and OpenTelemetry's providers per request:
~20 µs), Starlette's error, telemetry and body-limit middleware, ours (``observe.py``,
``edge.py``), the exception middleware, FastAPI's exit stack, then the router trying the
routes in turn. For ``GET /v1/videos/{task_id}`` and ``POST /v1/videos`` — what clients
call all day — :class:`HotLane` does what those layers do for them, in three:

* ``ObserveMiddleware``: the request id, the request metrics, the log context;
* ``EdgeMiddleware``: load shedding (one in-flight count shared with the app's stack) and
  the streamed body cap;
* :class:`_Endpoint`: the handler, its errors answered by the app's own exception
  handlers (``errors.py``), a bug answered 500 and raised for the server's log, as
  Starlette's ``ServerErrorMiddleware`` does.

Everything else (other routes, ``HEAD``, a ``root_path``) takes the app's whole stack. A
middleware added to the app (``add_middleware``) is not run for these two routes: add what
it does here as well.
When FastAPI's telemetry is enabled at start-up (an OpenTelemetry provider is
configured) the lane is not used, so every request is traced as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from videogate.api.edge import EdgeMiddleware, InFlight
from videogate.api.observe import ObserveMiddleware
from videogate.metrics import Metrics
from videogate.settings import Settings

Handler = Callable[[Request, Exception], Awaitable[Response]]

VIDEOS = "/v1/videos"
_TASK_PREFIX = VIDEOS + "/"


class HotLane:
    """Serves the poll and the create when :meth:`match` says a request is one of them."""

    def __init__(
        self,
        poll: Route,
        create: Route,
        exception_handlers: dict[Any, Callable[..., Any]],
        settings: Settings,
        metrics: Metrics,
        in_flight: InFlight,
    ) -> None:
        self._poll = poll
        self._create = create
        endpoint = _Endpoint(exception_handlers)
        self.app: ASGIApp = ObserveMiddleware(
            EdgeMiddleware(endpoint, settings, in_flight), metrics
        )

    def match(self, scope: Scope) -> bool:
        """Is this the poll or the create? If so, ``scope`` gets what the router would
        have put there (route, endpoint, path parameters)."""
        path: str = scope["path"]
        method = scope["method"]
        if scope.get("root_path"):
            return False
        if method == "GET" and path.startswith(_TASK_PREFIX):
            task_id = path[len(_TASK_PREFIX) :]
            if not task_id or "/" in task_id:
                return False
            route, params = self._poll, {"task_id": task_id}
        elif method == "POST" and path == VIDEOS:
            route, params = self._create, {}
        else:
            return False
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        return True


class _Endpoint:
    """The matched handler, with the app's exception handlers around it."""

    def __init__(self, exception_handlers: dict[Any, Callable[..., Any]]) -> None:
        # By exception class, as Starlette's ExceptionMiddleware looks them up; the
        # ``Exception`` handler is the server-error one (ServerErrorMiddleware's).
        self._handlers: dict[type, Handler] = {
            key: handler
            for key, handler in exception_handlers.items()
            if isinstance(key, type) and key is not Exception
        }
        self._unexpected: Handler | None = exception_handlers.get(Exception)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response: Response = await scope["endpoint"](request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                if self._unexpected is not None:
                    await (await self._unexpected(request, exc))(scope, receive, send)
                raise
            response = await handler(request, exc)
            # A reused exception instance must not pile up tracebacks (as Starlette does).
            exc.__traceback__ = None
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None
