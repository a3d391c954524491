"""The one small interface every upstream adapter implements.

A provider turns a :class:`~videogate.request.GenerationRequest` into an upstream job
(``submit``), reports on it (``poll``) and stops it (``cancel``). It never touches the
database: the engine records what it returns. Failures raise
:class:`~videogate.errors.UpstreamError` whose ``disposition`` tells the engine whether to
retry, fail over or fail the task (HTTP providers get it from ``providers/http.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import httpx

from videogate.request import GenerationRequest
from videogate.settings import LocalModelConfig, Settings

UpstreamStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, declared on its class so no other module names a kind."""

    #: Its work costs nothing (the local sandbox): tasks it serves are never charged.
    free: bool = False
    #: Its routes must name a ``base_url`` (an upstream HTTP API).
    needs_base_url: bool = True
    #: It reads an API key from ``api_key_env``; a route without one is reported unhealthy.
    needs_api_key: bool = True
    #: The upstream calls our per-task callback URL when a job changes.
    accepts_callbacks: bool = False
    #: It works on this machine, so the first poll is due at once (nothing to wait for).
    local: bool = False
    #: Its routes name a model on this machine (``local = {…}``) and run one generation
    #: at a time; the class may offer ``model_spec(route)`` and ``route_problem(route)``.
    local_model: bool = False
    #: The upstream resolves ``asset://`` references from its own asset library: they are
    #: sent to it as they are and never fetched here. Elsewhere they are refused at create.
    resolves_assets: bool = False
    #: The containers it can deliver the video in (a request's ``output_format``).
    output_formats: tuple[str, ...] = ("mp4",)


@dataclass(frozen=True)
class Route:
    """One way to serve a public model (see DESIGN.md, glossary)."""

    name: str
    model: str
    provider: str
    upstream_model: str
    base_url: str = ""
    api_key_env: str = ""
    priority: int = 0
    weight: int = 1
    max_in_flight: int = 100
    groups: tuple[str, ...] = ("default",)
    enabled: bool = True
    request_format: str = "json"
    timeout_seconds: float = 30.0
    max_concurrent_polls: int = 32
    # The model directory and pipeline family of a ``diffusers`` route.
    local: LocalModelConfig | None = None
    # The upstream secret, read from ``api_key_env`` when the routes are built.
    api_key: str = field(default="", repr=False)
    # The provider class's capabilities, looked up when the routes are built.
    capabilities: Capabilities = field(default_factory=Capabilities)


@dataclass(frozen=True)
class TaskContext:
    """What a provider may know about the task it works on."""

    task_id: str
    request: GenerationRequest
    route: Route
    # Local copies of the references, by label ("image 1"), fetched at create time.
    reference_paths: dict[str, Path]
    # URLs an upstream can fetch the references from, by label: the client's own http(s)
    # or data: URL, or a signed URL of ours for uploads.
    reference_urls: dict[str, str]
    work_dir: Path
    callback_url: str | None = None
    # Lets a long-running ``poll`` (the sandbox render) report 0-100 while it works; it
    # answers False once the task is no longer running here (cancelled), so work can stop.
    report_progress: Callable[[int], Awaitable[bool]] | None = None
    # The submit attempt this call belongs to (submit and recover): its marker is what
    # recovery looks for upstream, so only this attempt's job can ever be adopted.
    attempt_id: str | None = None


@dataclass(frozen=True)
class PollResult:
    """The upstream's view of a job. URLs may be ``http(s)://`` or ``file://``."""

    status: UpstreamStatus
    progress: int | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    thumbnail_url: str | None = None
    completion_tokens: int | None = None
    seconds: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def attempt_marker(attempt_id: str) -> str:
    """The per-attempt identifier sent with a create where the upstream stores and echoes
    one (Ark: ``safety_identifier``). Attempt ids carry 80 random bits: no other attempt,
    of ours or anyone's, can produce the same marker."""
    return f"videogate-{attempt_id}"


@dataclass(frozen=True)
class ProviderDeps:
    """Shared resources handed to providers (one per worker process)."""

    settings: Settings
    http: httpx.AsyncClient
    run_cpu: Callable[..., Any]  # runs a picklable function in the render pool, awaitable


class Provider(Protocol):
    """An adapter for one upstream API shape.

    A provider module ``videogate.providers.<kind>`` defines the class and names it in a
    module-level ``PROVIDER_CLASS``; the class takes ``(route, deps)``.
    """

    capabilities: ClassVar[Capabilities]

    async def submit(self, ctx: TaskContext) -> str:
        """Start the job upstream and return its upstream id."""
        ...

    async def poll(self, ctx: TaskContext, upstream_id: str) -> PollResult:
        """Report the job's state."""
        ...

    async def cancel(self, ctx: TaskContext, upstream_id: str) -> None:
        """Stop the job if the upstream allows it."""
        ...

    async def recover(
        self, ctx: TaskContext, submitted_after: float, exclude: frozenset[str]
    ) -> str | None:
        """Find the job that attempt ``ctx.attempt_id`` may have created upstream since
        ``submitted_after`` (the worker died, or the answer was lost or unreadable).

        A job is adopted only by a marker that attempt alone could have sent
        (:func:`attempt_marker`); nothing is matched on what was sent, which another
        task's job may share. ``exclude`` holds upstream ids known to belong to other
        tasks. Returns the job's upstream id, or None when the upstream shows for certain
        that no such job exists. Raises :class:`~videogate.errors.UpstreamError` when it
        cannot tell (``Disposition.RETRY`` when asking again later may help).
        """
        ...
