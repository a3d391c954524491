"""Readiness: can this process do its work right now? (``GET /readyz``)

``/healthz`` only says the process answers. ``/readyz`` also checks what the work needs:
the database, the blob store, a writable data dir and, when this process runs a worker,
that the worker loop still completes rounds (a worker stuck on a dead dependency keeps
the process alive but gets nothing done).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videogate.context import AppContext

CHECK_TIMEOUT = 5.0  # seconds one dependency check may take before it counts as down


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "checks": self.checks}


async def readiness(ctx: AppContext) -> Readiness:
    """Run every check (each bounded by ``CHECK_TIMEOUT``); "ok" or what is wrong."""
    checks: dict[str, str] = {}
    checks["database"] = await _check(_database(ctx))
    checks["blob_store"] = await _check(ctx.blobs.check())
    checks["data_dir"] = await _check(asyncio.to_thread(_writable, ctx.settings.data_dir))
    beat = ctx.heartbeat
    if beat.started_at is None:
        checks["worker"] = "not running in this process"
    else:
        checks["worker"] = beat.problem(ctx.settings.ready_worker_stale_seconds) or "ok"
    bad = [name for name, value in checks.items() if value != "ok" and name != "worker"]
    worker_bad = checks["worker"] not in ("ok", "not running in this process")
    return Readiness(ready=not bad and not worker_bad, checks=checks)


async def _check(work: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await work
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return "ok"


async def _database(ctx: AppContext) -> None:
    await ctx.store.ping()


def _writable(directory: Path) -> None:
    """Write, sync and remove a small file: a full disk or a read-only mount fails here."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".ready-")
    try:
        os.write(fd, b"ok")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)
