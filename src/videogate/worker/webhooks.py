"""Webhooks we send (API.md §5): each status change of a task with a ``callback_url`` is
POSTed there as the task object, signed per Standard Webhooks, until a 2xx answers.

The outbox is ``task_events``: one row per status change, written in the same transaction
as the change (``store/tasks.py``), so no change is lost. A :class:`WebhookDeliverer` runs
in every worker: it claims due events with a lease (``store/webhooks.py``), delivers them
and records every attempt in ``webhook_attempts`` (``videogate webhooks``).

- Order: a task's events go out one after another; event N+1 waits until N is delivered
  or given up. An event whose relay status equals the last delivered one (``running`` →
  ``fetching`` are both ``in_progress``) is skipped.
- Body: the task object as ``GET /v1/videos/{id}`` shows it (``relay_task``), as of the
  event: its status, and no error or final billing before the task finished. Built at
  delivery time, so a retry may carry fresher progress or signed URLs.
- Headers: ``webhook-id`` (``evt_<task id>_<event number>``, the same on every retry of one
  event: receivers deduplicate on it), ``webhook-timestamp``, ``webhook-signature``
  (``v1,<base64 HMAC-SHA256>`` keyed by the API key's ``whsec_…`` secret).
- Retries: any answer but 2xx (redirects are not followed), a connection error or a
  timeout (``webhook_timeout_seconds``) is retried after ``webhook_retry_base_seconds``,
  doubling each time (at most :data:`MAX_RETRY_DELAY`), up to ``webhook_max_attempts``
  attempts; then the event is given up (``failed``).
- At least once: a deliverer that dies mid-attempt leaves its lease to lapse, and another
  one delivers the event again (same ``webhook-id``).
- SSRF: the URL is checked by the guard at create and again at every attempt (DNS may have
  changed), and the request goes to the address the guard checked. A refused URL is
  recorded as a failed attempt and the event is given up at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from videogate.context import AppContext
from videogate.errors import InvalidRequest, ReferenceUnreachable, UnsafeURL
from videogate.fetch import METADATA_HINT, PRIVATE_HINT, send_pinned
from videogate.logs import bind
from videogate.request import GenerationRequest
from videogate.signing import UrlSigner
from videogate.statuses import RELAY_STATUS, TERMINAL
from videogate.store.records import TaskRecord
from videogate.store.sealing import SecretUnreadable
from videogate.store.tables import TaskEvent, WebhookAttempt
from videogate.store.webhooks import DELIVERED, FAILED, PENDING, SKIPPED
from videogate.views.ark import ark_task
from videogate.views.relay import relay_task

log = logging.getLogger("videogate.webhooks")

#: Longest wait between two attempts at one event.
MAX_RETRY_DELAY = 3600.0
#: Deliveries one worker has in flight at once.
MAX_IN_FLIGHT = 32
LABEL = "callback_url"
USER_AGENT = "videogate-webhooks/1"
ALLOW_PRIVATE = "VIDEOGATE_ALLOW_PRIVATE_URLS=1"


def retry_delay(base: float, attempts: int) -> float:
    """Wait after the ``attempts``-th failed attempt: base, 2×base, 4×base … capped."""
    return float(min(base * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY))


def webhook_id(event: TaskEvent) -> str:
    """Stable per event (the same on retries), unique across databases."""
    return f"evt_{event.task_id}_{event.id}"


def task_as_of(task: TaskRecord, status: str, at: float) -> TaskRecord:
    """``task`` as it stood when it entered ``status`` at ``at``."""
    if status in TERMINAL:
        return replace(task, status=status, updated_at=at)
    return replace(
        task,
        status=status,
        updated_at=at,
        error_code=None,
        error_message=None,
        completed_at=None,
        billing_state="held",
        progress=0 if status == "queued" else min(task.progress or 0, 99),
    )


OPENAI_EVENTS = {"succeeded": "video.completed"}  # every other terminal status: video.failed


def surface_of(task: TaskRecord) -> str:
    return GenerationRequest.model_validate(task.request).surface


def wanted(task: TaskRecord, status: str) -> bool:
    """OpenAI sends only ``video.completed`` / ``video.failed``: tasks created on its
    surface get no event for the statuses before those."""
    return surface_of(task) != "openai" or status in TERMINAL


def event_body(task: TaskRecord, event: TaskEvent, signer: UrlSigner, ttl: int) -> dict[str, Any]:
    """The webhook body, in the shape of the surface the task was created on: OpenAI's
    event (``video.completed`` / ``video.failed`` with ``data.id``), Ark's task object, or
    the relay task object, as of the event."""
    view = task_as_of(task, event.status, event.created_at)
    surface = surface_of(task)
    if surface == "openai":
        return {
            "id": webhook_id(event),
            "object": "event",
            "type": OPENAI_EVENTS.get(event.status, "video.failed"),
            "created_at": int(event.created_at),
            "data": {"id": task.id},
        }
    if surface == "ark":
        return ark_task(view, signer, ttl)
    return relay_task(view, signer, ttl)


def relay_status(status: str) -> str:
    return RELAY_STATUS.get(status, status)


def sign(secret: str, msg_id: str, timestamp: int, payload: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``payload``."""
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), payload)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(c, ConnectionRefusedError) for c in _causes(exc)):
            return "connection refused"
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"invalid HTTP response ({exc})" if str(exc) else "invalid HTTP response"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class WebhookDeliverer:
    """Delivers due webhook events until ``stop`` is set; runs inside every worker."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._active: set[asyncio.Task[None]] = set()

    @property
    def lease(self) -> float:
        """How long a claim on an event lasts: well beyond one attempt's time limit."""
        return max(self.settings.lease_seconds, 2 * self.settings.webhook_timeout_seconds + 10)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    started = await self.claim_and_start()
                except Exception:
                    log.exception("claiming webhook events failed; will retry")
                    started = 0
                if started == 0:
                    await self.ctx.clock.wait(stop.wait(), self.settings.worker_poll_interval)
        finally:
            # An attempt cut short keeps its lease; the event is retried when it lapses.
            for job in list(self._active):
                job.cancel()
            await asyncio.gather(*self._active, return_exceptions=True)

    async def claim_and_start(self) -> int:
        """Claim due events and start delivering them in the background."""
        free = MAX_IN_FLIGHT - len(self._active)
        if free <= 0:
            return 0
        events = await self.ctx.store.webhooks.claim_due(self.ctx.clock.now(), free, self.lease)
        for event in events:
            job = asyncio.create_task(self.deliver(event))
            self._active.add(job)
            job.add_done_callback(self._active.discard)
        return len(events)

    async def deliver_due(self) -> int:
        """Claim due events and deliver them, waiting for the outcome (tests, one-shots)."""
        events = await self.ctx.store.webhooks.claim_due(
            self.ctx.clock.now(), MAX_IN_FLIGHT, self.lease
        )
        await asyncio.gather(*(self.deliver(e) for e in events))
        return len(events)

    async def deliver(self, event: TaskEvent) -> None:
        """One attempt at one claimed event; never raises (but for cancellation)."""
        # Its own asyncio task (or a gather's): the binding ends with the attempt.
        bind(task_id=event.task_id)
        try:
            await self._deliver(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "webhook event %s of task %s: delivery broke; retried when its lease lapses",
                event.id,
                event.task_id,
            )

    async def _deliver(self, event: TaskEvent) -> None:
        store = self.ctx.store
        token = event.lease_until
        assert token is not None, "a claimed event has a lease"
        task = await store.tasks.get(event.task_id)
        if task is None or not task.callback_url:  # deleted meanwhile
            await store.webhooks.finish(event.id, token, state=SKIPPED)
            return
        bind(key_id=task.key_id, request_id=task.request_id)
        previous = await store.webhooks.last_delivered_status(task.id, event.id)
        if not wanted(task, event.status) or (
            previous is not None and relay_status(previous) == relay_status(event.status)
        ):
            await store.webhooks.finish(event.id, token, state=SKIPPED)
            return
        key = await store.keys.get(task.key_id)
        if key is None:
            await store.webhooks.finish(event.id, token, state=FAILED)
            return

        url = task.callback_url
        msg_id = webhook_id(event)
        now = self.ctx.clock.now()
        max_attempts = self.settings.webhook_max_attempts
        status_code: int | None = None
        error: str | None = None
        give_up = False
        started = self.ctx.clock.monotonic()
        if event.attempts > max_attempts:
            # Earlier claims never finished (their deliverer stopped mid-attempt).
            error = f"gave up: {event.attempts - 1} attempts did not finish"
            give_up = True
        else:
            body = event_body(task, event, self.ctx.signer, self.settings.url_ttl_seconds)
            payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
            try:
                secret = await store.keys.webhook_secret(key)
            except SecretUnreadable as exc:
                secret = ""
                error = f"the webhook secret of key {key.id} cannot be read: {exc}"
                give_up = True
            try:
                signed = sign(secret, msg_id, int(now), payload) if secret else None
            except (ValueError, EmptyWebhookSecretError):  # binascii.Error is a ValueError
                signed = None
                error = (
                    f"the webhook secret of key {key.id} is not valid base64 (a key created "
                    "before secrets were standard base64); create a new key"
                )
                give_up = True
            if signed is not None:
                headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signed}
                status_code, error, give_up = await self._post(url, headers, payload.encode())
        duration_ms = int((self.ctx.clock.monotonic() - started) * 1000)

        next_at: float | None = None
        if status_code is not None and 200 <= status_code < 300:
            state = DELIVERED
        elif give_up or event.attempts >= max_attempts:
            state = FAILED
        else:
            state = PENDING
            next_at = self.ctx.clock.now() + retry_delay(
                self.settings.webhook_retry_base_seconds, event.attempts
            )
        attempt = WebhookAttempt(
            event_id=event.id,
            task_id=task.id,
            url=url,
            webhook_id=msg_id,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            created_at=now,
        )
        await store.webhooks.finish(
            event.id, token, state=state, next_attempt_at=next_at, attempt=attempt
        )
        outcome = {DELIVERED: "delivered", FAILED: "failed"}.get(state, "retry")
        self.ctx.metrics.webhook_deliveries.labels(outcome).inc()
        detail = error or f"HTTP {status_code}"
        if state == FAILED:
            log.warning(
                "webhook %s (task %s, %s) given up after %d attempt(s): %s",
                msg_id,
                task.id,
                event.status,
                event.attempts,
                detail,
            )
        else:
            log.info(
                "webhook %s (task %s, %s), attempt %d: %s",
                msg_id,
                task.id,
                event.status,
                event.attempts,
                "delivered" if state == DELIVERED else f"{detail}; will retry",
            )

    async def _post(
        self, url: str, headers: dict[str, str], payload: bytes
    ) -> tuple[int | None, str | None, bool]:
        """POST once: (HTTP status, error, whether to give up at once: the URL was refused)."""
        timeout = self.settings.webhook_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                # Checked again at every attempt: the name may resolve elsewhere by now.
                target = await self.ctx.guard.resolve(url, label=LABEL, param=LABEL)
                response = await send_pinned(
                    self.ctx.http,
                    target,
                    method="POST",
                    headers=headers,
                    content=payload,
                    timeout=timeout,
                )
                try:
                    status = response.status_code
                    location = response.headers.get("location")
                finally:
                    await response.aclose()
        except TimeoutError:
            return None, f"timed out after {timeout:g} s", False
        except InvalidRequest as exc:  # UnsafeURL, or a URL that is not http(s)
            return None, exc.message, True
        except ReferenceUnreachable as exc:  # the name does not resolve (now)
            return None, exc.message, False
        except httpx.HTTPError as exc:
            return None, _describe(exc, timeout), False
        if 300 <= status < 400:
            return status, f"redirects are not followed (Location: {location})", False
        return status, None, False


CALLBACK_HINT = "callback_url must be a public http(s) URL"


async def check_callback_url(ctx: AppContext, url: str) -> None:
    """Refuse, as a 400 naming ``callback_url``, a URL the deliverer would not call: not
    http(s), unresolvable, or on a private address (unless ``allow_private_urls``)."""
    try:
        await ctx.guard.resolve(url, label=LABEL, param=LABEL)
    except UnsafeURL as exc:
        message = exc.message.replace(
            PRIVATE_HINT,
            f"{CALLBACK_HINT} (set {ALLOW_PRIVATE} to "
            "allow private addresses for local development)",
        )
        message = message.replace(
            METADATA_HINT,
            f"{CALLBACK_HINT}; cloud metadata endpoints are refused even with {ALLOW_PRIVATE}",
        )
        raise UnsafeURL(message, param=LABEL) from None
    except ReferenceUnreachable as exc:
        raise InvalidRequest(exc.message, param=LABEL) from None
