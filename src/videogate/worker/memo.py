"""What a worker derives from a task once and keeps from one step to the next.

A task's request never changes after its create, yet every step (a poll every few
seconds, for hours) needs it parsed into a :class:`~videogate.request.GenerationRequest`
(a pydantic validation) and, for upstreams that call back, the task's callback URL (an
HMAC). :class:`TaskMemo` keeps both per task id, bounded (the least recently stepped task
goes first) and dropped when the task ends here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from videogate.request import GenerationRequest
from videogate.store.records import TaskRecord

#: Tasks one worker keeps: above the unfinished tasks a worker usually polls in turn (a
#: smaller memo than that would miss on every poll), at a few KB each.
MEMO_SIZE = 4096


class TaskMemo:
    """``(request, callback URL)`` by task id, at most ``size`` of them;
    ``callback_url(task_id)`` computes the URL (None when callbacks cannot reach us)."""

    def __init__(self, callback_url: Callable[[str], str | None], size: int = MEMO_SIZE) -> None:
        self._callback_url = callback_url
        self._size = size
        self._kept: OrderedDict[str, tuple[GenerationRequest, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def of(self, row: TaskRecord) -> tuple[GenerationRequest, str | None]:
        """``row``'s parsed request and callback URL (a ``ValidationError`` is not kept)."""
        kept = self._kept.get(row.id)
        if kept is not None:
            self._kept.move_to_end(row.id)
            return kept
        kept = (GenerationRequest.model_validate(row.request), self._callback_url(row.id))
        self._kept[row.id] = kept
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return kept

    def forget(self, task_id: str) -> None:
        """The task ended: nothing is needed again (or once more, by its aftercare)."""
        self._kept.pop(task_id, None)
