"""The route "test" of the admin API: one cheap authenticated read on the upstream.

It asks the route's provider to look for recently submitted jobs (the same list call that
crash recovery makes): that proves the base URL is reachable, the key is accepted and the
answer is understood, without creating — or paying for — a job."""

from __future__ import annotations

import time
import uuid
from typing import Any

from videogate.context import AppContext
from videogate.errors import UpstreamError
from videogate.providers import ProviderDeps, Route, load_provider
from videogate.providers.base import TaskContext
from videogate.request import GenerationRequest


async def _no_cpu(*args: Any) -> Any:
    raise RuntimeError("a route test does not render")


async def probe_route(ctx: AppContext, route: Route) -> dict[str, Any]:
    """``{"route", "ok", "latency_ms", "detail"}``; never raises for upstream trouble."""
    deps = ProviderDeps(settings=ctx.settings, http=ctx.http, run_cpu=_no_cpu)
    started = time.monotonic()
    ok, detail = True, "the upstream answered an authenticated read"
    if not route.enabled:
        ok, detail = False, "the route is disabled"
    else:
        try:
            provider = load_provider(route.provider, route, deps)
            marker = f"routetest-{uuid.uuid4().hex[:12]}"
            probe = TaskContext(
                task_id=marker,
                request=GenerationRequest(model=route.model, prompt="route test"),
                route=route,
                reference_paths={},
                reference_urls={},
                work_dir=ctx.work_dir,
                attempt_id=marker,
            )
            # "Since a day from now": every job upstream is older, so one page of the list
            # answers, and no job can match this made-up attempt.
            await provider.recover(probe, time.time() + 86_400, frozenset())
        except UpstreamError as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # a broken route must show up here, not crash the page
            ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {
        "object": "route.test",
        "route": route.name,
        "provider": route.provider,
        "ok": ok,
        "latency_ms": int((time.monotonic() - started) * 1000),
        "detail": detail[:500],
    }
