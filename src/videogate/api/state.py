"""Per-app state reachable from handlers (set up by the lifespan in ``app.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from videogate.context import AppContext
from videogate.service.keys import Caller, KeyAuthenticator
from videogate.service.limits import RequestLimiter
from videogate.service.tasks import TaskService


@dataclass
class ApiState:
    ctx: AppContext
    auth: KeyAuthenticator
    tasks: TaskService
    limits: RequestLimiter | None = None

    async def caller(self, request: Request) -> Caller:
        """The authenticated key; each call counts against its requests-per-minute limit."""
        caller = await self.auth.authenticate(request.headers.get("authorization"))
        if self.limits is not None:
            await self.limits.hit(caller)
        return caller

    async def aclose(self) -> None:
        """Before the context closes: nothing started here may use the store after it."""
        await self.auth.aclose()
        if self.limits is not None:
            await self.limits.close()


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state
