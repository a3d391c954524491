"""Concurrent creates against a key with a cap of unfinished tasks: exactly the cap gets
through, on SQLite and on PostgreSQL, through two app instances on one database (two
API processes' worth of connections)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from test_limits import BODY, client_for, make_settings, new_key, running
from test_store_contract import PG_ADMIN, _pg_available

CAP = 4
CREATES = 24


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield ""  # the default: SQLite in the data dir
        return
    if not await _pg_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"vg_creates_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_concurrent_creates_never_exceed_the_unfinished_cap(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with (
        running(settings) as one,
        running(
            settings,
        ) as two,
    ):
        headers = await new_key(one, max_unfinished_tasks=CAP)
        async with client_for(one) as a, client_for(two) as b:
            responses = await asyncio.gather(
                *(
                    (a if i % 2 else b).post("/v1/videos", json=BODY, headers=headers)
                    for i in range(CREATES)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: CAP, 429: CREATES - CAP}, [r.text for r in responses]
            for r in responses:
                if r.status_code == 429:
                    assert "at most 4 unfinished tasks" in r.json()["error"]["message"]
            listed = (await a.get("/v1/videos?limit=100", headers=headers)).json()["data"]
            assert len(listed) == CAP
            # Room again once one is cancelled; full again after one more create.
            assert (await a.delete(f"/v1/videos/{listed[0]['id']}", headers=headers)).is_success
            again = await asyncio.gather(
                *(b.post("/v1/videos", json=BODY, headers=headers) for _ in range(6))
            )
            assert Counter(r.status_code for r in again) == {200: 1, 429: 5}
