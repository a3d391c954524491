"""The API-key cache: single-flight misses, refresh-ahead, revocation within the TTL."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from videogate.errors import AuthenticationFailed
from videogate.service.keys import Caller, KeyAuthenticator, create_key
from videogate.store import Store
from videogate.store.migrate import upgrade
from videogate.store.records import KeyRecord

TTL = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingKeys:
    """The real key store, counting lookups and able to hold them at a gate."""

    def __init__(self, store: Store) -> None:
        self._keys = store.keys
        self.lookups = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._keys, name)

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        self.lookups += 1
        await self.gate.wait()
        return await self._keys.by_hash(key_hash)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await upgrade(url)
    s = Store.open(url)
    try:
        yield s
    finally:
        await s.close()


def authenticator(store: Store, clock: Clock) -> tuple[KeyAuthenticator, CountingKeys]:
    counting = CountingKeys(store)
    store.keys = counting  # type: ignore[assignment]
    return KeyAuthenticator(store, TTL, clock=clock), counting


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_lookup(store: Store) -> None:
    key = await create_key(store, name="k")
    auth, keys = authenticator(store, Clock())
    keys.gate.clear()
    waiting = [asyncio.create_task(auth.authenticate(f"Bearer {key.key}")) for _ in range(50)]
    await settle()
    keys.gate.set()
    callers = await asyncio.gather(*waiting)
    assert {c.key_id for c in callers} == {key.id}
    assert keys.lookups == 1


async def test_refresh_ahead_serves_the_old_entry_and_refreshes_once(store: Store) -> None:
    key = await create_key(store, name="k")
    clock = Clock()
    auth, keys = authenticator(store, clock)
    await auth.authenticate(f"Bearer {key.key}")
    assert keys.lookups == 1
    clock.now += TTL * 0.4  # fresh: no lookup at all
    await auth.authenticate(f"Bearer {key.key}")
    assert keys.lookups == 1
    clock.now += TTL * 0.2  # past half the TTL: answered at once, ONE refresh behind
    keys.gate.clear()
    started = 0
    lookup = auth._lookup

    def counting_lookup(key_hash: str) -> asyncio.Future[Caller | None]:
        nonlocal started
        started += 1
        return lookup(key_hash)

    auth._lookup = counting_lookup  # type: ignore[method-assign]
    callers = await asyncio.wait_for(
        asyncio.gather(*(auth.authenticate(f"Bearer {key.key}") for _ in range(30))), 5
    )
    assert {c.key_id for c in callers} == {key.id}
    await settle()
    assert keys.lookups == 2
    # One refresh started, not one per request of the turn that found the entry old.
    assert started == 1
    keys.gate.set()
    await settle()
    # The refreshed entry is aged from its own lookup: fresh again, no further lookups.
    clock.now += TTL * 0.4
    await auth.authenticate(f"Bearer {key.key}")
    await settle()
    assert keys.lookups == 2


async def test_revoked_key_stops_working_within_the_ttl(store: Store) -> None:
    key = await create_key(store, name="k")
    clock = Clock()
    auth, _ = authenticator(store, clock)
    await auth.authenticate(f"Bearer {key.key}")
    assert await store.keys.revoke(key.id, time.time())
    # No request in between to trigger a refresh: the entry still lapses at the TTL.
    clock.now += TTL
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {key.key}")


async def test_revoked_key_under_steady_traffic_stops_within_the_ttl(store: Store) -> None:
    key = await create_key(store, name="k")
    clock = Clock()
    auth, _ = authenticator(store, clock)
    await auth.authenticate(f"Bearer {key.key}")
    assert await store.keys.revoke(key.id, time.time())
    refused_at = None
    for step in range(1, 41):  # a request every TTL/20: refresh-ahead keeps running
        clock.now += TTL / 20
        try:
            await auth.authenticate(f"Bearer {key.key}")
        except AuthenticationFailed:
            refused_at = step * TTL / 20
            break
        await settle()
    assert refused_at is not None and refused_at <= TTL


async def test_a_lookup_racing_forget_does_not_recache_the_key(store: Store) -> None:
    key = await create_key(store, name="k")
    auth, keys = authenticator(store, Clock())
    keys.gate.clear()
    pending = asyncio.create_task(auth.authenticate(f"Bearer {key.key}"))
    await settle()
    assert await store.keys.revoke(key.id, time.time())
    auth.forget(key.id)
    keys.gate.set()
    with pytest.raises(AuthenticationFailed):
        await pending
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {key.key}")


async def test_a_cancelled_request_does_not_cancel_the_shared_lookup(store: Store) -> None:
    key = await create_key(store, name="k")
    auth, keys = authenticator(store, Clock())
    keys.gate.clear()
    first = asyncio.create_task(auth.authenticate(f"Bearer {key.key}"))
    second = asyncio.create_task(auth.authenticate(f"Bearer {key.key}"))
    await settle()
    first.cancel()
    await settle()
    keys.gate.set()
    assert (await second).key_id == key.id
    assert keys.lookups == 1


async def test_closing_waits_for_a_refresh_in_flight(store: Store) -> None:
    """A refresh-ahead runs beside the request that started it: the server may stop
    before it ends. Closed before the store, the authenticator ends it, so its database
    connection goes back to the pool the store then closes; left running, it outlived
    ``Store.close`` and its connection was never closed (aiosqlite's ResourceWarning when
    the collector found it, in whatever test ran then)."""
    key = await create_key(store, name="k")
    # Stopped before the refresh ran, as it checked out its connection, mid-query.
    for turns in (0, 1, 3, 10, 30):
        clock = Clock()
        auth = KeyAuthenticator(store, TTL, clock=clock)
        await auth.authenticate(f"Bearer {key.key}")
        clock.now += TTL * 0.6  # answered from the cache, one refresh started behind it
        await auth.authenticate(f"Bearer {key.key}")
        assert auth._inflight
        for _ in range(turns):
            await asyncio.sleep(0)
        await auth.aclose()
        assert not auth._inflight
        assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await store.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
