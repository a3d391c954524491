"""The fake upstream's own ceiling, for ``upstream_bench.py``: how fast it takes creates and
answers polls when nothing but a bare client drives it.

Run as a subprocess (``python bench/_fake_load.py BASE_URL API_KEY TASKS CONCURRENCY [PID]``)
so the client does not share the fake's interpreter (and its GIL); prints one JSON line:
``{"creates_per_s": …, "gets_per_s": …, "errors": …}``, plus the fake's CPU per request
(``create_cpu_us``, ``get_cpu_us``) and its time waiting for a CPU (``…_waited_us``: the
machine's other load) when given the fake's PID, and the same for the client. Bounded: TASKS
creates, then TASKS polls, each phase at most 60 s.

The client is a minimal keep-alive HTTP/1.1 client on asyncio streams (pre-built requests,
only the status line and Content-Length parsed): httpx costs ~0.8 ms of CPU per request, 3-4×
the fake's own, so with it the "ceiling" was the client's and swung with the machine's load.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

MODEL = "doubao-seedance-2-0-fast-260128"
PHASE_SECONDS = 60.0
TASKS_PATH = "/contents/generations/tasks"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def sched_times(pid: int | str) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of every thread of ``pid``
    (``/proc/PID/task/*/schedstat``: nanoseconds, where ``stat``'s ticks are 10 ms)."""
    cpu = wait = 0
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            fields = path.read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        cpu, wait = cpu + int(fields[0]), wait + int(fields[1])
    return cpu / 1e9, wait / 1e9


def request_bytes(method: str, netloc: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def phase(
    host: str, port: int, requests: list[bytes], concurrency: int, creates: bool
) -> tuple[float, int, list[str]]:
    """Send ``requests`` over ``concurrency`` keep-alive connections; (seconds, errors, the
    ids of created tasks when ``creates``)."""
    pending = list(reversed(requests))
    ids: list[str] = []
    errors = 0
    deadline = time.monotonic() + PHASE_SECONDS

    async def drive() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while pending and time.monotonic() < deadline and errors < 100:
                writer.write(pending.pop())
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    match = _CONTENT_LENGTH.search(head)
                    if match is None:
                        raise ValueError("response without Content-Length")
                    body = await reader.readexactly(int(match.group(1)))
                except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                    errors += 1
                    print(f"request failed: {exc!r}", file=sys.stderr)
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if head[9:12] != b"200":
                    errors += 1
                elif creates:
                    ids.append(str(json.loads(body)["id"]))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(drive() for _ in range(min(concurrency, len(requests)))))
    return time.perf_counter() - started, errors, ids


async def main(base_url: str, api_key: str, tasks: int, concurrency: int, pid: int | None) -> None:
    url = urlsplit(base_url)
    host, port, base = url.hostname or "127.0.0.1", url.port or 80, url.path.rstrip("/")
    body = json.dumps(
        {
            "model": MODEL,
            "content": [{"type": "text", "text": "ceiling"}],
            "duration": 4,
            "resolution": "480p",
        }
    ).encode()
    create = request_bytes("POST", url.netloc, base + TASKS_PATH, api_key, body)
    fake_0, own_0 = sched_times(pid or "self"), sched_times("self")
    create_s, create_errors, ids = await phase(host, port, [create] * tasks, concurrency, True)
    fake_1 = sched_times(pid or "self")
    gets = [request_bytes("GET", url.netloc, f"{base}{TASKS_PATH}/{i}", api_key) for i in ids]
    get_s, get_errors, _ = await phase(host, port, gets, concurrency, False)
    fake_2, own_2 = sched_times(pid or "self"), sched_times("self")
    figures = {
        "creates_per_s": len(ids) / create_s if create_s > 0 else 0.0,
        "gets_per_s": (len(gets) - get_errors) / get_s if get_s > 0 else 0.0,
        "errors": create_errors + get_errors,
    }
    # Per request, in µs: CPU time, and time runnable but waiting for a CPU (the machine's
    # other load). The client's CPU near 1 / the rate: the client was the limit.
    requests = max(tasks + len(gets), 1)
    figures["client_cpu_us"] = (own_2[0] - own_0[0]) / requests * 1e6
    figures["client_waited_us"] = (own_2[1] - own_0[1]) / requests * 1e6
    if pid is not None:
        figures["create_cpu_us"] = (fake_1[0] - fake_0[0]) / max(tasks, 1) * 1e6
        figures["create_waited_us"] = (fake_1[1] - fake_0[1]) / max(tasks, 1) * 1e6
        figures["get_cpu_us"] = (fake_2[0] - fake_1[0]) / max(len(gets), 1) * 1e6
        figures["get_waited_us"] = (fake_2[1] - fake_1[1]) / max(len(gets), 1) * 1e6
    print(json.dumps(figures))


if __name__ == "__main__":
    url, key, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fake_pid = int(sys.argv[5]) if len(sys.argv) > 5 else None
    asyncio.run(main(url, key, min(n, 5000), min(c, 256), fake_pid))
