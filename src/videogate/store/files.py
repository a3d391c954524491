"""Uploaded reference files (``POST /v1/files``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.store.tables import StoredFile


class FileStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(self, row: StoredFile) -> bool:
        """Record an upload; False when that id is already recorded (a concurrent store of
        the same content-addressed upload), so callers never see the driver's error."""
        try:
            async with self._sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            return False
        return True

    async def get(self, file_id: str, key_id: str) -> StoredFile | None:
        async with self._sessions() as s:
            stmt = select(StoredFile).where(StoredFile.id == file_id, StoredFile.key_id == key_id)
            return (await s.execute(stmt)).scalar_one_or_none()

    async def by_blob(self, blob_key: str) -> StoredFile | None:
        async with self._sessions() as s:
            stmt = select(StoredFile).where(StoredFile.blob_key == blob_key)
            return (await s.execute(stmt)).scalar_one_or_none()
