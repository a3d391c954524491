"""``videogate mcp`` driven over stdio by the official MCP SDK's own client, against a
live videogate (sandbox model): create → wait (with progress) → download; errors come
back as tool errors carrying the server's message."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from client_support import SHORT, VIDEOGATE, Videogate, cli_env, png, vg
from conftest import free_port
from mcp import ClientSession, StdioServerParameters, stdio_client
from videogate.client import mp4_duration

__all__ = ["vg"]  # fixture

pytestmark = pytest.mark.slow

TOOLS = {
    "list_models",
    "create_video",
    "get_task",
    "wait_for_task",
    "download_video",
    "cancel_task",
    "list_tasks",
}


@asynccontextmanager
async def mcp_session(env: dict[str, str], *args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=VIDEOGATE, args=["mcp", *args], env=cli_env(env))
    async with (
        stdio_client(params, errlog=sys.stderr) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def payload(result: CallToolResult) -> Any:
    assert not result.is_error, text_of(result)
    if result.structured_content is not None:
        content = result.structured_content
        # A non-object return value is wrapped as {"result": …}.
        return content.get("result", content) if set(content) == {"result"} else content
    return json.loads(text_of(result))


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_create_wait_download_a_sandbox_clip(vg: Videogate, tmp_path: Path) -> None:
    image = png(tmp_path / "first.png")
    async with mcp_session(vg.env()) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool.name
        create_schema = tools["create_video"].input_schema["properties"]
        assert "480p" in create_schema["resolution"]["description"]

        models = payload(await session.call_tool("list_models", {}))
        sandbox = next(m for m in models if m["id"] == "sandbox")
        assert sandbox["capabilities"]["durations"]["min"] == 4
        assert "price" in sandbox

        created = payload(
            await session.call_tool(
                "create_video",
                {
                    "prompt": "a red square drifts to the right",
                    **SHORT,
                    "ratio": "16:9",
                    "references": [{"source": str(image), "role": "first_frame"}],
                },
            )
        )
        task_id = created["id"]
        assert created["status"] in ("queued", "running")
        assert created["done"] is False

        updates: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append((progress, total, message))

        done = payload(
            await session.call_tool(
                "wait_for_task",
                {"task_id": task_id, "timeout_seconds": 120},
                progress_callback=on_progress,
            )
        )
        assert done["status"] == "succeeded" and done["done"] is True
        assert done["video_url"].startswith(vg.base_url)
        assert updates, "wait_for_task sent no progress notification"
        assert updates[-1][0] == 100 and updates[-1][1] == 100
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(updates))

        target = tmp_path / "out" / "clip.mp4"
        saved = payload(
            await session.call_tool("download_video", {"task_id": task_id, "path": str(target)})
        )
        assert saved["path"] == str(target)
        assert target.stat().st_size == saved["bytes"] > 1000
        seconds = mp4_duration(target)
        assert seconds is not None and abs(seconds - 4) < 0.5

        got = payload(await session.call_tool("get_task", {"task_id": task_id}))
        assert got["status"] == "succeeded" and got["progress"] == 100
        listed = payload(await session.call_tool("list_tasks", {"limit": 5}))
        assert task_id in [t["id"] for t in listed["tasks"]]


async def test_errors_are_tool_errors_with_the_servers_message(vg: Videogate) -> None:
    async with mcp_session(vg.env()) as session:
        bad = await session.call_tool(
            "create_video", {"prompt": "too long", "model": "sandbox", "duration": 99}
        )
        assert bad.is_error
        message = text_of(bad)
        assert "HTTP 400" in message and "duration 99 is out of range" in message
        assert message.endswith("(parameter: duration)")

        unknown = await session.call_tool("get_task", {"task_id": "task_doesnotexist"})
        assert unknown.is_error and "HTTP 404" in text_of(unknown)

        missing = await session.call_tool(
            "create_video",
            {"prompt": "x", "model": "sandbox", "references": [{"source": "/no/such.png"}]},
        )
        assert missing.is_error and "/no/such.png" in text_of(missing)

        # The session survives its errors: a good call still works afterwards.
        assert payload(await session.call_tool("list_tasks", {"limit": 1}))["tasks"] is not None


async def test_cancel_a_queued_task(vg: Videogate) -> None:
    async with mcp_session(vg.env()) as session:
        created = payload(
            await session.call_tool(
                "create_video",
                {"prompt": "long", "model": "sandbox", "duration": 15, "resolution": "1080p"},
            )
        )
        cancelled = payload(await session.call_tool("cancel_task", {"task_id": created["id"]}))
        assert cancelled["status"] == "cancelled" and cancelled["done"] is True
        waited = await session.call_tool("wait_for_task", {"task_id": created["id"]})
        assert waited.is_error and "cancelled" in text_of(waited)


async def test_a_wrong_key_is_a_tool_error(vg: Videogate) -> None:
    async with mcp_session({**vg.env(), "VIDEOGATE_API_KEY": "vg-wrong"}) as session:
        result = await session.call_tool("list_models", {})
        assert result.is_error and "HTTP 401" in text_of(result)


async def test_streamable_http_transport(vg: Videogate, tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "mcp.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            VIDEOGATE,
            *("mcp", "--http", "--port", str(port)),
            env=cli_env(vg.env()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await wait_for_port(port, proc)
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            models = payload(await session.call_tool("list_models", {}))
            assert "sandbox" in [m["id"] for m in models]
            bad = await session.call_tool("get_task", {"task_id": "task_nope"})
            assert bad.is_error and "HTTP 404" in text_of(bad)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def wait_for_port(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            raise AssertionError(f"videogate mcp --http exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise AssertionError("videogate mcp --http did not listen within 30 s")


def test_without_a_key_it_says_so_on_stderr(vg: Videogate) -> None:
    env = cli_env({"VIDEOGATE_BASE_URL": vg.base_url})
    result = subprocess.run(
        [VIDEOGATE, "mcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""  # stdout is the protocol's
    assert "VIDEOGATE_API_KEY" in result.stderr
