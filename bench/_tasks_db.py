"""The server's ``tasks`` table, read-only, for ``upstream_bench.py``: cheaper and more precise
than polling the API."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Sample:
    total: int
    terminal: int
    submitted: int  # running (or later) with an upstream id
    leased: int  # held by a worker now
    due: int  # due now and held by nobody: the claim backlog


@dataclass
class Row:
    id: str
    status: str
    upstream_id: str | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    error_code: str | None
    error_message: str | None


class Db:
    """``tasks`` in the server's SQLite file, read-only (WAL: never blocks the server)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=5)
        return self._conn

    def sample(self) -> Sample:
        now = time.time()
        row = (
            self._connect()
            .execute(
                "SELECT count(*),"
                " coalesce(sum(status IN ('succeeded', 'failed', 'cancelled', 'expired')), 0),"
                " coalesce(sum(upstream_id IS NOT NULL"
                "   AND status IN ('running', 'fetching', 'succeeded')), 0),"
                " coalesce(sum(lease_owner IS NOT NULL AND lease_until >= :now), 0),"
                " coalesce(sum(next_run_at <= :now"
                "   AND (lease_until IS NULL OR lease_until < :now)), 0)"
                " FROM tasks",
                {"now": now},
            )
            .fetchone()
        )
        return Sample(*(int(x) for x in row))

    def rows(self) -> list[Row]:
        cursor = self._connect().execute(
            "SELECT id, status, upstream_id, created_at, started_at, completed_at,"
            " error_code, error_message FROM tasks"
        )
        return [Row(*r) for r in cursor.fetchall()]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
