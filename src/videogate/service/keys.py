"""Creating, checking and revoking API keys."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from videogate.errors import AuthenticationFailed, InvalidRequest, NotFound
from videogate.fields import INT32_MAX, has_nul
from videogate.ids import new_id, new_secret, new_webhook_secret
from videogate.money import parse_amount
from videogate.signing import hash_api_key
from videogate.store import Store
from videogate.store.records import KeyRecord

log = logging.getLogger("videogate.keys")

KEY_PREFIX = "vg-"


@dataclass(frozen=True)
class Caller:
    """The authenticated key, as the request handlers see it."""

    key_id: str
    group: str
    # The key's own limits; None falls back to the group's (see ``service/limits.py``).
    requests_per_minute: int | None = None
    max_unfinished_tasks: int | None = None


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    key: str
    group: str
    webhook_secret: str
    balance_micros: int | None = None
    requests_per_minute: int | None = None
    max_unfinished_tasks: int | None = None


def to_micros(amount: Decimal | str | float | None) -> int | None:
    """A key's balance as typed → micros; ``None`` is an unlimited balance."""
    if amount is None:
        return None
    return parse_amount(amount, what="balance", allow_zero=True)


def _limit(value: int | None, what: str) -> int | None:
    if value is not None and value < 1:
        raise InvalidRequest(f"{what} must be at least 1 (leave it out for no limit)")
    if value is not None and value > INT32_MAX:
        raise InvalidRequest(f"{what} must be at most {INT32_MAX} (leave it out for no limit)")
    return value


async def create_key(
    store: Store,
    *,
    name: str = "",
    group: str = "default",
    balance: Decimal | str | None = None,
    requests_per_minute: int | None = None,
    max_unfinished_tasks: int | None = None,
) -> NewKey:
    if has_nul(name) or has_nul(group):
        raise InvalidRequest("a key's name and group must not contain NUL (\\u0000) characters")
    requests_per_minute = _limit(requests_per_minute, "requests per minute")
    max_unfinished_tasks = _limit(max_unfinished_tasks, "max unfinished tasks")
    secret = new_secret(KEY_PREFIX, 24)
    webhook_secret = new_webhook_secret()
    row = KeyRecord(
        id=new_id("key"),
        name=name,
        group=group,
        key_hash=hash_api_key(secret),
        key_prefix=secret[:10],
        balance_micros=to_micros(balance),
        webhook_secret=webhook_secret,
        created_at=time.time(),
        requests_per_minute=requests_per_minute,
        max_unfinished_tasks=max_unfinished_tasks,
    )
    row = await store.keys.insert(row)
    return NewKey(
        row.id,
        name,
        secret,
        group,
        webhook_secret,
        row.balance_micros,
        requests_per_minute,
        max_unfinished_tasks,
    )


async def key_or_404(store: Store, key_id: str) -> KeyRecord:
    """The key with this id (ids are cut to 100 characters), or :class:`NotFound`."""
    row = await store.keys.get(key_id[:100])
    if row is None:
        raise NotFound(f"no key '{key_id[:100]}'", param="id")
    return row


class KeyAuthenticator:
    """Checks bearer keys against a single-flight, refresh-ahead cache of key lookups.

    A cached entry is served for at most ``ttl`` seconds after the lookup that made it, so
    a revoked key (or a changed limit) takes effect within ``ttl`` in every process. Once
    half of that has passed, the first request to use the entry starts ONE background
    lookup and every request keeps the old entry meanwhile: a busy key never expires for
    everyone at once. When an entry has lapsed (or is missing), concurrent requests for it
    share one lookup instead of queueing a lookup each on the database.
    """

    def __init__(
        self,
        store: Store,
        ttl: float,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        # key hash -> (caller, fetched at)
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._inflight: dict[str, asyncio.Future[Caller | None]] = {}
        # Bumped by forget(): a lookup that started before it must not re-cache its row.
        self._generation = 0

    async def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise AuthenticationFailed(
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with 'videogate keys create')"
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "malformed Authorization header: use 'Authorization: Bearer <key>'"
            )
        key_hash = hash_api_key(token)
        hit = self._cache.get(key_hash)
        if hit is not None:
            age = self._clock() - hit[1]
            if age < self._ttl:
                if age >= self._ttl / 2 and key_hash not in self._inflight:
                    self._refresh_in_background(key_hash)
                return hit[0]
        caller = await self._lookup(key_hash)
        if caller is None:
            raise AuthenticationFailed("invalid API key: it is unknown or was revoked")
        return caller

    def _lookup(self, key_hash: str) -> asyncio.Future[Caller | None]:
        """The one lookup of ``key_hash`` in flight, started if there is none."""
        future = self._inflight.get(key_hash)
        if future is None:
            future = asyncio.ensure_future(self._fetch(key_hash))
            self._inflight[key_hash] = future
            future.add_done_callback(lambda _: self._inflight.pop(key_hash, None))
        # Shielded: a cancelled request must not cancel the lookup others wait for.
        return asyncio.shield(future)

    async def _fetch(self, key_hash: str) -> Caller | None:
        started, generation = self._clock(), self._generation
        row = await self._store.keys.by_hash(key_hash)
        if generation != self._generation:
            return await self._fetch(key_hash)  # forget() ran meanwhile: read it again
        if row is None or row.revoked_at is not None:
            self._cache.pop(key_hash, None)
            return None
        caller = Caller(row.id, row.group, row.requests_per_minute, row.max_unfinished_tasks)
        if len(self._cache) >= self._max and key_hash not in self._cache:
            self._cache.clear()
        # Aged from when the lookup started: the row may have changed while it ran.
        self._cache[key_hash] = (caller, started)
        return caller

    def _refresh_in_background(self, key_hash: str) -> None:
        # The lookup is in flight from here on, not from when a task would first run:
        # every other request of this loop turn sees it and starts no refresh of its own
        # (a task per request of the turn, hundreds under load, before).
        self._lookup(key_hash).add_done_callback(_log_refresh_failure)

    async def aclose(self) -> None:
        """End the lookups in flight (a refresh-ahead runs beside the request that started
        it): before the store closes, so their connections go back to the pool it closes.
        One still running when the engine is disposed returns its connection to the
        discarded pool, where nothing closes it."""
        lookups = list(self._inflight.values())
        for lookup in lookups:
            lookup.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after it was revoked here)."""
        self._generation += 1
        for key_hash, (caller, _) in list(self._cache.items()):
            if caller.key_id == key_id:
                self._cache.pop(key_hash, None)


def _log_refresh_failure(done: asyncio.Future[Caller | None]) -> None:
    """The entry lapses at its TTL if its refresh failed; the next miss retries."""
    if not done.cancelled() and done.exception() is not None:
        log.warning("refreshing a cached API key failed: %s", done.exception())
