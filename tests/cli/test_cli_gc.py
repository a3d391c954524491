"""``videogate gc`` and ``migrate``: a dry run lists what would go (oldest first, with age
and size, a limit, JSON for scripts) and refuses to answer for a blob store it cannot
reach; both commands log as configured, with their own role."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fakes.s3 import S3Server
from videogate.blobs.keys import result_key, upload_key
from videogate.cli.main import app
from videogate.context import open_context
from videogate.ids import new_id
from videogate.service.keys import create_key
from videogate.settings import load_settings
from videogate.store.tables import StoredFile, Task

DAY = 86_400.0


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("VIDEOGATE_CONFIG", "VIDEOGATE_DATABASE_URL", "VIDEOGATE_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIDEOGATE_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    # The commands configure the root logger: the tests after these must not inherit it.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield run
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def seed(results: int, uploads: int, *, age_days: float = 10) -> dict[str, list[str]]:
    """Finished tasks with a stored result, and uploads, all ``age_days`` old."""

    async def run() -> dict[str, list[str]]:
        ctx = await open_context(load_settings())
        made: dict[str, list[str]] = {"tasks": [], "uploads": []}
        try:
            key = await create_key(ctx.store)
            for i in range(results):
                then = time.time() - age_days * DAY - i  # the first one is the newest
                task_id = new_id("video")
                video = result_key(key.id, task_id, "video.mp4")
                await ctx.blobs.put_bytes(video, b"v" * (1000 + i))
                async with ctx.store.sessions.begin() as s:
                    s.add(
                        Task(
                            id=task_id,
                            key_id=key.id,
                            model="sandbox",
                            status="succeeded",
                            request={"model": "sandbox", "prompt": "x"},
                            created_at=then,
                            updated_at=then,
                            completed_at=then,
                            deadline_at=then + 3600,
                            next_run_at=None,
                            video_key=video,
                        )
                    )
                made["tasks"].append(task_id)
            for i in range(uploads):
                then = time.time() - age_days * DAY - i
                file_id = new_id("file")
                blob = upload_key(key.id, file_id, ".png")
                size = await ctx.blobs.put_bytes(blob, b"p" * 2048)
                async with ctx.store.sessions.begin() as s:
                    s.add(
                        StoredFile(
                            id=file_id,
                            key_id=key.id,
                            blob_key=blob,
                            mime_type="image/png",
                            bytes=size,
                            created_at=then,
                        )
                    )
                made["uploads"].append(file_id)
        finally:
            await ctx.close()
        return made

    return asyncio.run(run())


def test_dry_run_lists_what_would_go_and_removes_nothing(cli: Any) -> None:
    made = seed(results=2, uploads=1)
    out = cli("gc", "--dry-run").output
    for task_id in made["tasks"]:
        assert task_id in out, out
    assert made["uploads"][0] in out, out
    assert "10d" in out and "2.0 KB" in out, out
    assert "would remove: 2 result sets" in out and "1 uploads" in out, out
    assert "only the oldest" not in out, out

    # JSON for scripts: every item with its kind, key, age and size; nothing went.
    again = json.loads(cli("gc", "--dry-run", "--json").stdout)
    assert again["dry_run"] is True
    assert again["counts"]["results"] == 2 and again["counts"]["uploads"] == 1
    results = [i for i in again["items"] if i["kind"] == "result"]
    assert [i["id"] for i in results] == made["tasks"][::-1]  # oldest first
    assert {i["bytes"] for i in results} == {1000, 1001}
    assert all(i["age_seconds"] > 9 * DAY for i in again["items"])
    assert results[0]["key"].startswith("results/") and results[0]["key"].endswith("/")
    upload = next(i for i in again["items"] if i["kind"] == "upload")
    assert upload["bytes"] == 2048 and upload["key"].startswith("uploads/")


def test_dry_run_limit_keeps_a_backlog_short(cli: Any) -> None:
    made = seed(results=3, uploads=0)
    out = cli("gc", "--dry-run", "--limit", "1").output
    oldest = made["tasks"][-1]
    assert oldest in out and made["tasks"][0] not in out, out
    assert "would remove: 3 result sets" in out, out
    assert "only the oldest 1 of each kind are listed" in out, out
    listed = json.loads(cli("gc", "--dry-run", "--limit", "1", "--json").stdout)
    assert [i["id"] for i in listed["items"]] == [oldest]


def test_gc_then_nothing_is_left_to_list(cli: Any) -> None:
    seed(results=1, uploads=1)
    removed = json.loads(cli("gc", "--json").stdout)
    assert removed["dry_run"] is False and "items" not in removed
    assert removed["counts"]["results"] == 1 and removed["counts"]["uploads"] == 1
    left = json.loads(cli("gc", "--dry-run", "--json").stdout)
    assert left["items"] == []
    assert left["counts"]["results"] == 0 and left["counts"]["uploads"] == 0


def test_dry_run_against_a_missing_bucket_fails(
    cli: Any,
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIDEOGATE_BLOB_URL", "s3://no-such-bucket-here/deploy")
    done = cli("gc", "--dry-run", ok=False)
    assert done.exit_code == 1, done.output
    assert "cannot reach the blob store" in done.output, done.output
    assert "would remove" not in done.output, done.output


def test_dry_run_against_an_unwritable_directory_fails(
    cli: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("VIDEOGATE_BLOB_URL", f"file://{blocker}/blobs")
    done = cli("gc", "--dry-run", ok=False)
    assert done.exit_code == 1, done.output
    assert "cannot reach the blob store" in done.output, done.output


@pytest.mark.parametrize("command", ["migrate", "gc"])
def test_maintenance_commands_log_as_configured(
    cli: Any, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from videogate.logs import LogSetup, current_setup

    monkeypatch.setenv("VIDEOGATE_LOG_FORMAT", "json")
    monkeypatch.setenv("VIDEOGATE_LOG_LEVEL", "info")
    cli(command)
    assert current_setup() == LogSetup("json", "info", command)
