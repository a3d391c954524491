"""The status vocabulary: every surface's mapping covers every status, and nothing else."""

from __future__ import annotations

from videogate.statuses import (
    ARK_STATUS,
    ARK_STATUSES,
    ARK_STATUSES_OF,
    RELAY_STATUS,
    TERMINAL,
    UNFINISHED,
    TaskStatus,
)
from videogate.store.tables import Task


def test_every_status_is_unfinished_or_terminal_exactly_once() -> None:
    assert sorted((*UNFINISHED, *TERMINAL)) == sorted(s.value for s in TaskStatus)
    assert not set(UNFINISHED) & set(TERMINAL)


def test_each_surface_maps_every_status_into_its_own_words() -> None:
    for mapping in (RELAY_STATUS, ARK_STATUS):
        assert set(mapping) == {s.value for s in TaskStatus}
    assert set(RELAY_STATUS.values()) == {"queued", "in_progress", "completed", "failed"}
    assert set(ARK_STATUS.values()) == set(ARK_STATUSES)


def test_ark_filter_covers_each_status_once() -> None:
    covered = [ours for group in ARK_STATUSES_OF.values() for ours in group]
    assert sorted(covered) == sorted(s.value for s in TaskStatus)
    assert ARK_STATUSES_OF["running"] == ("running", "fetching")


def test_the_stored_column_takes_the_enum_as_text() -> None:
    assert str(TaskStatus.FETCHING) == "fetching" and isinstance(TaskStatus.FETCHING, str)
    assert Task.__table__.c.status.type.python_type is str
