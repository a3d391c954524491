"""Concurrent creates against a key with a cap of unfinished tasks: exactly the cap gets
through, on SQLite and on PostgreSQL, through two app instances on one database (two
API processes' worth of connections)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app_support import BODY, client_for, make_settings, new_key, running
from postgres_support import new_database

CAP = 4
CREATES = 24


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield ""  # the default: SQLite in the data dir
        return
    async with new_database("vg_creates") as url:
        yield url


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
