"""Per-key limits: requests per minute, and unfinished tasks at once.

A key's own limit (``ApiKey.requests_per_minute`` / ``max_unfinished_tasks``) wins; else
its group's (``[[groups]]``); else there is none.

* Requests per minute are counted by the ``limits`` library in fixed one-minute windows
  that start at a key's first request (O(1) per request, and the exact time the window
  frees for ``Retry-After``). The counters live in ``Settings.rate_limit_storage``:
  ``memory://`` counts per process; ``redis://host:port/db`` shares them across every API
  process. A key with no limit costs nothing: the limiter is not consulted at all.
* Unfinished tasks (queued, running, fetching) are counted in the database when a task is
  created, so every process agrees by construction.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from videogate.errors import RateLimited, VideogateError
from videogate.service.keys import Caller
from videogate.settings import GroupConfig, Settings

if TYPE_CHECKING:
    from videogate.context import AppContext

log = logging.getLogger("videogate.limits")

NAMESPACE = "videogate-rpm"
REDIS_SCHEMES = ("redis", "rediss", "redis+unix")
# How often a failing limiter storage is logged (it fails open: requests are served).
STORAGE_ERROR_LOG_SECONDS = 60.0


def requests_per_minute(caller: Caller, groups: Iterable[GroupConfig]) -> int | None:
    """The key's own limit, else its group's, else None (no limit)."""
    if caller.requests_per_minute is not None:
        return caller.requests_per_minute
    return next((g.requests_per_minute for g in groups if g.name == caller.group), None)


def max_unfinished_tasks(caller: Caller, groups: Iterable[GroupConfig]) -> int | None:
    """The key's own cap, else its group's, else None (no cap)."""
    if caller.max_unfinished_tasks is not None:
        return caller.max_unfinished_tasks
    return next((g.max_unfinished_tasks for g in groups if g.name == caller.group), None)


def async_storage_uri(uri: str) -> tuple[str, dict[str, Any]]:
    """``memory://`` / ``redis://…`` (the setting) → the ``limits`` async storage URI and
    its options. Redis goes through redis-py's asyncio client."""
    uri = uri.strip()
    scheme = uri.partition("://")[0].lower().removeprefix("async+")
    if not uri.startswith("async+"):
        uri = "async+" + uri
    options: dict[str, Any] = {"wrap_exceptions": True}
    if scheme in REDIS_SCHEMES:
        options["implementation"] = "redispy"
    return uri, options


def is_shared_storage(uri: str) -> bool:
    """Whether rate-limit counters in ``uri`` are seen by every API process."""
    return uri.strip().partition("://")[0].lower().removeprefix("async+") in REDIS_SCHEMES


def check_limiter_scope(settings: Settings) -> None:
    """At start-up: with several API processes (``api_processes``) and per-process counters
    (``memory://``), every process counts on its own and a key gets its limit once per
    process. Say so loudly, or refuse to start with ``rate_limit_require_shared``."""
    if settings.api_processes <= 1 or is_shared_storage(settings.rate_limit_storage):
        return
    message = (
        f"{settings.api_processes} API processes count rate limits each on their own "
        f"(VIDEOGATE_RATE_LIMIT_STORAGE={settings.rate_limit_storage}): a key may make up to "
        f"{settings.api_processes}× its requests per minute. Set "
        "VIDEOGATE_RATE_LIMIT_STORAGE=redis://host:6379/0 to share the counters"
    )
    if settings.rate_limit_require_shared:
        raise VideogateError(
            message + " (refusing to start: VIDEOGATE_RATE_LIMIT_REQUIRE_SHARED is set)",
            code="configuration_error",
        )
    log.warning("%s", message)


class RequestLimiter:
    """Counts each authenticated request against its key's per-minute limit."""

    def __init__(self, settings: Settings) -> None:
        self._group_rpm = {g.name: g.requests_per_minute for g in settings.groups}
        uri, options = async_storage_uri(settings.rate_limit_storage)
        try:
            storage = storage_from_string(uri, **options)
        except ConfigurationError as exc:
            raise ValueError(
                f"VIDEOGATE_RATE_LIMIT_STORAGE={settings.rate_limit_storage!r} is not usable: "
                f"{exc} (use memory:// or redis://host:port/db)"
            ) from None
        self._storage = storage
        self._limiter = FixedWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItem] = {}
        self._logged_error_at = -math.inf

    def limit_for(self, caller: Caller) -> int | None:
        if caller.requests_per_minute is not None:
            return caller.requests_per_minute
        return self._group_rpm.get(caller.group)

    async def hit(self, caller: Caller) -> None:
        """Count one request; raises :class:`RateLimited` when the key is over its limit."""
        rpm = self.limit_for(caller)
        if rpm is None:
            return
        item = self._items.get(rpm)
        if item is None:
            item = self._items[rpm] = RateLimitItemPerMinute(rpm, namespace=NAMESPACE)
        try:
            if await self._limiter.hit(item, caller.key_id):
                return
            stats = await self._limiter.get_window_stats(item, caller.key_id)
        except StorageError as exc:
            # The counters are unreachable (Redis down): serve the request rather than
            # fail every request of every limited key, and say so in the log.
            now = time.monotonic()
            if now - self._logged_error_at >= STORAGE_ERROR_LOG_SECONDS:
                self._logged_error_at = now
                log.warning("rate-limit storage failed; requests are not limited: %s", exc)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"rate limit exceeded: {rpm} requests per minute for this key; "
            f"retry in {retry_after} s",
            retry_after=retry_after,
        )

    async def close(self) -> None:
        """Release the storage's connections (Redis)."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception as exc:  # closing a broken connection must not fail shutdown
                log.debug("closing the rate-limit storage: %s", exc)


async def check_unfinished_tasks(ctx: AppContext, caller: Caller) -> None:
    """Refuse a new task early when the key already has its cap of unfinished ones (before
    its references are fetched). The exact check is in the create's own transaction
    (``TaskStore.insert``); this one only saves work."""
    cap = max_unfinished_tasks(caller, ctx.settings.groups)
    if cap is None:
        return
    unfinished = await ctx.store.tasks.count_unfinished(caller.key_id)
    if unfinished >= cap:
        raise unfinished_cap_error(ctx.settings, cap, unfinished)


def unfinished_cap_error(settings: Settings, cap: int, unfinished: int) -> RateLimited:
    return RateLimited(
        f"at most {cap} unfinished tasks for this key; wait for one to finish "
        f"({unfinished} are queued or running)",
        retry_after=max(1, math.ceil(settings.poll_after_ms / 1000)),
    )
