"""``videogate status | wait | download | cancel | list | models``: tasks by id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from videogate.cli._client_common import (
    EXIT_FAILED,
    Api,
    ApiKeyOption,
    ApiOption,
    BaseUrlOption,
    Connection,
    JsonOption,
    PollOption,
    TimeoutOption,
    WaitDisplay,
    detach,
    emit_json,
    err,
    human_seconds,
    out,
    resolve_output,
    run,
    saved_json,
    saved_line,
)
from videogate.client import TaskState, mp4_duration

TaskIdArg = Annotated[str, typer.Argument(help="The task id.", show_default=False)]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Where to save the mp4 (default ID.mp4).", show_default=False
    ),
]


def _when(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _state_table(state: TaskState) -> Table:
    table = Table(Column("field", style="bold"), "value", show_header=False, box=None)
    rows: list[tuple[str, Any]] = [
        ("id", state.id),
        (
            "status",
            state.status + (f" ({state.raw_status})" if state.raw_status != state.status else ""),
        ),
        ("progress", f"{state.progress}%" if state.progress is not None else None),
        ("model", state.model),
        ("created", _when(state.created_at)),
        ("finished", _when(state.completed_at) if state.completed_at else None),
        ("duration", f"{state.duration:g} s" if state.duration else None),
        ("size", state.size or state.resolution),
        ("ratio", state.ratio),
        ("seed", state.seed),
        ("cost", f"{state.cost} {state.currency or ''}".strip() if state.cost else None),
        ("tokens", state.tokens),
        ("video_url", state.video_url),
        ("url expires", _when(state.expires_at) if state.expires_at else None),
        ("error", f"{state.error_code}: {state.error_message}" if state.error_code else None),
    ]
    for name, value in rows:
        if value is not None and value != "":
            table.add_row(name, escape(str(value)))
    return table


def status_command(
    task_id: TaskIdArg,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    as_json: JsonOption = False,
) -> None:
    """Show a task's status."""
    conn = Connection(base_url, api_key, api, as_json)

    async def main() -> int:
        async with conn.client() as client:
            task = await client.get(task_id)
        assert task.state is not None
        if as_json:
            emit_json(task.state.to_dict())
        else:
            out.print(_state_table(task.state))
        return 0

    run(conn, main)


def wait_command(
    task_id: TaskIdArg,
    output: OutputOption = None,
    timeout: TimeoutOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    poll_interval: PollOption = None,
    as_json: JsonOption = False,
) -> None:
    """Wait for a task to finish; with -o, download the video too.

    Ctrl-C detaches (the task goes on)."""
    conn = Connection(base_url, api_key, api, as_json, poll_interval)

    async def main() -> int:
        async with conn.client() as client:
            task = client.task(task_id)
            with WaitDisplay(task_id, as_json=as_json) as display:
                state = await task.wait(timeout, on_progress=display.update)
                if output is None:
                    path = None
                else:
                    path = await task.download(output, on_bytes=display.downloading)
        if path is None:
            if as_json:
                emit_json(state.to_dict())
            else:
                out.print(f"{state.id} {state.status}")
            return 0
        await _report_saved(path, state, as_json)
        return 0

    try:
        run(conn, main)
    except KeyboardInterrupt:
        detach(conn, task_id, output)


async def _report_saved(path: Path, state: TaskState, as_json: bool) -> None:
    size = (await asyncio.to_thread(path.stat)).st_size
    seconds = await asyncio.to_thread(mp4_duration, path) or state.duration
    if as_json:
        emit_json(saved_json(path, size, seconds, state))
    else:
        out.print(saved_line(path, size, seconds, state))


def download_command(
    task_id: TaskIdArg,
    output: OutputOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    as_json: JsonOption = False,
) -> None:
    """Download a finished task's video.

    Resumes a broken download and gets a fresh URL for an expired one."""
    conn = Connection(base_url, api_key, api, as_json)

    async def main() -> int:
        async with conn.client() as client:
            task = await client.get(task_id)
            state = task.state
            assert state is not None
            if not state.done:
                message = (
                    f"task {task_id} is {state.status}: wait for it with "
                    f"videogate wait {task_id} -o {resolve_output(output, task_id)}"
                )
                if as_json:
                    emit_json({"error": {"type": "NotFinished", "message": message}})
                else:
                    err.print(f"[red]error:[/red] {escape(message)}")
                return EXIT_FAILED
            path = await task.download(resolve_output(output, task_id))
        await _report_saved(path, state, as_json)
        return 0

    run(conn, main)


def cancel_command(
    task_id: TaskIdArg,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    as_json: JsonOption = False,
) -> None:
    """Cancel an unfinished task (a finished one is left alone)."""
    conn = Connection(base_url, api_key, api, as_json)

    async def main() -> int:
        async with conn.client() as client:
            state = await client.task(task_id).cancel()
        status = state.status if state is not None else "deleted"
        if as_json:
            emit_json({"id": task_id, "status": status})
        else:
            out.print(f"{task_id} {status}")
        return 0

    run(conn, main)


def list_command(
    limit: Annotated[int, typer.Option(help="How many tasks.", min=1, max=100)] = 20,
    after: Annotated[
        str | None,
        typer.Option(
            help="Continue after this cursor (a previous page's last).", show_default=False
        ),
    ] = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    as_json: JsonOption = False,
) -> None:
    """List your tasks, newest first."""
    conn = Connection(base_url, api_key, api, as_json)

    async def main() -> int:
        async with conn.client() as client:
            page = await client.list(limit=limit, after=after)
        if as_json:
            emit_json(
                {
                    "data": [t.to_dict() for t in page.tasks],
                    "has_more": page.has_more,
                    "next": page.next_after,
                }
            )
            return 0
        table = Table(
            Column("id", no_wrap=True), "status", "model", "created", "length", "progress"
        )
        for t in page.tasks:
            table.add_row(
                escape(t.id),
                t.status,
                escape(t.model or "-"),
                _when(t.created_at),
                human_seconds(t.duration) if t.duration else "-",
                f"{t.progress}%" if t.progress is not None else "-",
            )
        out.print(table)
        if page.has_more:
            out.print(f"more: videogate list --after {page.next_after}")
        return 0

    run(conn, main)


def models_command(
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    as_json: JsonOption = False,
) -> None:
    """List the models your key can use."""
    conn = Connection(base_url, api_key, api, as_json)

    async def main() -> int:
        async with conn.client() as client:
            models = await client.models()
        if as_json:
            emit_json(models)
            return 0
        table = Table(Column("model", no_wrap=True), "description", "resolutions", "durations")
        for m in models:
            caps = m.get("capabilities") if isinstance(m.get("capabilities"), dict) else {}
            assert isinstance(caps, dict)
            durations = caps.get("durations") if isinstance(caps.get("durations"), dict) else None
            table.add_row(
                escape(str(m.get("id", "?"))),
                escape(str(m.get("description", ""))),
                " ".join(caps.get("resolutions", [])) if caps else "",
                f"{durations['min']}-{durations['max']} s" if durations else "",
            )
        out.print(table)
        return 0

    run(conn, main)
