"""Encoded responses of finished tasks, kept in memory: a finished task never changes.

A poll of a finished task is answered from here without touching the database or
re-presenting the task. The only things that still change are the signed result URLs,
which are re-signed per signing window (see ``signing.url_window``): an entry serves only
the window it was built in, and the first poll of the next window rebuilds it from the
database. That same turn bounds how long another process's delete can go unnoticed here;
a delete in this process drops the entry at once (``invalidate``).

Bounded: at most ``max_entries`` tasks, the oldest dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from videogate.signing import url_window


class FinishedTaskCache:
    """(surface, task id) → the encoded body, for the key that owns the task."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._clock = clock
        # task id -> (owner key id, signing window, {surface: body})
        self._entries: OrderedDict[str, tuple[str, int, dict[str, bytes]]] = OrderedDict()
        self._invalidations = 0

    def get(self, surface: str, task_id: str, key_id: str) -> bytes | None:
        entry = self._entries.get(task_id)
        if entry is None or entry[0] != key_id or entry[1] != url_window(self._clock()):
            return None
        return entry[2].get(surface)

    def ticket(self) -> int:
        """Taken before reading a task; :meth:`put` ignores a body read before a later
        :meth:`invalidate` (a delete that raced the read)."""
        return self._invalidations

    def put(self, ticket: int, surface: str, task_id: str, key_id: str, body: bytes) -> None:
        if ticket != self._invalidations or self._max <= 0:
            return
        window = url_window(self._clock())
        entry = self._entries.get(task_id)
        if entry is None or entry[0] != key_id or entry[1] != window:
            entry = (key_id, window, {})
            self._entries[task_id] = entry
            self._entries.move_to_end(task_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        entry[2][surface] = body

    def invalidate(self, task_id: str) -> None:
        """The task was changed or deleted by this process: forget its bodies."""
        self._invalidations += 1
        self._entries.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._entries)
