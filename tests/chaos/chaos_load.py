"""The clients: several keys create tasks through whichever API process answers, poll
them to the end, cancel a few, and download every finished video.

Clients behave as a careful real client would: every create carries an
``Idempotency-Key``, and a create, poll or download that meets a dead process, a 5xx, a
429 or a 503 is tried again (on the other API process) until the run's deadline.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaos_upstream import MODEL

RETRY_PAUSE = 0.5
POLL_EVERY = 1.0
FINISHED = ("completed", "failed")


@dataclass
class ClientTask:
    """One task as its client saw it."""

    nonce: str
    key_index: int
    task_id: str | None = None
    refused: str | None = None  # the error code of a final create refusal (e.g. 402)
    status: str | None = None  # the last status the API showed
    cancel_sent: bool = False
    video: bytes | None = None
    gave_up: str | None = None  # what the client could not finish before the deadline
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def prompt(self) -> str:
        return f"a chaos test clip [chaos {self.nonce}]"


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


class Clients:
    def __init__(
        self,
        urls: list[str],
        keys: list[str],
        *,
        seed: int,
        cancel_share: float,
    ) -> None:
        self.urls = urls
        self.keys = keys
        self.rng = random.Random(seed)
        # Every n-th task is cancelled by its client (none when the share is 0).
        self.cancel_every = round(1 / cancel_share) if cancel_share > 0 else 0
        self.tasks: list[ClientTask] = []
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=3.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def _url(self, attempt: int) -> str:
        return self.urls[attempt % len(self.urls)]

    async def _call(
        self,
        ct: ClientTask,
        method: str,
        path: str,
        deadline: float,
        *,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response | None:
        """One request, tried again on infrastructure trouble until ``deadline``."""
        headers = {"Authorization": f"Bearer {self.keys[ct.key_index]}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        attempt = self.rng.randrange(len(self.urls))
        while time.monotonic() < deadline:
            try:
                r = await self._http.request(
                    method, self._url(attempt) + path, headers=headers, json=json
                )
            except httpx.HTTPError as exc:
                ct.errors[f"{method} {type(exc).__name__}"] += 1
            else:
                if not retryable(r.status_code):
                    return r
                ct.errors[f"{method} {r.status_code}"] += 1
            attempt += 1
            await asyncio.sleep(RETRY_PAUSE)
        return None

    async def run_task(self, index: int, deadline: float) -> ClientTask:
        ct = ClientTask(secrets.token_hex(6), index % len(self.keys))
        self.tasks.append(ct)
        body = {
            "model": MODEL,
            "prompt": ct.prompt,
            "duration": 4,
            "resolution": "480p",
            "generate_audio": True,
        }
        r = await self._call(
            ct, "POST", "/v1/videos", deadline, json=body, idempotency_key=ct.nonce
        )
        if r is None:
            ct.gave_up = "create"
            return ct
        if r.status_code != 200:
            error = r.json().get("error", {}) if "json" in r.headers.get("content-type", "") else {}
            ct.refused = f"{r.status_code} {error.get('code', r.text[:80])}"
            return ct
        ct.task_id = r.json()["id"]
        cancel_at = None
        if self.cancel_every and index % self.cancel_every == self.cancel_every // 2:
            cancel_at = time.monotonic() + self.rng.uniform(0.2, 3.0)
        while True:
            if cancel_at is not None and time.monotonic() >= cancel_at:
                cancel_at = None
                done = await self._call(ct, "POST", f"/v1/videos/{ct.task_id}/cancel", deadline)
                ct.cancel_sent = done is not None and done.status_code == 200
            r = await self._call(ct, "GET", f"/v1/videos/{ct.task_id}", deadline)
            if r is None:
                ct.gave_up = "poll"
                return ct
            if r.status_code != 200:
                ct.errors[f"GET {r.status_code}"] += 1
            else:
                task = r.json()
                ct.status = task["status"]
                if ct.status in FINISHED:
                    # A cancel that came after the task finished left it as it was.
                    if ct.status == "completed":
                        await self._download(ct, task, deadline)
                    return ct
            await asyncio.sleep(POLL_EVERY)

    async def _download(self, ct: ClientTask, task: dict[str, Any], deadline: float) -> None:
        """The signed URL first (no key needed); the content endpoint when that fails."""
        url = task.get("video_url")
        if isinstance(url, str):
            try:
                r = await self._http.get(url)
                if r.status_code == 200:
                    ct.video = r.content
                    return
                ct.errors[f"download {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                ct.errors[f"download {type(exc).__name__}"] += 1
        r2 = await self._call(ct, "GET", f"/v1/videos/{ct.task_id}/content", deadline)
        if r2 is not None and r2.status_code == 200:
            ct.video = r2.content
        else:
            answer = "no answer" if r2 is None else f"{r2.status_code} {r2.text[:200]}"
            ct.gave_up = f"download (content: {answer}; signed URL: {dict(ct.errors)})"

    async def run(self, count: int, spread: float, deadline: float) -> None:
        """``count`` tasks, their creates spread evenly over ``spread`` seconds, keys in
        turn."""
        jobs = []
        for i in range(count):
            jobs.append(asyncio.create_task(self.run_task(i, deadline)))
            await asyncio.sleep(spread / count)
        await asyncio.gather(*jobs)
