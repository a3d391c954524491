"""The ``videogate batch`` command: options, the run, the exit code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from videogate.cli._client_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Api,
    ApiKeyOption,
    ApiOption,
    BaseUrlOption,
    Connection,
    JsonOption,
    PollOption,
    emit_json,
    err,
    out,
    run,
)
from videogate.cli.batch.jobs import BatchError, load_jobs
from videogate.cli.batch.journal import JOURNAL, RESULTS, Journal
from videogate.cli.batch.runner import Batch, Tally
from videogate.client import (
    DEFAULT_MODEL,
    AsyncClient,
    VideogateClientError,
)


def batch_command(
    jobs_file: Annotated[
        Path, typer.Argument(help="A JSON-lines file: one request per line.", show_default=False)
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for the clips, results.jsonl and the journal."),
    ] = Path("out"),
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="Tasks in flight at once.")
    ] = 4,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", envvar="VIDEOGATE_MODEL", help="Model for lines that name none."
        ),
    ] = DEFAULT_MODEL,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Stop waiting for a task after this many seconds (it goes on; rerun to resume).",
            show_default=False,
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Create new tasks for lines that failed before."),
    ] = False,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    api: ApiOption = Api.videogate,
    poll_interval: PollOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run every line of a jobs file, resumably.

    Each line is a JSON object: "prompt" (required), "model", "image" (path or URL, or a
    list), "first_frame", "last_frame", "video", "audio" (path/URL or list), "ratio",
    "duration", "resolution", "seed", "generate_audio", "watermark",
    "return_last_frame", "extra" (more body fields) and "out" (file name in the out dir;
    default NNNN.mp4 by line number). Relative paths are relative to the jobs file.

    Writes results.jsonl (one line per job: id, status, file, seconds, cost or error)
    and a journal: run the same command again after an interruption to resume without
    creating any task twice.
    """
    conn = Connection(base_url, api_key, api, as_json, poll_interval)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = load_jobs(jobs_file, out_dir, model)
    except (BatchError, OSError) as exc:
        _usage_error(str(exc), as_json)
    tally_box: list[Tally] = []

    async def main() -> int:
        async with conn.client() as client:
            journal = Journal(out_dir / JOURNAL)
            try:
                _check_header(journal, client, jobs_file)
                batch = Batch(
                    client,
                    jobs,
                    journal,
                    out_dir,
                    concurrency=concurrency,
                    timeout=timeout,
                    retry_failed=retry_failed,
                    as_json=as_json,
                )
                tally_box.append(batch.tally)
                try:
                    tally = await batch.run()
                except BaseExceptionGroup as group:
                    fatal = group.subgroup(VideogateClientError)
                    if fatal is not None:
                        raise _first(fatal) from None
                    raise
            finally:
                journal.close()
        summary: dict[str, Any] = {
            "total": tally.total,
            "succeeded": tally.succeeded,
            "failed": tally.failed,
            "unfinished": tally.unfinished,
            "results": str(out_dir / RESULTS),
        }
        if as_json:
            emit_json(summary)
        else:
            line = (
                f"{summary['succeeded']}/{tally.total} saved in {escape(str(out_dir))}, "
                f"{tally.failed} failed, {tally.unfinished} unfinished; "
                f"manifest {escape(str(summary['results']))}"
            )
            out.print(line)
            if tally.unfinished:
                out.print("run the same command again to resume the unfinished lines")
        if tally.failed:
            return EXIT_FAILED
        return EXIT_TIMEOUT if tally.unfinished else 0

    try:
        run(conn, main)
    except BatchError as exc:
        _usage_error(str(exc), as_json)
    except KeyboardInterrupt:
        done = tally_box[0].succeeded if tally_box else 0
        message = (
            f"interrupted with {done} clip(s) saved; the tasks go on. Run the same command "
            "again to resume (no task is created twice)."
        )
        if as_json:
            emit_json({"status": "interrupted", "message": message})
        else:
            err.print(f"\n{message}")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _first(group: BaseExceptionGroup[VideogateClientError]) -> VideogateClientError:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    raise AssertionError("empty exception group")


def _check_header(journal: Journal, client: AsyncClient, jobs_file: Path) -> None:
    header = journal.header
    if header is None:
        journal.record(
            {
                "event": "batch",
                "version": 1,
                "api": client.api,
                "base_url": client.base_url,
                "jobs": str(jobs_file.resolve()),
                "at": time.time(),
            }
        )
        return
    if header.get("api") != client.api or header.get("base_url") != client.base_url:
        raise BatchError(
            f"{journal.path} belongs to a batch against {header.get('api')} at "
            f"{header.get('base_url')}, not {client.api} at {client.base_url}: use the same "
            "--api/--base-url to resume it, or another --out directory"
        )


def _usage_error(message: str, as_json: bool) -> None:
    if as_json:
        emit_json({"error": {"type": "BatchError", "message": message}})
    else:
        err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(EXIT_USAGE)
