"""Trouble on our side (database gone, disk full, data dir read-only) is a 503 with
Retry-After in the surface's own error envelope, never a 500."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from conftest import TEST_BASE
from media_factory import png_bytes
from videogate.api.app import build_state, create_app
from videogate.blobs import BlobStore
from videogate.service.keys import create_key
from videogate.settings import Settings
from videogate.store import Store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ARK_TASKS = "/api/v3/contents/generations/tasks"
RELAY_BODY = {"model": "sandbox", "prompt": "a fox", "duration": 4}


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    # No in-process worker: its own survival is the engine's business (and tested there).
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        key = (await create_key(app.state.api.ctx.store, name="infra")).key
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE) as client:
            yield app, client, key


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        public_url=TEST_BASE,
        allow_private_urls=True,
        render_processes=1,
        key_cache_seconds=0,
        **kw,
    )


def unavailable(r: httpx.Response, *, ark: bool = False, says: str = "") -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}, error
    assert error["code"] == ("ServiceUnavailable" if ark else "service_unavailable"), error
    assert says in error["message"], error
    assert "retry" in error["message"]


async def every_surface(client: httpx.AsyncClient, key: str, says: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    # The relay JSON create, the OpenAI form create, and the Ark surface.
    unavailable(await client.post("/v1/videos", json=RELAY_BODY, headers=auth), says=says)
    form = {"model": (None, "sandbox"), "prompt": (None, "a fox"), "seconds": (None, "4")}
    unavailable(await client.post("/v1/videos", files=form, headers=auth), says=says)
    unavailable(await client.get(f"{ARK_TASKS}?page_size=5", headers=auth), ark=True, says=says)


@pytest.mark.postgres
async def test_a_dropped_postgresql_database_is_a_503_on_every_surface(tmp_path: Path) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError):
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"vg_infra_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        async with serve(settings_for(tmp_path, database_url=url)) as (_, client, key):
            auth = {"Authorization": f"Bearer {key}"}
            r = await client.post("/v1/videos", json=RELAY_BODY, headers=auth)
            assert r.status_code == 200, r.text
            # Every open connection is terminated and the database is gone.
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await every_surface(client, key, says="database is unavailable")
            r = await client.get(f"/v1/videos/{r.json()['id']}", headers=auth)
            unavailable(r, says="database is unavailable")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_an_unreachable_postgresql_server_is_a_503(tmp_path: Path) -> None:
    """The database server is down when a request comes: nothing listens on its port."""
    async with serve(settings_for(tmp_path)) as (app, client, key):
        down = Store.open(f"postgresql://postgres@127.0.0.1:{free_closed_port()}/videogate")
        app.state.api = build_state(dataclasses.replace(app.state.api.ctx, store=down))
        try:
            r = await client.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})
            unavailable(r, says="unreachable")
            r = await client.get(ARK_TASKS, headers={"Authorization": f"Bearer {key}"})
            unavailable(r, ark=True, says="unreachable")
        finally:
            await down.close()


def free_closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens


class FullDisk:
    """A blob store on a full disk: every write fails with ENOSPC, as the OS reports it."""

    def __init__(self, inner: BlobStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def put_file(self, key: str, source: Path) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)

    async def put_bytes(self, key: str, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)


async def test_a_full_disk_is_a_503_for_uploads(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as (app, client, key):
        ctx = app.state.api.ctx
        ctx.blobs = FullDisk(ctx.blobs)
        auth = {"Authorization": f"Bearer {key}"}
        files = {"file": ("ref.png", png_bytes(64, 64), "image/png")}
        unavailable(await client.post("/v1/files", files=files, headers=auth), says="disk is full")
        form: dict[str, tuple[str | None, bytes | str, str] | tuple[None, str]] = {
            "model": (None, "sandbox"),
            "prompt": (None, "a fox"),
            "input_reference": ("ref.png", png_bytes(640, 360), "image/png"),
        }
        r = await client.post("/v1/videos", files=form, headers=auth)
        unavailable(r, says="disk is full")


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` read-only for real: a read-only bind mount as root (who ignores
    permission bits), the permission bits otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = ["mount", "--bind", "-o", "ro", str(directory), str(directory)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount read-only here (no CAP_SYS_ADMIN)")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


async def test_a_read_only_data_dir_is_a_503(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path)) as (app, client, key):
        ctx = app.state.api.ctx
        auth = {"Authorization": f"Bearer {key}"}
        ctx.tmp_dir  # noqa: B018 - created now, while the data dir is writable
        with read_only(ctx.settings.data_dir):
            # New connections see the read-only file system (open ones keep their handles).
            await ctx.store.engine.dispose()
            files = {"file": ("ref.png", png_bytes(64, 64), "image/png")}
            r = await client.post("/v1/files", files=files, headers=auth)
            unavailable(r, says="not writable")
            r = await client.post("/v1/videos", json=RELAY_BODY, headers=auth)
            assert r.status_code == 503, r.text
            unavailable(r)
            await ctx.store.engine.dispose()


async def test_a_worker_that_ended_in_an_error_does_not_keep_the_store_open(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's stop closes the store whatever the in-process worker ended with: an
    engine left open keeps its pooled aiosqlite connections, never closed after."""
    from videogate.worker import Worker

    async def broken(self: Worker, stop: Any) -> None:
        await stop.wait()
        raise RuntimeError("the worker broke on its way out")

    monkeypatch.setattr(Worker, "run", broken)
    app = create_app(settings)
    with pytest.raises(RuntimeError, match="on its way out"):
        async with app.router.lifespan_context(app):
            store: Store = app.state.api.ctx.store
            assert await store.tasks.count(None) == 0  # a connection in the pool
    assert store.engine.pool.checkedin() == 0  # type: ignore[attr-defined]  # disposed
