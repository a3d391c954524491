"""``videogate batch jobs.jsonl --out DIR``: many clips, resumable after any interruption.

Each line of ``jobs.jsonl`` is one request (keys in :data:`JOB_KEYS`). Lines run with at
most ``--concurrency`` tasks in flight; each clip is downloaded as soon as it is ready.

``DIR/journal.jsonl`` is written (and fsynced) before and after every create: a line's
``Idempotency-Key`` and request before the ``POST``, its task id right after, its result
at the end. Running the same command again replays the journal: finished lines are
skipped, created tasks are waited for by id, and a create that may or may not have
reached the server is re-sent with the same key and body (videogate returns the same
task) or, against a relay or Ark, looked up among the recent tasks before creating anew.
``DIR/results.jsonl`` is the manifest: one line per job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
from videogate.client import (
    DEFAULT_MODEL,
    APIStatusError,
    AsyncClient,
    AsyncTask,
    Audio,
    AuthenticationError,
    DownloadError,
    Image,
    InsufficientBalanceError,
    InvalidReference,
    PermissionDeniedError,
    PreparedRequest,
    Reference,
    TaskFailed,
    TaskState,
    TaskTimeout,
    Video,
    VideogateClientError,
    mp4_duration,
    new_idempotency_key,
)

JOURNAL = "journal.jsonl"
RESULTS = "results.jsonl"
# Keys of one jobs.jsonl line and the JSON types each takes.
JOB_KEYS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "model": (str,),
    "image": (str, list),
    "first_frame": (str,),
    "last_frame": (str,),
    "video": (str, list),
    "audio": (str, list),
    "ratio": (str,),
    "duration": (int,),
    "resolution": (str,),
    "seed": (int,),
    "generate_audio": (bool,),
    "watermark": (bool,),
    "return_last_frame": (bool,),
    "out": (str,),
    "extra": (dict,),
}
MAX_STORED_BODY = 256 * 1024  # bigger bodies (inline data: URLs) are rebuilt on resume
ADOPT_SKEW = 600.0  # seconds of clock difference tolerated when recovering a create
# Whole-batch failures: every other line would hit them too.
FATAL = (AuthenticationError, InsufficientBalanceError, PermissionDeniedError)


class BatchError(Exception):
    """A problem with the jobs file, the journal or the out dir: nothing was sent."""


# ---- jobs -------------------------------------------------------------------------------


@dataclass
class Job:
    """One line of the jobs file."""

    line: int
    digest: str
    prompt: str
    options: dict[str, Any]
    references: list[Reference]
    out_name: str
    out_path: Path


def _as_list(value: str | list[Any]) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _source(value: str, base: Path) -> str:
    if value.startswith(("http://", "https://", "data:", "asset://")):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_job(line_no: int, raw: str, base: Path, out_dir: Path, model: str) -> Job:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BatchError(f"line {line_no}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BatchError(f"line {line_no}: expected a JSON object")
    unknown = sorted(set(data) - set(JOB_KEYS))
    if unknown:
        raise BatchError(
            f"line {line_no}: unknown key(s) {', '.join(unknown)}; known: {', '.join(JOB_KEYS)}"
        )
    for key, value in data.items():
        types = JOB_KEYS[key]
        ok = isinstance(value, types)
        if isinstance(value, bool) and bool not in types:
            ok = False  # JSON true is not a number here
        if key in ("image", "video", "audio") and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            names = " or ".join("list of strings" if t is list else t.__name__ for t in types)
            raise BatchError(f"line {line_no}: '{key}' must be a {names}")
    prompt = data.get("prompt")
    if not prompt:
        raise BatchError(f"line {line_no}: 'prompt' is required")
    refs: list[Reference] = []
    if "first_frame" in data:
        refs.append(Image(_source(data["first_frame"], base), role="first_frame"))
    if "last_frame" in data:
        refs.append(Image(_source(data["last_frame"], base), role="last_frame"))
    refs += [Image(_source(v, base)) for v in _as_list(data.get("image", []))]
    refs += [Video(_source(v, base)) for v in _as_list(data.get("video", []))]
    refs += [Audio(_source(v, base)) for v in _as_list(data.get("audio", []))]
    options = {
        name: data[name]
        for name in (
            "ratio",
            "duration",
            "resolution",
            "seed",
            "generate_audio",
            "watermark",
            "return_last_frame",
            "extra",
        )
        if name in data
    }
    options["model"] = data.get("model", model)
    out_name = data.get("out") or f"{line_no:04d}.mp4"
    out_path = Path(out_name).expanduser()
    if not out_path.is_absolute():
        out_path = out_dir / out_path
    digest = hashlib.sha256(raw.strip().encode()).hexdigest()[:16]
    return Job(line_no, digest, prompt, options, refs, out_name, out_path)


def load_jobs(path: Path, out_dir: Path, model: str) -> list[Job]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchError(f"cannot read {path}: {exc.strerror or exc}") from None
    base = path.resolve().parent
    jobs: list[Job] = []
    problems: list[str] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            jobs.append(parse_job(line_no, raw, base, out_dir, model))
        except BatchError as exc:
            problems.append(str(exc))
    seen: dict[Path, int] = {}
    for job in jobs:
        other = seen.setdefault(job.out_path.resolve(), job.line)
        if other != job.line:
            problems.append(f"line {job.line}: 'out' {job.out_name} is also line {other}'s")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise BatchError(f"{path} has problems (nothing was sent):\n  {shown}{more}")
    if not jobs:
        raise BatchError(f"{path} has no jobs")
    return jobs


# ---- journal ----------------------------------------------------------------------------


@dataclass
class LineState:
    """What the journal knows about one line."""

    digest: str | None = None
    key: str | None = None
    submitted_at: float | None = None
    request: dict[str, Any] = field(default_factory=dict)  # the body without content
    body: dict[str, Any] | None = None
    id: str | None = None
    result: dict[str, Any] | None = None


class Journal:
    """Append-only JSON lines, each fsynced before the step it announces."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.lines: dict[int, LineState] = {}
        torn = False
        if path.exists():
            self._load()
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
        self._file = path.open("a", encoding="utf-8")
        if torn:  # end the torn record, so the next one starts on its own line
            self._file.write("\n")

    def _load(self) -> None:
        for raw in self.path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its step never happened
            if isinstance(event, dict):
                self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "batch":
            self.header = self.header or event
            return
        line = event.get("line")
        if not isinstance(line, int):
            return
        state = self.lines.setdefault(line, LineState())
        if kind == "submit":
            self.lines[line] = LineState(
                digest=event.get("digest"),
                key=event.get("key"),
                submitted_at=event.get("at"),
                request=event.get("request") or {},
                body=event.get("body"),
            )
        elif kind == "created":
            state.id = event.get("id")
        elif kind == "done":
            state.result = event.get("result")

    def record(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._apply(event)

    def close(self) -> None:
        self._file.close()

    def claimed_ids(self) -> set[str]:
        return {s.id for s in self.lines.values() if s.id}


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- the run ----------------------------------------------------------------------------


@dataclass
class Tally:
    total: int
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    skipped: int = 0
    running: int = 0


class Batch:
    def __init__(
        self,
        client: AsyncClient,
        jobs: list[Job],
        journal: Journal,
        out_dir: Path,
        *,
        concurrency: int,
        timeout: float | None,
        retry_failed: bool,
        as_json: bool,
    ) -> None:
        self.client = client
        self.jobs = jobs
        self.journal = journal
        self.out_dir = out_dir
        self.sem = asyncio.Semaphore(concurrency)
        self.timeout = timeout
        self.retry_failed = retry_failed
        self.as_json = as_json
        self.tally = Tally(total=len(jobs))
        self.results_path = out_dir / RESULTS
        self.progress: Progress | None = None
        self.bar: Any = None
        self.plain = not as_json and not err.is_terminal
        self.notes: list[str] = []

    # -- bookkeeping --

    def _row(self, job: Job) -> dict[str, Any]:
        state = self.journal.lines.get(job.line, LineState())
        if state.result is not None:
            return state.result
        return {
            "line": job.line,
            "id": state.id,
            "status": "unfinished",
            "file": None,
            "error": None,
        }

    def _write_manifest(self, *, final: bool) -> None:
        """All lines at the end; only the finished ones (kept) at the start, so that the
        lines appended while running are never duplicates."""
        rows = [
            self._row(job)
            for job in self.jobs
            if final or (self._row(job)["status"] != "unfinished" and self._done_already(job))
        ]
        write_results(self.results_path, rows)

    def _finish(self, job: Job, result: dict[str, Any]) -> None:
        self.journal.record({"event": "done", "line": job.line, "result": result})
        with self.results_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result, ensure_ascii=False) + "\n")
        if result["status"] == "succeeded":
            self.tally.succeeded += 1
            message = f"line {job.line}: saved {result['file']} ({result['id']})"
        else:
            self.tally.failed += 1
            error = result.get("error") or {}
            message = (
                f"line {job.line}: {result['status']}: {error.get('code')}: {error.get('message')}"
            )
        self._say(message)
        self._refresh()

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(escape(message))
        elif self.plain:
            err.print(escape(message))

    def _refresh(self) -> None:
        if self.progress is None:
            return
        t = self.tally
        self.progress.update(
            self.bar,
            completed=t.succeeded + t.failed,
            description=f"batch: {t.succeeded} saved, {t.failed} failed, {t.running} running",
        )

    # -- the lines --

    def _done_already(self, job: Job) -> bool:
        state = self.journal.lines.get(job.line)
        if state is None or state.result is None:
            return False
        if state.result.get("status") == "succeeded":
            return job.out_path.exists()
        return not self.retry_failed

    def check_digests(self) -> None:
        for job in self.jobs:
            state = self.journal.lines.get(job.line)
            if state is not None and state.digest not in (None, job.digest):
                raise BatchError(
                    f"line {job.line} of the jobs file changed since {self.journal.path} was "
                    "written: restore it, or use a new --out directory"
                )

    async def adopt_orphans(self) -> None:
        """Against a relay or Ark (no idempotency), a create whose id never reached the
        journal may still have made a task: find it among the recent tasks."""
        if self.client.honours_idempotency:
            return
        pending = [
            (job, state)
            for job in self.jobs
            if (state := self.journal.lines.get(job.line)) is not None
            and state.key
            and not state.id
            and state.result is None
        ]
        if not pending:
            return
        oldest = min((s.submitted_at or time.time()) for _, s in pending) - ADOPT_SKEW
        candidates: list[TaskState] = []
        after: str | None = None
        for _ in range(10):
            page = await self.client.list(limit=100, after=after)
            candidates += page.tasks
            if not page.has_more or any(
                t.created_at is not None and t.created_at < oldest for t in page.tasks
            ):
                break
            after = page.next_after
        claimed = self.journal.claimed_ids()
        free = sorted(
            (t for t in candidates if t.id not in claimed),
            key=lambda t: t.created_at or 0,
        )
        for job, state in sorted(pending, key=lambda p: p[1].submitted_at or 0):
            since = (state.submitted_at or 0) - ADOPT_SKEW
            for task in free:
                if (task.created_at is None or task.created_at >= since) and (
                    self.client._dialect.matches(state.request, task)
                ):
                    free.remove(task)
                    self.journal.record({"event": "created", "line": job.line, "id": task.id})
                    self._say(f"line {job.line}: recovered task {task.id}")
                    break

    async def _prepare(self, job: Job) -> PreparedRequest:
        options = dict(job.options)
        model = options.pop("model")
        return await self.client.prepare(
            job.prompt, model=model, references=job.references, **options
        )

    async def _task_for(self, job: Job) -> AsyncTask:
        """The line's task: attached by id, re-sent with its key, or created."""
        state = self.journal.lines.get(job.line)
        # A failed line again (--retry-failed) gets a new task; a succeeded one whose file
        # is gone is downloaded again from its task.
        retrying = (
            state is not None
            and state.result is not None
            and state.result.get("status") != "succeeded"
        )
        if state is not None and state.id and not retrying:
            return self.client.task(state.id)
        if state is not None and state.key and not retrying:
            # Sent before, outcome unknown: the same key and body.
            prepared = (
                PreparedRequest(state.body) if state.body is not None else await self._prepare(job)
            )
            key = state.key
        else:
            prepared = await self._prepare(job)
            key = new_idempotency_key()
            body_size = len(json.dumps(prepared.body))
            self.journal.record(
                {
                    "event": "submit",
                    "line": job.line,
                    "digest": job.digest,
                    "key": key,
                    "at": time.time(),
                    "request": {k: v for k, v in prepared.body.items() if k != "content"},
                    "body": prepared.body if body_size <= MAX_STORED_BODY else None,
                }
            )
        task = await self.client.submit(prepared, idempotency_key=key)
        self.journal.record({"event": "created", "line": job.line, "id": task.id})
        return task

    async def run_job(self, job: Job) -> None:
        if self._done_already(job):
            # Finished in an earlier run: counted, not redone.
            self.tally.skipped += 1
            result = self._row(job)
            if result["status"] == "succeeded":
                self.tally.succeeded += 1
            else:
                self.tally.failed += 1
            self._refresh()
            return
        async with self.sem:
            self.tally.running += 1
            self._refresh()
            try:
                await self._run_job(job)
            finally:
                self.tally.running -= 1
                self._refresh()

    async def _run_job(self, job: Job) -> None:
        task_id: str | None = None
        try:
            task = await self._task_for(job)
            task_id = task.id
            state = await task.wait(self.timeout, poll_interval=self.client.poll_interval)
            path = await task.download(job.out_path)
        except TaskFailed as exc:
            self._finish(
                job, self._failed(job, exc.task_id, exc.status, exc.code, exc.error_message)
            )
            return
        except TaskTimeout as exc:
            self.tally.unfinished += 1
            self._say(f"line {job.line}: {exc.task_id} still {exc.status}; run again to resume")
            return
        except FATAL:
            raise
        except APIStatusError as exc:
            if exc.status in (408, 429) or exc.status >= 500:
                self._unfinished(job, exc)
                return
            # Refused: no task was made (or the id is unknown); final until --retry-failed.
            self._finish(job, self._failed(job, task_id, "rejected", exc.code, exc.message))
            return
        except InvalidReference as exc:
            self._finish(job, self._failed(job, task_id, "rejected", "invalid_reference", str(exc)))
            return
        except DownloadError as exc:
            if exc.status is not None and exc.status < 500:
                # E.g. an Ark result past its 24 h: only a new task helps (--retry-failed).
                self._finish(job, self._failed(job, task_id, "failed", "download_failed", str(exc)))
            else:
                self._unfinished(job, exc)
            return
        except VideogateClientError as exc:
            self._unfinished(job, exc)
            return
        seconds = await asyncio.to_thread(mp4_duration, path) or state.duration
        size = (await asyncio.to_thread(path.stat)).st_size
        self._finish(
            job,
            {
                "line": job.line,
                "id": state.id,
                "status": "succeeded",
                "file": job.out_name,
                "bytes": size,
                "seconds": seconds,
                "cost": state.cost,
                "currency": state.currency,
                "tokens": state.tokens,
                "error": None,
            },
        )

    def _failed(
        self, job: Job, task_id: str | None, status: str, code: str | None, message: str | None
    ) -> dict[str, Any]:
        return {
            "line": job.line,
            "id": task_id,
            "status": status,
            "file": None,
            "error": {"code": code, "message": message},
        }

    def _unfinished(self, job: Job, exc: Exception) -> None:
        self.tally.unfinished += 1
        self._say(f"line {job.line}: {exc}; run again to resume")

    async def run(self) -> Tally:
        self.check_digests()
        self._write_manifest(final=False)
        if self.as_json or self.plain:
            await self._run_all()
        else:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
            ) as progress:
                self.progress = progress
                self.bar = progress.add_task("batch", total=len(self.jobs))
                try:
                    await self._run_all()
                finally:
                    self.progress = None
        self._write_manifest(final=True)
        return self.tally

    async def _run_all(self) -> None:
        await self.adopt_orphans()
        async with asyncio.TaskGroup() as group:
            for job in self.jobs:
                group.create_task(self.run_job(job))


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
