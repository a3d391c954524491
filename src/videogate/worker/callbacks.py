"""Upstream callbacks: an unsigned hint that a task changed; we re-read, never trust.

Each task gets its own callback URL carrying an HMAC of its id, so a stranger cannot make
us poll arbitrary tasks, and the body (which anyone could forge) is ignored.
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


async def receive_callback(ctx: AppContext, token: str) -> None:
    """Make the task due now, so a worker re-reads it from the upstream; this process's
    worker is woken once that is written. On SQLite the write follows the answer
    (``store/due_hints.py``: a lost hint costs the regular poll schedule, never the task)."""
    task_id, _, _ = token.partition(".")
    if not task_id or not hmac.compare_digest(_token(ctx, task_id), token):
        raise NotFound("unknown callback")
    await ctx.store.tasks.poll_now(task_id, then=ctx.wakeup.set)
