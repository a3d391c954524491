"""The worker's per-task memo: a request is parsed (and its callback URL signed) once."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from videogate.request import GenerationRequest
from videogate.store.records import TaskRecord, new_task
from videogate.worker.memo import TaskMemo

MODEL = "doubao-seedance-2-0-fast-260128"


def _task(task_id: str, prompt: str = "a cat") -> TaskRecord:
    request = GenerationRequest(model=MODEL, prompt=prompt, duration=4, resolution="480p")
    return new_task(
        id=task_id,
        key_id="key",
        model=MODEL,
        request=request.model_dump(mode="json"),
        created_at=0.0,
        deadline_at=100.0,
    )


def test_a_task_is_parsed_and_signed_once_until_it_is_forgotten() -> None:
    signed: list[str] = []

    def callback_url(task_id: str) -> str:
        signed.append(task_id)
        return f"https://gw.example/cb/{task_id}"

    memo = TaskMemo(callback_url)
    row = _task("t1", "a dog")
    req, url = memo.of(row)
    assert req.prompt == "a dog" and url == "https://gw.example/cb/t1"
    assert memo.of(row) == (req, url) and memo.of(row)[0] is req
    assert signed == ["t1"]
    memo.forget("t1")
    memo.forget("never seen")
    assert len(memo) == 0
    assert memo.of(row)[0] is not req and signed == ["t1", "t1"]


def test_the_memo_is_bounded_least_recently_stepped_first_out() -> None:
    memo = TaskMemo(lambda task_id: None, size=2)
    a, b, c = _task("a"), _task("b"), _task("c")
    first_a = memo.of(a)[0]
    memo.of(b)
    memo.of(a)  # a was stepped last: b goes first
    memo.of(c)
    assert len(memo) == 2
    assert memo.of(a)[0] is first_a
    assert len(memo) == 2


def test_an_unreadable_request_is_not_kept() -> None:
    memo = TaskMemo(lambda task_id: None)
    row = _task("bad")
    broken = dataclasses.replace(row, request={"model": MODEL})
    with pytest.raises(ValidationError):
        memo.of(broken)
    assert len(memo) == 0
