"""Create, read, list, cancel and delete tasks on behalf of a key."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence

from videogate.blobs.keys import reference_prefix, result_prefix
from videogate.context import AppContext
from videogate.errors import (
    AlreadyExists,
    Conflict,
    InsufficientBalance,
    InvalidRequest,
    ModelNotFound,
    NoAvailableRoute,
    NotFound,
)
from videogate.ids import new_id
from videogate.logs import bind, log_transition, request_id
from videogate.money import format_money
from videogate.providers import route_problem
from videogate.request import (
    GenerationRequest,
    Operation,
    Reference,
    check_probed_references,
    check_request,
    resolve_output,
    stored_surface,
)
from videogate.service.finished_cache import FinishedTaskCache
from videogate.service.keys import Caller
from videogate.service.limits import (
    check_unfinished_tasks,
    max_unfinished_tasks,
    unfinished_cap_error,
)
from videogate.service.references import check_routes_can_serve, resolve_references
from videogate.statuses import UNFINISHED
from videogate.store.records import TaskRecord, new_task
from videogate.store.tasks import UnfinishedCapReached
from videogate.views.relay import RequestView, RequestViews
from videogate.worker.webhooks import check_callback_url

TASK_PREFIX = "video"

log = logging.getLogger("videogate.tasks")


def request_fingerprint(req: GenerationRequest) -> str:
    body = json.dumps(req.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class TaskService:
    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        # Encoded poll responses of finished tasks (the API fills it; deletes here empty it).
        self.finished = FinishedTaskCache(ctx.settings.finished_cache_entries)
        ctx.task_changed.append(self.finished.invalidate)
        # What task bodies show of each task's stored request, parsed once per task (a
        # create fills it from the request it validated).
        self.views = RequestViews()

    def resolve_alias(self, req: GenerationRequest) -> GenerationRequest:
        """The request with an alias (``sora-2``) replaced by the model serving it; the
        alias is kept to be shown back to the client."""
        if req.alias is None and req.model in self._ctx.aliases:
            return req.model_copy(
                update={"model": self._ctx.aliases[req.model], "alias": req.model}
            )
        return req

    def check_model(self, caller: Caller, model: str) -> None:
        model = self._ctx.aliases.get(model, model)
        spec = self._ctx.models.get(model)
        if spec is None:
            known = ", ".join(sorted(self._ctx.models))
            raise ModelNotFound(
                f"model '{model}' does not exist; available models: {known}", param="model"
            )
        candidates = self._ctx.router.serving(model, caller.group)
        if not candidates:
            raise NoAvailableRoute(
                f"No available route for model {model} under group {caller.group}"
            )
        problems = [(r.name, route_problem(r)) for r in candidates]
        if all(problem is not None for _, problem in problems):
            # Route names are the operator's: they go to the log, the client gets the why.
            log.warning(
                "model %s cannot run: %s",
                model,
                "; ".join(f"route {name}: {problem}" for name, problem in problems),
            )
            raise NoAvailableRoute(
                f"model {model} cannot run here: "
                + "; ".join(sorted({str(problem) for _, problem in problems}))
            )

    async def create(
        self,
        caller: Caller,
        req: GenerationRequest,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[TaskRecord, bool]:
        """Accept a task; returns it and whether it was newly created."""
        ctx = self._ctx
        surface = req.surface  # relay, openai or ark: in the log line and the metrics
        req = self.resolve_alias(req)
        self.check_model(caller, req.model)
        spec = ctx.models[req.model]
        check_request(req, spec)
        check_routes_can_serve(req, ctx.router.serving(req.model, caller.group))
        # Only a retry with the same Idempotency-Key ever compares it (~25 µs to build).
        fingerprint = request_fingerprint(req) if idempotency_key is not None else None
        if idempotency_key is not None:
            if len(idempotency_key) > 255:
                raise InvalidRequest("Idempotency-Key is longer than 255 characters")
            existing = await ctx.store.tasks.by_idempotency(caller.key_id, idempotency_key)
            if existing is not None:
                if existing.request_hash != fingerprint:
                    raise Conflict(
                        "this Idempotency-Key was already used with a different request body; "
                        "use a new key for a new request"
                    )
                return existing, False

        await check_unfinished_tasks(ctx, caller)
        if req.callback_url is not None:  # refused before anything is written
            await check_callback_url(ctx, req.callback_url)
        task_id = new_id(TASK_PREFIX)
        resolved = await resolve_references(ctx, caller, task_id, req)
        try:
            check_probed_references(resolved.request, spec)
        except InvalidRequest:
            await ctx.blobs.delete_prefix(reference_prefix(task_id))
            raise
        now = ctx.clock.now()
        failed = resolved.unreachable
        _, width, height = resolve_output(resolved.request)
        hold_micros, price = ctx.billing.estimate(resolved.request, caller.group, width, height)
        task = new_task(
            id=task_id,
            key_id=caller.key_id,
            model=req.model,
            status="failed" if failed else "queued",
            request=resolved.request.model_dump(mode="json"),
            error_code=failed.code if failed else None,
            error_message=failed.message if failed else None,
            seed=req.seed if req.seed is not None and req.seed >= 0 else None,
            created_at=now,
            completed_at=now if failed else None,
            deadline_at=now + deadline_seconds(req, ctx.settings.task_deadline_seconds),
            next_run_at=None if failed else now,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            callback_url=req.callback_url,
            request_id=request_id(),
            currency=price["currency"],
            hold_micros=hold_micros,
            price=price,
        )
        try:
            stored = await ctx.store.tasks.insert(
                task, max_unfinished=max_unfinished_tasks(caller, ctx.settings.groups)
            )
        except UnfinishedCapReached as exc:
            await ctx.blobs.delete_prefix(reference_prefix(task_id))
            raise unfinished_cap_error(ctx.settings, exc.cap, exc.unfinished) from None
        except AlreadyExists:
            # A concurrent retry with the same Idempotency-Key won the race.
            if idempotency_key is None:
                raise
            existing = await ctx.store.tasks.by_idempotency(caller.key_id, idempotency_key)
            if existing is None or existing.request_hash != fingerprint:
                raise Conflict(
                    "this Idempotency-Key was already used with a different request body"
                ) from None
            return existing, False
        if stored is None:
            await ctx.blobs.delete_prefix(reference_prefix(task_id))
            key = await ctx.store.keys.get(caller.key_id)
            balance = key.balance_micros if key is not None else 0
            raise InsufficientBalance(
                f"this task needs a hold of {format_money(hold_micros)} {price['currency']} "
                f"but the key's balance is {format_money(balance)}; top it up "
                "(videogate keys topup KEY_ID AMOUNT) or ask for a shorter or smaller video"
            )
        task = stored
        self.views.remember(task.id, RequestView.of_request(resolved.request))
        bind(task_id=task.id, key_id=task.key_id)
        if failed:
            log_transition(log, task.id, task.status, f"{failed.code}: {failed.message}")
        else:
            log_transition(log, task.id, "queued", f"created on the {surface} surface")
        ctx.metrics.tasks_created.labels(task.model, surface).inc()
        if failed:
            ctx.metrics.tasks_finished.labels(task.model, surface, task.status).inc()
        else:
            ctx.metrics.count_money(task.currency or "USD", "held", hold_micros)
        ctx.wakeup.set()
        return task, True

    async def create_from_source(
        self,
        caller: Caller,
        source_id: str,
        operation: Operation,
        prompt: str,
        *,
        seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[TaskRecord, bool]:
        """Remix, edit or extend a finished video: a new task whose reference video 1 is the
        source's video (the upstream, or the sandbox, works from its frames), on the
        source's model, frame and length (extend: ``seconds`` more)."""
        src = await self.get(caller, source_id)
        if src.status != "succeeded" or src.media_deleted or not src.video_key:
            raise InvalidRequest(
                f"video {src.id} is not a completed video with its content, so it cannot be "
                f"used for a {operation}: wait until it is completed",
                param="video_id" if operation == "remix" else "video",
            )
        base = GenerationRequest.model_validate(src.request)
        ratio, _, _ = resolve_output(base)
        # Signed from a rounded clock so that a retried request builds the same fingerprint.
        now = math.floor(time.time() / 3600) * 3600
        url, _ = self._ctx.signer.sign(src.video_key, 7 * 86400, now=now)
        produced = round(src.seconds) if src.seconds else base.duration
        req = GenerationRequest(
            model=base.model,
            alias=base.alias,
            prompt=prompt,
            references=(Reference(kind="video", role="reference_video", url=url, index=1),),
            ratio=ratio,
            resolution=base.resolution,
            duration=seconds if operation == "extend" and seconds is not None else produced,
            generate_audio=base.generate_audio,
            surface="openai",
            size=base.size,
            operation=operation,
            source_task_id=src.id,
            source_seconds=float(src.seconds or produced) if operation == "extend" else None,
        )
        return await self.create(caller, req, idempotency_key=idempotency_key)

    async def get(self, caller: Caller, task_id: str) -> TaskRecord:
        task = (
            await self._ctx.store.tasks.get(task_id, caller.key_id) if _plausible(task_id) else None
        )
        if task is None:
            raise NotFound(f"no task '{task_id[:100]}' for this API key", param="task_id")
        return task

    async def list(
        self,
        caller: Caller,
        *,
        limit: int,
        after: str | None,
        order: str,
        statuses: Sequence[str] | None = None,
        model: str | None = None,
        search: str | None = None,
    ) -> tuple[list[TaskRecord], bool]:
        """A page of the caller's tasks after the cursor task ``after``.

        The cursor must be one of the caller's tasks that still exists: an unknown or
        deleted one is refused (never silently page one). Paging is keyset-based, so
        tasks deleted meanwhile never make a task show up twice.
        """
        if after is not None and (
            not _plausible(after) or await self._ctx.store.tasks.get(after, caller.key_id) is None
        ):
            raise InvalidRequest(
                f"after '{after[:100]}' is not a video of this API key (unknown or deleted); "
                "pass the last_id of the previous page, or omit 'after' for the first page",
                param="after",
            )
        rows = await self._ctx.store.tasks.page(
            caller.key_id,
            limit=limit + 1,
            after=after,
            order=order,
            statuses=statuses,
            model=model,
            search=search,
        )
        return rows[:limit], len(rows) > limit

    def _cancelled(self, task: TaskRecord) -> None:
        """The log line and the counts of an owner's cancel (the store refunded the hold)."""
        log_transition(log, task.id, "cancelled", "cancelled by its owner")
        metrics = self._ctx.metrics
        metrics.tasks_finished.labels(task.model, stored_surface(task.request), "cancelled").inc()
        metrics.count_money(task.currency or "USD", "refunded", task.hold_micros)

    async def cancel(self, caller: Caller, task_id: str) -> TaskRecord:
        """Cancel an unfinished task (its hold is refunded); a finished one is left as is."""
        task = await self.get(caller, task_id)
        if task.status in UNFINISHED and await self._ctx.store.tasks.cancel(
            task.id, caller.key_id, self._ctx.clock.now()
        ):
            self._cancelled(task)
            self.finished.invalidate(task.id)
            await self._ctx.blobs.delete_prefix(f"refs/{task.id}")
            return await self.get(caller, task_id)
        return task

    async def delete_for_owner(self, caller: Caller, task_id: str) -> TaskRecord:
        """OpenAI's DELETE: the task is gone for its owner at once, whatever its status.

        An unfinished task is cancelled first (refunded; the engine still cancels its
        upstream job). Its stored media and references are deleted. A second DELETE,
        like any read afterwards, is 404.
        """
        task = await self.get(caller, task_id)
        now = self._ctx.clock.now()
        if task.status in UNFINISHED and await self._ctx.store.tasks.cancel(
            task.id, caller.key_id, now
        ):
            self._cancelled(task)
        deleted = await self._ctx.store.tasks.mark_deleted(task.id, now)
        self.finished.invalidate(task.id)  # after the write (see FinishedTaskCache.ticket)
        if not deleted:
            raise NotFound(f"no task '{task_id[:100]}' for this API key", param="task_id")
        await self._ctx.blobs.delete_prefix(f"results/{task.key_id}/{task.id}")
        await self._ctx.blobs.delete_prefix(f"refs/{task.id}")
        return task

    async def cancel_or_delete(self, caller: Caller, task_id: str) -> TaskRecord:
        """Cancel an unfinished task; delete the stored media of a finished one."""
        task = await self.get(caller, task_id)
        now = self._ctx.clock.now()
        if task.status in UNFINISHED and await self._ctx.store.tasks.cancel(
            task.id, caller.key_id, now
        ):
            self._cancelled(task)
            self.finished.invalidate(task.id)
            await self._ctx.blobs.delete_prefix(reference_prefix(task.id))
            return await self.get(caller, task_id)
        await self._ctx.blobs.delete_prefix(result_prefix(task.key_id, task.id))
        await self._ctx.blobs.delete_prefix(reference_prefix(task.id))
        await self._ctx.store.tasks.mark_media_deleted(task.id, now)
        # After the write: a poll that read the row before it cannot cache it (ticket).
        self.finished.invalidate(task.id)
        return await self.get(caller, task_id)

    async def delete(self, caller: Caller, task_id: str) -> TaskRecord:
        """Delete a finished task for good (Ark's DELETE): its row, results and references.

        Afterwards the task is gone from every surface. Refused while the engine still has
        work on it (unfinished, or a cancel still to pass on to its upstream).
        """
        task = await self.get(caller, task_id)
        if task.status in UNFINISHED or task.next_run_at is not None:
            raise InvalidRequest(
                f"task {task.id} is still being worked on (or its cancel is still being "
                "passed on upstream): only finished tasks can be deleted",
                param="task_id",
            )
        await self._ctx.store.tasks.delete(task.id)
        self.finished.invalidate(task.id)
        await self._ctx.blobs.delete_prefix(result_prefix(task.key_id, task.id))
        await self._ctx.blobs.delete_prefix(reference_prefix(task.id))
        return task


def deadline_seconds(req: GenerationRequest, default: int) -> float:
    """Ark's ``execution_expires_after`` (seconds) when the client set one, else ours."""
    asked = req.extras.get("execution_expires_after")
    return float(asked) if isinstance(asked, int) and asked > 0 else float(default)


def _plausible(task_id: str) -> bool:
    return 0 < len(task_id) <= 40 and task_id.isascii()
