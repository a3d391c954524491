"""Creating, checking and revoking API keys."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from videogate.errors import AuthenticationFailed, InvalidRequest
from videogate.fields import INT32_MAX, has_nul
from videogate.ids import new_id, new_secret, new_webhook_secret
from videogate.money import parse_amount
from videogate.signing import hash_api_key
from videogate.store import Store
from videogate.store.tables import ApiKey

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
    row = ApiKey(
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
    await store.keys.insert(row)
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


class KeyAuthenticator:
    """Checks bearer keys; caches hits briefly so a poll costs no key query.

    A revoked key keeps working for at most ``ttl`` seconds in processes that cached it.
    """

    def __init__(self, store: Store, ttl: float, max_entries: int = 10_000) -> None:
        self._store = store
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[Caller, float]] = {}

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
        now = time.monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        row = await self._store.keys.by_hash(key_hash)
        if row is None or row.revoked_at is not None:
            self._cache.pop(key_hash, None)
            raise AuthenticationFailed("invalid API key: it is unknown or was revoked")
        caller = Caller(row.id, row.group, row.requests_per_minute, row.max_unfinished_tasks)
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[key_hash] = (caller, now + self._ttl)
        return caller

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after it was revoked here)."""
        for key_hash, (caller, _) in list(self._cache.items()):
            if caller.key_id == key_id:
                self._cache.pop(key_hash, None)
