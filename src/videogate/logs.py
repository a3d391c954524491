"""Logging set-up: plain text for people, or one JSON object per line
(``VIDEOGATE_LOG_FORMAT=json``) with the timestamp, level, process role, and the
``request_id``, ``task_id``, ``key_id`` and ``route`` bound where they apply.

Modules keep using the standard ``logging`` API; structlog formats every record and adds
the context variables bound with :func:`bind` (per asyncio task, so concurrent requests
and task steps never mix their fields).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import structlog

from videogate.settings import Settings


@dataclass(frozen=True)
class LogSetup:
    """What :func:`configure_logging` was told: small and picklable, so that a spawned
    child process (a render or diffusers process) can log the same way."""

    log_format: str
    level: str
    role: str


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler we install; it remembers its set-up for child processes."""

    def __init__(self, setup: LogSetup, stream: IO[str] | None) -> None:
        super().__init__(stream)
        self.setup = setup


def configure_logging(settings: Settings, *, role: str, stream: IO[str] | None = None) -> None:
    """Send every log record to stderr in the chosen format, tagged with ``role``
    (serve, api, worker, gc or migrate)."""
    install(LogSetup(settings.log_format, settings.log_level, role), stream)


def current_setup() -> LogSetup | None:
    """This process's set-up, for a child process to repeat with :func:`install`; None
    when :func:`configure_logging` never ran (a library user or a test keeps its own).
    Read back from the root handler: logging's configuration is the process's anyway."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            return handler.setup
    return None


def install(setup: LogSetup | None, stream: IO[str] | None = None) -> None:
    """Configure logging from ``setup`` (a spawned child's initializer: a fresh
    interpreter has none of its parent's logging); None leaves logging alone."""
    if setup is None:
        return
    role = setup.role

    def add_role(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("role", role)
        return event

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_role,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if setup.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    handler = _Handler(setup, stream)  # stderr by default
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(setup.level.upper())
    # uvicorn's own loggers propagate to ours, so they share the format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log_transition(
    logger: logging.Logger, task_id: str, status: str, reason: str, **fields: object
) -> None:
    """The one log line of a task's move to ``status``, saying why."""
    logger.info(
        "task %s is %s: %s",
        task_id,
        status,
        reason,
        extra={"task_id": task_id, "status": status, "reason": reason, **fields},
    )


def bind(**fields: object) -> None:
    """Add fields to every log record of the current asyncio task (and tasks it starts)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add fields to the log records inside the block only (for a loop that handles one
    task after another in the same asyncio task)."""
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in fields.items() if v is not None}
    ):
        yield


def request_id() -> str | None:
    """The id of the HTTP request being served (bound by ``api/observe.py``), if any: a
    task stores the id of the request that created it, and the worker binds it again."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None
