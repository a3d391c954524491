"""Plain rows as ORM objects, without the ORM's per-attribute bookkeeping.

``Task(**values)`` fires an instrumentation event per column (~30 of them): ~150 µs on this
machine, the largest single cost of a poll or a create. Filling the instance's ``__dict__``
is what the ORM itself does when it loads a row, at ~10 µs. The result is a detached,
read-only view (presenting, checking); to insert one through a session, build a normal
instance from :func:`column_values`.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from sqlalchemy import inspect

from videogate.store.tables import Base

B = TypeVar("B", bound=Base)


def detached(cls: type[B], values: dict[str, Any]) -> B:
    """An instance of ``cls`` holding ``values`` (attribute name → value), as if loaded."""
    obj: B = cls.__mapper__.class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


@functools.cache
def _column_keys(cls: type[Base]) -> tuple[str, ...]:
    """A mapped class's column attribute names (a pure function of the class: memoized,
    as walking the mapper costs more than copying the values)."""
    return tuple(a.key for a in inspect(cls).column_attrs)


def column_values(obj: Base) -> dict[str, Any]:
    """The column attributes ``obj`` holds (attribute name → value)."""
    held = obj.__dict__
    return {k: held[k] for k in _column_keys(type(obj)) if k in held}
