"""The poll's read path, beside SQLAlchemy's statement layer.

SQLite: a plain ``sqlite3`` lookup on the event loop thread. A primary-key lookup takes
~12 µs in-thread, while the async driver spends ~800 µs on thread hand-offs and the
transaction around it. In WAL mode a reader never waits for a writer, so doing it inline
does not stall the loop.

PostgreSQL: ``pg_fast.py`` (the same SELECT on a few asyncpg connections of its own).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from videogate.store.records import TASK_FIELDS, TaskRecord

# The record's fields are the table's column names, in its order.
_JSON = tuple(TASK_FIELDS.index(name) for name in ("request", "upstream_result", "price"))
_BOOL = TASK_FIELDS.index("media_deleted")
#: Every column of ``tasks``, in the order :func:`task_from_row` reads them.
TASK_COLUMNS_SQL = ", ".join(TASK_FIELDS)
_SQL_BY_ID = f"SELECT {TASK_COLUMNS_SQL} FROM tasks WHERE id = ?"
# A key's own reads never see a task it deleted (OpenAI's DELETE).
_SQL_BY_ID_AND_KEY = _SQL_BY_ID + " AND key_id = ? AND deleted_at IS NULL"
# On ix_tasks_due: one seek.
_SQL_NEXT_DUE = "SELECT min(next_run_at) FROM tasks WHERE next_run_at > ?"
# On ix_tasks_due: only the (few) rows a callback put at 0 are looked at.
_SQL_HINTED = (
    "SELECT 1 FROM tasks WHERE next_run_at <= 0"
    " AND (lease_until IS NULL OR lease_until < ?) LIMIT 1"
)


class SqliteTaskReader:
    """Read-only, autocommit connection: each SELECT sees the latest committed state."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._conn.execute("PRAGMA query_only=1")

    def get(self, task_id: str, key_id: str | None) -> TaskRecord | None:
        if key_id is None:
            row = self._conn.execute(_SQL_BY_ID, (task_id,)).fetchone()
        else:
            row = self._conn.execute(_SQL_BY_ID_AND_KEY, (task_id, key_id)).fetchone()
        return None if row is None else task_from_row(row)

    def data_version(self) -> int:
        """Changes whenever another connection (any process) commits to the file."""
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def hinted_due(self, now: float) -> bool:
        """True while a task made due by a callback (``next_run_at`` 0) waits unheld."""
        row = self._conn.execute(_SQL_HINTED, (now,)).fetchone()
        return row is not None

    def next_due_at(self, now: float) -> float | None:
        """The earliest ``next_run_at`` after ``now`` (the next scheduled step), if any."""
        (at,) = self._conn.execute(_SQL_NEXT_DUE, (now,)).fetchone()
        return None if at is None else float(at)

    def close(self) -> None:
        self._conn.close()


def task_from_row(row: Sequence[Any]) -> TaskRecord:
    """The record of a plain ``sqlite3`` row of :data:`TASK_COLUMNS_SQL` (JSON as text,
    booleans as integers)."""
    values = list(row)
    for i in _JSON:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    values[_BOOL] = bool(values[_BOOL])
    return TaskRecord(*values)
