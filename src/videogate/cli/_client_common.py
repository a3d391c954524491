"""What the client commands share: connection options, errors, output, the wait display.

Only the SDK (``videogate.client``) and typer / rich are imported here: these commands
run from the client-only install.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from videogate.cli._console import make_console
from videogate.client import (
    AsyncClient,
    ConfigurationError,
    InvalidReference,
    TaskError,
    TaskFailed,
    TaskState,
    TaskTimeout,
    VideogateClientError,
)

# Exit codes of the client commands.
EXIT_OK = 0
EXIT_FAILED = 1  # the task failed, or the API refused
EXIT_USAGE = 2  # bad arguments or configuration
EXIT_TIMEOUT = 3  # gave up waiting; the task goes on
EXIT_INTERRUPTED = 130  # Ctrl-C: detached, the task goes on


class Api(StrEnum):
    videogate = "videogate"
    relay = "relay"
    ark = "ark"


BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="VIDEOGATE_BASE_URL",
        help="The API's base URL (default http://127.0.0.1:8000).",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="VIDEOGATE_API_KEY", help="The API key.", show_default=False),
]
ApiOption = Annotated[
    Api,
    typer.Option(
        "--api",
        envvar="VIDEOGATE_API",
        help="The API's dialect: videogate, a /v1/videos relay, or Ark / BytePlus.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
PollOption = Annotated[
    float | None,
    typer.Option(
        "--poll-interval",
        envvar="VIDEOGATE_POLL_INTERVAL",
        help="Seconds between polls (default: the server's hint, else a backoff).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Give up waiting after this many seconds (the task goes on).",
        show_default=False,
    ),
]


@dataclass
class Connection:
    base_url: str | None
    api_key: str | None
    api: Api
    as_json: bool
    poll_interval: float | None = None

    def client(self) -> AsyncClient:
        return AsyncClient(
            self.base_url, self.api_key, api=self.api.value, poll_interval=self.poll_interval
        )

    def resume_flags(self) -> str:
        """Flags a resume command needs (never the key): what the environment lacks."""
        flags = []
        if self.base_url and self.base_url != os.environ.get("VIDEOGATE_BASE_URL"):
            flags.append(f"--base-url {shlex.quote(self.base_url)}")
        if self.api is not Api.videogate and self.api.value != os.environ.get("VIDEOGATE_API"):
            flags.append(f"--api {self.api.value}")
        return "".join(f" {f}" for f in flags)


out = make_console(highlight=False)
err = make_console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


def exit_code(exc: VideogateClientError) -> int:
    if isinstance(exc, TaskTimeout):
        return EXIT_TIMEOUT
    if isinstance(exc, ConfigurationError | InvalidReference):
        return EXIT_USAGE
    return EXIT_FAILED


def error_json(exc: VideogateClientError) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, TaskError):
        data["task_id"] = exc.task_id
    if isinstance(exc, TaskFailed):
        data["status"] = exc.status
        data["code"] = exc.code
    for name in ("status", "code", "param"):
        value = getattr(exc, name, None)
        if value is not None and name not in data:
            data[name] = value
    return data


def fail(exc: VideogateClientError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"error": error_json(exc)})
    else:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
    raise typer.Exit(exit_code(exc))


def run(conn: Connection, main: Callable[[], Awaitable[int]]) -> None:
    """Run a command's coroutine; SDK errors become a message and an exit code."""
    try:
        code = asyncio.run(_call(main))
    except VideogateClientError as exc:
        fail(exc, conn.as_json)
    if code:
        raise typer.Exit(code)


