"""Upstream callbacks' "look at this task now" on SQLite: answered at once, written in a batch.

A callback makes its task due at once (``next_run_at = 0``, ahead of every regular poll).
On SQLite that is a write, and every process on the file shares one write lock: a
callback that waited for its write waited behind the worker process's writes (the
answer took 0.14 / 1.76 s p50 / p99 at ~20 callbacks/s under load). So the callback is
**answered as soon as its hint is queued**, and the hints queued in one turn of the loop
are written right after by one ``UPDATE`` on the in-loop connection (``fastwrite``): one
write per turn however many callbacks arrived, off the answer's path.

Why not wait for the write: a callback is only a hint (its body is never read, the task
is re-read from the upstream) and every running task is on its regular poll schedule
anyway (``poll_max_interval_seconds`` at most). A hint lost (the process stopped before
its write, or the lock stayed taken for ``LOCK_WAIT_SECONDS``) costs that schedule, never
the task; an answer held for seconds costs every callback, and an upstream that times out
sends it again, adding load when the machine is busiest.

PostgreSQL does not come here: its hint is written and ``NOTIFY``'d in one transaction
before the answer (``leases.poll_now``), which waits for no lock of the table's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from videogate.store.fastwrite import SqliteTaskWriter

log = logging.getLogger("videogate.store")

# Far below SQLite's limit on bound parameters (32,766 since 3.32).
CHUNK = 500


class DueHints:
    """Queued callback hints, written one batch per turn of the loop (see the module doc)."""

    def __init__(self, writer: SqliteTaskWriter) -> None:
        self._writer = writer
        # Task id → what to run once its hint is written (in order of arrival).
        self._queue: dict[str, list[Callable[[], None]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def add(self, task_id: str, then: Callable[[], None] | None = None) -> None:
        """Queue "make ``task_id`` due now, if it is running"; ``then()`` runs once that
        is written (or once writing it failed: a wake-up too many costs one look)."""
        thens = self._queue.setdefault(task_id, [])
        if then is not None:
            thens.append(then)
        if self._flusher is None:
            # Runs on the loop's next turn: every callback answered in this one joins.
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    @property
    def pending(self) -> int:
        """Hints queued and not yet written."""
        return len(self._queue)

    async def drain(self) -> None:
        """Returns once every hint queued so far is written (or given up)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, {}
                try:
                    await self._write(list(batch))
                except Exception as exc:  # the regular poll schedule still finds them
                    log.warning("%d callback hints not written: %s", len(batch), exc)
                for thens in batch.values():
                    for then in thens:
                        then()
        finally:
            self._flusher = None

    async def _write(self, task_ids: list[str]) -> None:
        for start in range(0, len(task_ids), CHUNK):
            chunk = task_ids[start : start + CHUNK]
            marks = ", ".join("?" for _ in chunk)
            # 0, not now: due before every regular poll, so it jumps the queue.
            await self._writer.statement(
                f"UPDATE tasks SET next_run_at = 0.0 WHERE status = 'running' AND id IN ({marks})",
                chunk,
            )
