"""Two fake Ark upstreams for one model (a primary route and its failover), with faults at
configurable rates, dropped callbacks, and results that name the job that made them."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_plan import Plan
from fakes import ArkTask, FakeArk, Fault

MODEL = "doubao-seedance-2-0-fast-260128"
ROUTES = ("ark-a", "ark-b")
NONCE = re.compile(r"\[chaos ([0-9a-f]+)\]")
API_KEY_ENV = "CHAOS_ARK_KEY"


def nonce_of(prompt: str) -> str | None:
    """The task's nonce, which the harness writes into every prompt."""
    found = NONCE.search(prompt)
    return found.group(1) if found else None


def body_nonce(body: Any) -> str | None:
    """The nonce in an Ark create body (its text content item)."""
    if not isinstance(body, dict):
        return None
    for item in body.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            return nonce_of(str(item.get("text", "")))
    return None


@dataclass(frozen=True)
class Job:
    """One job an upstream created (and would bill)."""

    route: str
    id: str
    nonce: str | None
    status: str
    expected_video: bytes


@dataclass(frozen=True)
class FaultHit:
    """One upstream request that was answered with a fault."""

    route: str
    endpoint: str
    kind: str
    nonce: str | None


class Upstreams:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.fakes = {
            name: FakeArk(
                queued_seconds=plan.queued_seconds,
                running_seconds=plan.running_seconds,
                max_queued=10_000,
                callback_retries=1,
            )
            for name in ROUTES
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[Upstreams]:
        with contextlib.ExitStack() as stack:
            for fake in self.fakes.values():
                stack.enter_context(fake)
                fake.tag_results = True
            yield self

    def config(self, path: Path) -> Path:
        """The routes file: ark-a first, ark-b when ark-a fails or is full."""
        lines = ['[[groups]]\nname = "default"\n']
        for priority, (name, fake) in enumerate(self.fakes.items()):
            lines.append(
                f'[[routes]]\nname = "{name}"\nmodel = "{MODEL}"\nprovider = "ark"\n'
                f'base_url = "{fake.base_url}"\napi_key_env = "{API_KEY_ENV}"\n'
                f'upstream_model = "{MODEL}"\npriority = {priority}\n'
                f"max_in_flight = {self.plan.max_in_flight}\n"
                f"timeout_seconds = {self.plan.route_timeout_seconds}\n"
            )
        path.write_text("\n".join(lines))
        return path

    @property
    def api_key(self) -> str:
        return next(iter(self.fakes.values())).api_key

    def start_faults(self) -> None:
        plan, rates = self.plan, self.plan.rates
        hang = plan.route_timeout_seconds + 3
        for i, fake in enumerate(self.fakes.values()):
            fake.seed_faults(plan.seed * 100 + i)
            rules: list[tuple[str, Fault, str, float]] = []
            if plan.on("upstream_hang"):
                rules += [
                    ("upstream_hang", Fault.hang(hang, process=True), "create", rates.create_hang),
                    ("upstream_hang", Fault.hang(hang), "create", rates.create_hang / 2),
                    ("upstream_hang", Fault.hang(hang), "get", rates.poll_hang),
                ]
            if plan.on("upstream_unreadable_2xx"):
                rules.append(
                    (
                        "upstream_unreadable_2xx",
                        Fault.malformed_json(process=True),
                        "create",
                        rates.create_unreadable,
                    )
                )
            if plan.on("upstream_disconnect"):
                rules.append(
                    (
                        "upstream_disconnect",
                        Fault.disconnect(process=True),
                        "create",
                        rates.create_disconnect,
                    )
                )
            if plan.on("upstream_5xx"):
                rules += [
                    ("upstream_5xx", Fault.server_error(), "create", rates.create_5xx),
                    ("upstream_5xx", Fault.server_error(), "get", rates.poll_5xx),
                    ("upstream_5xx", Fault.server_error(), "list", rates.list_5xx),
                    ("upstream_5xx", Fault.server_error(), "result", rates.result_5xx),
                ]
            if plan.on("upstream_garbage"):
                rules += [
                    (
                        "upstream_garbage",
                        Fault.wrong_content_type(status=502),
                        "create",
                        rates.create_garbage,
                    ),
                    ("upstream_garbage", Fault.wrong_content_type(), "get", rates.poll_garbage),
                ]
            if i == 0:
                # Each fault once for sure on the primary route (the first requests get
                # them), then by chance: a short run exercises every fault.
                for _, fault, endpoint, probability in rules:
                    if probability > 0:
                        fake.inject(fault, endpoint, times=1)
            for _, fault, endpoint, probability in rules:
                if probability > 0:
                    fake.inject(fault, endpoint, times=None, probability=probability)
            if plan.on("callback_drop"):
                fake.callback_drop_rate = rates.callback_drop

    def stop_faults(self) -> None:
        for fake in self.fakes.values():
            fake.clear_faults()
            fake.callback_drop_rate = 0.0

    # What the upstreams saw ---------------------------------------------------------------

    def jobs(self) -> list[Job]:
        found: list[Job] = []
        for route, fake in self.fakes.items():
            tasks: dict[str, ArkTask] = {**fake.deleted_tasks, **fake.tasks}
            for job_id, task in tasks.items():
                found.append(
                    Job(
                        route,
                        job_id,
                        body_nonce(task.body),
                        task.status,
                        fake.expected_video(job_id),
                    )
                )
        return found

    def hits(self) -> list[FaultHit]:
        """Every faulted request, attributed to a task by nonce where it can be."""
        out: list[FaultHit] = []
        for route, fake in self.fakes.items():
            owner = {j.id: j.nonce for j in self.jobs() if j.route == route}
            for rec in fake.requests:
                if rec.fault is None:
                    continue
                nonce = body_nonce(rec.json)
                if nonce is None:
                    job = rec.path_params.get("task_id") or rec.path_params.get("name", "")
                    nonce = owner.get(job.split(".")[0])
                kind = {
                    "hang": "upstream_hang",
                    "malformed_json": "upstream_unreadable_2xx",
                    "disconnect": "upstream_disconnect",
                    "error": "upstream_5xx",
                    "wrong_content_type": "upstream_garbage",
                }[rec.fault]
                out.append(FaultHit(route, rec.endpoint, kind, nonce))
        return out

    def callbacks_dropped(self) -> int:
        return sum(f.callbacks_dropped for f in self.fakes.values())

    def requests_by_endpoint(self) -> Counter[str]:
        return Counter(r.endpoint for f in self.fakes.values() for r in f.requests)

    def internal_errors(self) -> list[str]:
        return [e for f in self.fakes.values() for e in f.internal_errors]
