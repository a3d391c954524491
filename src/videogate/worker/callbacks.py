"""Upstream callbacks: an unsigned hint that a task changed; we re-read, never trust.

Each task gets its own callback URL carrying an HMAC of its id, so a stranger cannot make
us poll arbitrary tasks. The body (which anyone could forge) never becomes a result. Its
status is believed for one thing only: a callback that says the job is still ``queued`` or
``running`` (Ark sends one on creation and on each change) is answered without making the
task due. A forged one costs at most the task's regular poll schedule; every other body,
unreadable ones included, makes the task due now. Before, each new job's two early
callbacks put it at the head of the queue for a poll that could only say "running", ahead
of the tasks still waiting to be submitted.
"""

from __future__ import annotations

import hashlib
import hmac

from videogate.context import AppContext
from videogate.errors import NotFound


def _token(ctx: AppContext, task_id: str) -> str:
    mac = hmac.new(ctx.signer.secret, f"callback\n{task_id}".encode(), hashlib.sha256)
    return f"{task_id}.{mac.hexdigest()[:32]}"


def ark_callback_url(ctx: AppContext, task_id: str) -> str | None:
    """Our callback URL for ``task_id``, when clients can reach us (a public URL is set)."""
    if not ctx.settings.public_url:
        return None
    return f"{ctx.settings.public_url}/v1/callbacks/ark/{_token(ctx, task_id)}"


#: What a callback may claim that needs no poll now: the job has not ended.
NOT_ENDED = frozenset({"queued", "running"})


async def receive_callback(ctx: AppContext, token: str, claimed_status: str | None = None) -> None:
    """Make the task due now, so a worker re-reads it from the upstream; this process's
    worker is woken once that is written. On SQLite the write follows the answer
    (``store/due_hints.py``: a lost hint costs the regular poll schedule, never the task)."""
    task_id, _, _ = token.partition(".")
    if not task_id or not hmac.compare_digest(_token(ctx, task_id), token):
        raise NotFound("unknown callback")
    if claimed_status in NOT_ENDED:
        return
    await ctx.store.tasks.poll_now(task_id, then=ctx.wakeup.set)
