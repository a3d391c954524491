"""The database side of the retention sweep: find what expired, and claim each item with
one compare-and-set so that several workers sweeping at once never do the same work."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from videogate.statuses import TERMINAL
from videogate.store.tables import StoredFile, Task

# A finished task: a final status and nothing left for the engine to do (aftercare done).
_FINISHED = (Task.status.in_(TERMINAL), Task.next_run_at.is_(None))


class RetentionStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def expired_media(self, before: float, limit: int) -> list[tuple[str, str]]:
        """(task id, key id) of finished tasks, completed before ``before``, whose media
        (results and stored references) are still kept."""
        stmt = (
            select(Task.id, Task.key_id)
            .where(*_FINISHED, Task.media_deleted.is_(False), Task.completed_at < before)
            .limit(limit)
        )
        async with self._sessions() as s:
            return [(str(i), str(k)) for i, k in (await s.execute(stmt)).all()]

    async def claim_media(self, task_id: str, now: float) -> bool:
        """Mark the task's media deleted; True for the one sweeper that did it."""
        stmt = (
            update(Task)
            .where(Task.id == task_id, *_FINISHED, Task.media_deleted.is_(False))
            .values(media_deleted=True, updated_at=now)
        )
        async with self._sessions.begin() as s:
            return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def expired_uploads(self, before: float, limit: int) -> list[tuple[str, str]]:
        """(file id, blob key) of uploads made before ``before``."""
        stmt = (
            select(StoredFile.id, StoredFile.blob_key)
            .where(StoredFile.created_at < before)
            .limit(limit)
        )
        async with self._sessions() as s:
            return [(str(i), str(b)) for i, b in (await s.execute(stmt)).all()]

    async def claim_upload(self, file_id: str) -> bool:
        async with self._sessions.begin() as s:
            result = await s.execute(delete(StoredFile).where(StoredFile.id == file_id))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def expired_tasks(self, before: float, limit: int) -> list[tuple[str, str, bool]]:
        """(task id, key id, media deleted) of finished tasks completed before ``before``."""
        stmt = (
            select(Task.id, Task.key_id, Task.media_deleted)
            .where(*_FINISHED, Task.completed_at < before)
            .limit(limit)
        )
        async with self._sessions() as s:
            return [(str(i), str(k), bool(m)) for i, k, m in (await s.execute(stmt)).all()]

    async def claim_task(self, task_id: str) -> bool:
        """Delete a finished task's record (its attempts and events go with it)."""
        async with self._sessions.begin() as s:
            result = await s.execute(delete(Task).where(Task.id == task_id, *_FINISHED))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # What ``videogate gc --dry-run`` lists: the same conditions, oldest first, with the
    # age and size an operator decides by.

    async def media_preview(self, before: float, limit: int) -> list[ExpiredMedia]:
        stmt = (
            select(
                Task.id,
                Task.key_id,
                Task.completed_at,
                Task.video_key,
                Task.thumbnail_key,
                Task.last_frame_key,
            )
            .where(*_FINISHED, Task.media_deleted.is_(False), Task.completed_at < before)
            .order_by(Task.completed_at, Task.id)
            .limit(limit)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [
            ExpiredMedia(str(i), str(k), float(c or 0), tuple(b for b in blobs if b))
            for i, k, c, *blobs in rows
        ]

    async def upload_preview(self, before: float, limit: int) -> list[ExpiredUpload]:
        stmt = (
            select(StoredFile.id, StoredFile.blob_key, StoredFile.created_at, StoredFile.bytes)
            .where(StoredFile.created_at < before)
            .order_by(StoredFile.created_at, StoredFile.id)
            .limit(limit)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [ExpiredUpload(str(i), str(b), float(c), int(n)) for i, b, c, n in rows]

    async def task_preview(self, before: float, limit: int) -> list[ExpiredTask]:
        stmt = (
            select(Task.id, Task.key_id, Task.completed_at, Task.media_deleted)
            .where(*_FINISHED, Task.completed_at < before)
            .order_by(Task.completed_at, Task.id)
            .limit(limit)
        )
        async with self._sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [ExpiredTask(str(i), str(k), float(c or 0), bool(m)) for i, k, c, m in rows]


@dataclass(frozen=True)
class ExpiredMedia:
    task_id: str
    key_id: str
    completed_at: float
    result_keys: tuple[str, ...]  # the video, thumbnail and last frame the task has


@dataclass(frozen=True)
class ExpiredUpload:
    file_id: str
    blob_key: str
    created_at: float
    bytes: int


@dataclass(frozen=True)
class ExpiredTask:
    task_id: str
    key_id: str
    completed_at: float
    media_deleted: bool