async def _call(main: Callable[[], Awaitable[int]]) -> int:
    return await main()


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_seconds(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# Rough render time per output second, when the server reports no progress (Seedance
# 1.5/2.0 latency hints: ~80/100/150 s for 10 s at 480p/720p/1080p), plus queueing.
_SECONDS_PER_SECOND = {"480p": 8.0, "720p": 10.0, "1080p": 15.0}
_QUEUE_SECONDS = 10.0


def estimate_total(state: TaskState, elapsed: float) -> float | None:
    """Expected total seconds from creation to result."""
    progress = state.progress
    if progress and 10 <= progress < 100 and elapsed > 1:
        return elapsed * 100 / progress
    seconds = state.duration or 5.0
    per = _SECONDS_PER_SECOND.get(state.resolution or "720p", 10.0)
    return _QUEUE_SECONDS + seconds * per


class WaitDisplay:
    """Status, progress, elapsed and an estimate on stderr while a task runs.

    A live rich display on a terminal; plain status-change lines when stderr is not a
    terminal; nothing with ``--json``.
    """

    def __init__(self, task_id: str | None, *, as_json: bool, label: str = "") -> None:
        self.task_id = task_id
        self.as_json = as_json
        self.live = not as_json and err.is_terminal
        self.plain = not as_json and not err.is_terminal
        self.label = label
        self.start = time.monotonic()
        self.last_status: str | None = None
        self.progress: Progress | None = None
        self.bar: TaskID | None = None

    def __enter__(self) -> WaitDisplay:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=err,
                transient=True,
            )
            self.progress.start()
            self.bar = self.progress.add_task(self._describe("starting"), total=100, eta="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _describe(self, status: str) -> str:
        who = self.task_id or self.label or "task"
        return f"{escape(who)} [bold]{escape(status)}[/bold]"

    def note(self, message: str) -> None:
        if self.progress is not None and self.bar is not None:
            self.progress.update(self.bar, description=self._describe(message))
        elif self.plain:
            err.print(escape(message))

    def attach(self, task_id: str) -> None:
        self.task_id = task_id
        if self.plain:
            err.print(f"task {task_id} created")

    def update(self, state: TaskState) -> None:
        self.task_id = state.id
        elapsed = self._elapsed(state)
        total = estimate_total(state, elapsed)
        eta = ""
        if not state.done and total is not None:
            left = total - elapsed
            eta = f"~{human_seconds(left)} left" if left > 1 else "any moment"
        if self.progress is not None and self.bar is not None:
            self.progress.update(
                self.bar,
                description=self._describe(state.status),
                completed=state.progress or (100 if state.succeeded else 0),
                eta=eta,
            )
        elif self.plain and state.status != self.last_status:
            extra = f" ({eta})" if eta else ""
            err.print(f"{state.id} {state.status} after {human_seconds(elapsed)}{extra}")
        self.last_status = state.status

    def downloading(self, done: int, total: int | None) -> None:
        if self.progress is not None and self.bar is not None:
            pct = 100.0 if not total else done * 100 / total
            self.progress.update(
                self.bar,
                description=self._describe("downloading"),
                completed=pct,
                eta=human_bytes(done),
            )

    def _elapsed(self, state: TaskState) -> float:
        local = time.monotonic() - self.start
        if state.created_at:
            since = time.time() - state.created_at
            if local <= since < 86400:
                return since
        return local


def resolve_output(output: Path | None, task_id: str) -> Path:
    return output if output is not None else Path(f"{task_id}.mp4")


def saved_line(path: Path, size: int, seconds: float | None, state: TaskState) -> str:
    length = f", {seconds:.2f} s" if seconds else ""
    cost = f", {state.cost} {state.currency or ''}".rstrip() if state.cost else ""
    return f"saved {escape(str(path))} ({human_bytes(size)}{length}{cost}; task {state.id})"


def saved_json(path: Path, size: int, seconds: float | None, state: TaskState) -> dict[str, Any]:
    data = state.to_dict()
    data.update({"file": str(path), "bytes": size, "seconds": seconds})
    return data


def detach(conn: Connection, task_id: str | None, output: Path | None) -> NoReturn:
    """Ctrl-C: the task goes on; say how to pick it up again."""
    if task_id is None:
        err.print(
            "interrupted before the task id came back (if the create was already sent, "
            "`videogate list` shows the task)"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    target = resolve_output(output, task_id)
    command = f"videogate wait {task_id} -o {shlex.quote(str(target))}{conn.resume_flags()}"
    if conn.as_json:
        emit_json({"id": task_id, "status": "detached", "resume": command})
    else:
        err.print(f"\ndetached: task {task_id} keeps running (not cancelled). Resume with:")
        err.print(f"  {escape(command)}", soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED) from None
