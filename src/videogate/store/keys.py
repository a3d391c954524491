"""API keys: stored as SHA-256 hashes; the secret is shown once at creation. Each key's
webhook signing secret is stored sealed (``store/sealing.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.db import retry_if_disconnected
from videogate.store.sealing import SecretBox, SecretUnreadable, is_sealed
from videogate.store.tables import ApiKey


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

    async def insert(self, key: ApiKey) -> None:
        """Store a new key; its webhook secret is sealed on the way in."""
        if not is_sealed(key.webhook_secret):
            box = await self._secret_box()
            key.webhook_secret = box.seal(key.webhook_secret, _row(key.id))
        async with self._sessions.begin() as s:
            s.add(key)

    async def webhook_secret(self, key: ApiKey) -> str:
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

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash (retried once on a dropped connection: every request
        may land here)."""

        async def read() -> ApiKey | None:
            async with self._sessions() as s:
                stmt = select(ApiKey).where(ApiKey.key_hash == key_hash)
                return (await s.execute(stmt)).scalar_one_or_none()

        return await retry_if_disconnected(read)

    async def get(self, key_id: str) -> ApiKey | None:
        async with self._sessions() as s:
            return await s.get(ApiKey, key_id)

    async def all(self) -> list[ApiKey]:
        async with self._sessions() as s:
            return list((await s.execute(select(ApiKey).order_by(ApiKey.created_at))).scalars())

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
