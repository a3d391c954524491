"""Per-app state reachable from handlers (set up by the lifespan in ``app.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from videogate.service.context import AppContext
from videogate.service.keys import Caller, KeyAuthenticator
from videogate.service.tasks import TaskService


@dataclass
class ApiState:
    ctx: AppContext
    auth: KeyAuthenticator
    tasks: TaskService

    async def caller(self, request: Request) -> Caller:
        return await self.auth.authenticate(request.headers.get("authorization"))


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state
