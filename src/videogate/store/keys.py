"""API keys: stored as SHA-256 hashes; the secret is shown once at creation. Each key's
webhook signing secret is stored sealed (``store/sealing.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.db import retry_if_disconnected
from videogate.store.records import KEY_FIELDS, KeyRecord
from videogate.store.sealing import SecretBox, SecretUnreadable, is_sealed
from videogate.store.tables import ApiKey

_KEY_COLUMNS = tuple(getattr(ApiKey, name) for name in KEY_FIELDS)


def _record(row: Any) -> KeyRecord:
    return KeyRecord(**dict(zip(KEY_FIELDS, row, strict=True)))


def _row(key_id: str) -> str:
    """What a sealed webhook secret is bound to: its own key row."""
    return f"api_keys/{key_id}"


class KeyStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_box: Callable[[], Awaitable[SecretBox]],
    ) -> None:
        self._sessions = sessions
        self._secret_box = secret_box

    async def insert(self, key: KeyRecord) -> KeyRecord:
        """Store a new key; its webhook secret is sealed on the way in. The key as stored."""
        if not is_sealed(key.webhook_secret):
            box = await self._secret_box()
            key = replace(key, webhook_secret=box.seal(key.webhook_secret, _row(key.id)))
        async with self._sessions.begin() as s:
            s.add(ApiKey(**{name: getattr(key, name) for name in KEY_FIELDS}))
        return key

    async def webhook_secret(self, key: KeyRecord) -> str:
        """The key's webhook signing secret, in clear. Raises :class:`SecretUnreadable`."""
        box = await self._secret_box()
        return box.open(key.webhook_secret, _row(key.id))

    async def seal_plaintext_secrets(self) -> int:
        """Seal every webhook secret stored in clear (from before encryption) or with an
        older service secret; returns how many were rewritten. Safe to run concurrently."""
        box = await self._secret_box()
        async with self._sessions() as s:
            rows = (await s.execute(select(ApiKey.id, ApiKey.webhook_secret))).all()
        done = 0
        for key_id, stored in rows:
            try:
                if not box.needs_sealing(stored, _row(key_id)):
                    continue
                plain = box.open(stored, _row(key_id))
            except SecretUnreadable:
                continue  # left as it is: its webhooks say why they give up
            stmt = (
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.webhook_secret == stored)
                .values(webhook_secret=box.seal(plain, _row(key_id)))
            )
            async with self._sessions.begin() as s:
                done += (await s.execute(stmt)).rowcount  # type: ignore[attr-defined]
        return done

    async def by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash (retried once on a dropped connection: every request
        may land here)."""

        async def read() -> KeyRecord | None:
            async with self._sessions() as s:
                stmt = select(*_KEY_COLUMNS).where(ApiKey.key_hash == key_hash)
                row = (await s.execute(stmt)).one_or_none()
            return None if row is None else _record(row)

        return await retry_if_disconnected(read)

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self._sessions() as s:
            row = (await s.execute(select(*_KEY_COLUMNS).where(ApiKey.id == key_id))).one_or_none()
        return None if row is None else _record(row)

    async def all(self) -> list[KeyRecord]:
        stmt = select(*_KEY_COLUMNS).order_by(ApiKey.created_at)
        async with self._sessions() as s:
            return [_record(row) for row in await s.execute(stmt)]

    async def count_active(self) -> int:
        async with self._sessions() as s:
            stmt = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
            return int((await s.execute(stmt)).scalar_one())

    async def revoke(self, key_id: str, now: float) -> bool:
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).rowcount > 0  # type: ignore[attr-defined,no-any-return]

    async def update(self, key_id: str, values: dict[str, object]) -> bool:
        """Change some of a key's settable fields (name, limits); False if unknown."""
        allowed = {"name", "requests_per_minute", "max_unfinished_tasks"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"not settable: {', '.join(sorted(unknown))}")
        if not values:
            return await self.get(key_id) is not None
        stmt = update(ApiKey).where(ApiKey.id == key_id).values(**values)
        async with self._sessions.begin() as s:
            return (await s.execute(stmt)).rowcount > 0  # type: ignore[attr-defined,no-any-return]
