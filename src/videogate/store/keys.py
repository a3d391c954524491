"""API keys: stored as SHA-256 hashes; the secret is shown once at creation."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.tables import ApiKey


class KeyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(self, key: ApiKey) -> None:
        async with self._sessions.begin() as s:
            s.add(key)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        async with self._sessions() as s:
            stmt = select(ApiKey).where(ApiKey.key_hash == key_hash)
            return (await s.execute(stmt)).scalar_one_or_none()

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
