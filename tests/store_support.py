"""Shared by the store tests: an API key and a new task record with test defaults."""

from __future__ import annotations

import time
import uuid

from videogate.store import Store
from videogate.store.records import KeyRecord, TaskRecord, new_task


async def make_key(store: Store, name: str = "k") -> KeyRecord:
    key = KeyRecord(
        id=f"key_{uuid.uuid4().hex[:12]}",
        name=name,
        group="default",
        key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        key_prefix="vg-x",
        balance_micros=None,
        webhook_secret="whsec_x",
        created_at=time.time(),
    )
    key = await store.keys.insert(key)
    return key


def make_task(
    key_id: str,
    *,
    created: float | None = None,
    due: float | None = 0.0,
    status: str = "queued",
    idem: str | None = None,
) -> TaskRecord:
    now = created if created is not None else time.time()
    return new_task(
        id=f"video_{uuid.uuid4().hex[:20]}",
        key_id=key_id,
        model="sandbox",
        status=status,
        request={"model": "sandbox", "prompt": "p"},
        created_at=now,
        deadline_at=now + 3600,
        next_run_at=due,
        idempotency_key=idem,
        request_hash="h" if idem else None,
    )
