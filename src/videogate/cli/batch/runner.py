"""Running a batch: creates with at most N in flight, waits, downloads, interrupted creates."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from videogate.cli._client_common import (
    err,
)
from videogate.cli.batch.jobs import MAX_STORED_BODY, BatchError, Job
from videogate.cli.batch.journal import RESULTS, Journal, LineState, write_results
from videogate.client import (
    APIStatusError,
    AsyncClient,
    AsyncTask,
    AuthenticationError,
    DownloadError,
    InsufficientBalanceError,
    InvalidReference,
    PermissionDeniedError,
    PreparedRequest,
    TaskFailed,
    TaskState,
    TaskTimeout,
    VideogateClientError,
    mp4_duration,
    new_idempotency_key,
)

ADOPT_SKEW = 600.0  # seconds of clock difference tolerated when recovering a create


FATAL = (AuthenticationError, InsufficientBalanceError, PermissionDeniedError)


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
