"""The poll's read path on SQLite: a plain ``sqlite3`` lookup on the event loop thread.

A primary-key lookup takes ~12 µs in-thread, while the async driver spends ~800 µs on
thread hand-offs and the transaction around it. In WAL mode a reader never waits for a
writer, so doing it inline does not stall the loop. PostgreSQL keeps the async path.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from videogate.store.rows import detached
from videogate.store.tables import Task

# Attribute names (the same as the column names on this table).
_COLUMNS = [c.name for c in Task.__table__.columns]
_JSON = {c.name for c in Task.__table__.columns if c.type.__class__.__name__ == "JSON"}
_BOOL = {"media_deleted"}
_SQL_BY_ID = f"SELECT {', '.join(_COLUMNS)} FROM tasks WHERE id = ?"
# A key's own reads never see a task it deleted (OpenAI's DELETE).
_SQL_BY_ID_AND_KEY = _SQL_BY_ID + " AND key_id = ? AND deleted_at IS NULL"


class SqliteTaskReader:
    """Read-only, autocommit connection: each SELECT sees the latest committed state."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._conn.execute("PRAGMA query_only=1")

    def get(self, task_id: str, key_id: str | None) -> Task | None:
        if key_id is None:
            row = self._conn.execute(_SQL_BY_ID, (task_id,)).fetchone()
        else:
            row = self._conn.execute(_SQL_BY_ID_AND_KEY, (task_id, key_id)).fetchone()
        if row is None:
            return None
        return task_from_row(row)

    def close(self) -> None:
        self._conn.close()


# Every column of ``tasks``, in the order ``task_from_row`` reads them.
TASK_COLUMNS_SQL = ", ".join(_COLUMNS)


def task_from_row(row: Sequence[Any]) -> Task:
    """A detached ``Task`` from a plain row of ``TASK_COLUMNS_SQL``."""
    values: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    for name in _BOOL:
        values[name] = bool(values[name])
    return detached(Task, values)
