"""The store's records: one field per column, frozen, and changes that name real columns."""

from __future__ import annotations

import dataclasses

import pytest

from videogate.store.records import (
    CHANGE_FIELDS,
    KEEP,
    TASK_FIELDS,
    TaskChange,
    TaskRecord,
    new_task,
)
from videogate.store.tables import Task


def a_task() -> TaskRecord:
    return new_task(
        id="video_x", key_id="key_x", model="m", request={}, created_at=1.0, deadline_at=2.0
    )


def test_a_task_record_has_every_column_in_the_table_order() -> None:
    # fastread and the Core queries build records positionally from rows in this order.
    assert tuple(c.name for c in Task.__table__.columns) == TASK_FIELDS
    assert tuple(a.key for a in Task.__mapper__.column_attrs) == TASK_FIELDS


def test_a_record_is_frozen() -> None:
    task = a_task()
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.status = "running"  # type: ignore[misc]
    with pytest.raises(AttributeError):  # slotted: no stray attributes either
        object.__setattr__(task, "colour", "red")


def test_a_change_names_only_columns_and_sets_only_what_it_names() -> None:
    assert set(CHANGE_FIELDS) <= set(TASK_FIELDS)
    assert not {"id", "key_id", "request", "hold_micros", "lease_owner"} & set(CHANGE_FIELDS)
    change = TaskChange(status="running", next_run_at=None)
    assert change.values() == {"status": "running", "next_run_at": None}
    assert TaskChange().values() == {} and TaskChange().status is KEEP
    with pytest.raises(TypeError):
        TaskChange(colour="red")  # type: ignore[call-arg]


def test_a_change_applied_to_a_record_leaves_the_original_alone() -> None:
    task = new_task(
        id="video_x", key_id="key_x", model="m", request={}, created_at=1.0, deadline_at=2.0
    )
    moved = TaskChange(status="running", progress=5, next_run_at=None).applied_to(task)
    assert (moved.status, moved.progress, moved.next_run_at) == ("running", 5, None)
    assert (task.status, task.progress, task.next_run_at) == ("queued", 0, None)
    assert moved.values() == {**task.values(), "status": "running", "progress": 5}
