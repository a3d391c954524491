"""What a submit reads before it picks a route, in one statement.

A submit needs the task's earlier attempts (an interrupted one is recovered, never sent
again), its key's group (which routes it may use), each candidate route's breaker state
and how many tasks run on it. Four ORM reads through aiosqlite's thread cost a submit
~6 ms of the worker's CPU under load; this is one ``UNION ALL`` (SQLite: on the in-loop
connection, a few tens of µs; PostgreSQL: one round trip). Nothing here is exact for
long: the reservation (``AttemptStore.reserve``) counts again inside its transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """An earlier attempt of the task, as much of it as a submit looks at."""

    id: str
    route: str
    state: str
    upstream_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class SubmitView:
    """The task's attempts (oldest first), its key's group (None: the key is gone), and
    per route: the end of its bench (routes with a breaker row) and its running tasks."""

    attempts: list[AttemptRef] = field(default_factory=list)
    group: str | None = None
    benched_until: dict[str, float | None] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)


@functools.cache
def view_sql(routes: int) -> str:
    """The statement for ``routes`` route names (named parameters ``:task``, ``:key``,
    ``:r0`` …: both ``sqlite3`` and SQLAlchemy's ``text()`` take them)."""
    names = ", ".join(f":r{i}" for i in range(routes)) or "NULL"
    # Every branch has the same columns: kind, three texts, a time, a count.
    return (
        "SELECT 'a' AS kind, id AS a, route AS b, state AS c, upstream_id AS d,"
        " created_at AS t, 0 AS n FROM attempts WHERE task_id = :task"
        " UNION ALL SELECT 'k', group_name, NULL, NULL, NULL, NULL, 0"
        " FROM api_keys WHERE id = :key"
        " UNION ALL SELECT 's', name, NULL, NULL, NULL, benched_until, 0"
        f" FROM route_state WHERE name IN ({names})"
        " UNION ALL SELECT 'n', route, NULL, NULL, NULL, NULL, count(*)"
        f" FROM tasks WHERE route IN ({names}) AND status IN ('running', 'fetching')"
        " GROUP BY route"
    )


def view_params(task_id: str, key_id: str, routes: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {"task": task_id, "key": key_id}
    params.update((f"r{i}", name) for i, name in enumerate(routes))
    return params


def view_from_rows(rows: Sequence[Sequence[Any]]) -> SubmitView:
    attempts: list[AttemptRef] = []
    group: str | None = None
    benched_until: dict[str, float | None] = {}
    in_flight: dict[str, int] = {}
    for kind, a, b, c, d, t, n in rows:
        if kind == "a":
            attempts.append(AttemptRef(id=a, route=b, state=c, upstream_id=d, created_at=t))
        elif kind == "k":
            group = a
        elif kind == "s":
            benched_until[a] = t
        else:
            in_flight[a] = int(n)
    attempts.sort(key=lambda x: x.created_at)
    return SubmitView(attempts, group, benched_until, in_flight)
