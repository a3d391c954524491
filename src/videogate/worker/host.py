"""What a step (submit, poll, aftercare, attempt sweep) needs from the worker running it.

The steps are driven by ``loop.Worker`` and call back into it for the shared parts (the
provider of a route, the provider's view of a task, the failure paths). They see it
through this protocol, so ``loop.py`` imports the steps and no step imports ``loop.py``:
the dependency runs one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from videogate.clock import Clock
from videogate.context import AppContext
from videogate.errors import VideogateError
from videogate.providers.base import Provider, Route, TaskContext
from videogate.settings import Settings
from videogate.store.records import TaskRecord


class StepHost(Protocol):
    """The worker as its steps see it (``loop.Worker`` implements it)."""

    @property
    def ctx(self) -> AppContext: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def owner(self) -> str:
        """The lease owner every compare-and-set of this worker names."""
        ...

    def provider(self, route: Route) -> Provider: ...

    def route_of(self, row: TaskRecord) -> Route: ...

    def forget(self, task_id: str) -> None:
        """The task ended here: drop what the worker kept for its steps."""
        ...

    async def task_context(
        self, row: TaskRecord, route: Route, *, files: bool = False, attempt_id: str | None = None
    ) -> TaskContext: ...

    async def guarded(
        self, row: TaskRecord, work: Callable[[TaskRecord], Awaitable[None]]
    ) -> None: ...

    async def finish_failed(
        self, row: TaskRecord, code: str, message: str, *, status: str = "failed"
    ) -> None: ...

    async def retry_later(self, row: TaskRecord, exc: VideogateError) -> None: ...
