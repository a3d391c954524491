"""Across processes on PostgreSQL: "a task just became due" as ``LISTEN/NOTIFY``.

An upstream callback reaches whichever API process the load balancer picks, and a create
lands in an API process with no worker; the worker that should act may be anywhere. The
write that makes a task due sends ``NOTIFY videogate_due`` in its own transaction
(delivered at commit, never for a rolled-back write; a create sends one right after its
commit for the creates committed meanwhile: ``pg_fastwrite.py``), and every worker
LISTENs on a connection of its own: a notification wakes its claim loop at once instead of at its
next periodic look (``worker_poll_interval``). A lost notification (the listener was
reconnecting) costs at most that interval: the periodic look still finds the task.

SQLite needs none of this: processes sharing one SQLite file are on one machine and
their periodic look is cheap; in-process creates and callbacks set the event directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

log = logging.getLogger("videogate.worker")

CHANNEL = "videogate_due"
RECONNECT_SECONDS = 2.0


def notify_due(task_id: str) -> Any:
    """The statement to run in a write's transaction (PostgreSQL only)."""
    return select(func.pg_notify(CHANNEL, task_id))


async def listen_for_due(database_url: str, wakeup: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``wakeup`` on every notification until ``stop``; reconnects after a failure."""
    # PostgreSQL deployments only: a SQLite one never loads the driver.
    import asyncpg

    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    while not stop.is_set():
        conn = None
        try:
            conn = await asyncpg.connect(dsn)
            await conn.add_listener(CHANNEL, lambda *_: wakeup.set())
            wakeup.set()  # anything that became due while we were not listening
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            await _first(stop.wait(), lost.wait())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("due-task notifications unavailable, retrying: %s", exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
