"""What a failure of the database (or of the disk under it) means for a client, in the
project's own errors: a value the database cannot store is the request's fault (a 400);
a database unreachable, a disk full, a data directory not writable is ours (a 503 with
Retry-After). Nothing outside ``store/`` looks at a driver's exception: the API's error
handlers ask :func:`translate` (through ``videogate.context``)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa

from videogate.errors import InvalidRequest, ServiceUnavailable, VideogateError

#: The drivers' exception roots: an error of one of these is a bug unless :func:`translate`
#: says what it means.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sa.SQLAlchemyError, sqlite3.Error)


# Errors of the libraries under us that mean something to the client. PostgreSQL's SQLSTATE
# classes: 22 "data exception" is the request's fault (a NUL byte, a number out of range);
# these are our infrastructure's (connection, resources such as disk, operator shutdown,
# system I/O, database gone, lock/serialization conflicts, read-only server).
PG_UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "3D", "40", "55", "25006")
PG_DATA_MESSAGES = {
    "22021": "text in the request contains a NUL (\\u0000) character, which cannot be stored; "
    "remove it",
    "22P05": "text in the request contains a NUL (\\u0000) character, which cannot be stored; "
    "remove it",
    "22003": "a number in the request is out of range",
    "22001": "a text value in the request is too long",
}
OUT_OF_RANGE = "a number in the request is out of range (integers must fit in 64 bits)"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
RETRY_AFTER_SECONDS = 5


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver error SQLAlchemy wraps, and what caused each."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]


def translate(exc: BaseException) -> VideogateError | None:
    """What a database, driver or file-system error means for the client, or None for a
    bug. The client's fault (a value the database cannot store) is a 400; our
    infrastructure's (database unreachable, disk full, data dir not writable) a 503 with
    Retry-After: the same request may well work in a moment."""
    unavailable: ServiceUnavailable | None = None
    for cause in _causes(exc):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith("22"):
                return InvalidRequest(
                    PG_DATA_MESSAGES.get(sqlstate, "a value in the request cannot be stored")
                )
            if sqlstate.startswith(PG_UNAVAILABLE_CLASSES):
                unavailable = unavailable or _unavailable("the database is unavailable")
        if isinstance(cause, OverflowError):
            return InvalidRequest(OUT_OF_RANGE)
        if isinstance(cause, ValueError) and "out of int" in str(cause):  # asyncpg's encoder
            return InvalidRequest(OUT_OF_RANGE)
        if isinstance(cause, OSError) and unavailable is None:
            unavailable = _os_unavailable(cause)
        if isinstance(cause, sqlite3.OperationalError | sqlite3.DatabaseError) and (
            unavailable is None
        ):
            text = str(cause).lower()
            if "full" in text:
                unavailable = _unavailable("the server's disk is full")
            elif "readonly" in text or "read-only" in text:
                unavailable = _unavailable("the server's data directory is not writable")
            else:
                unavailable = _unavailable("the database is unavailable")
        if isinstance(cause, sa.OperationalError | sa.InterfaceError | sa.TimeoutError) or (
            isinstance(cause, sa.DBAPIError) and cause.connection_invalidated
        ):
            unavailable = unavailable or _unavailable("the database is unavailable")
    return unavailable


def _unavailable(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"{what}; this is on our side, not in your request: retry in a few seconds",
        retry_after=RETRY_AFTER_SECONDS,
    )


def _os_unavailable(exc: OSError) -> ServiceUnavailable:
    if exc.errno in DISK_FULL:
        return _unavailable("the server's disk is full")
    if exc.errno in NOT_WRITABLE:
        return _unavailable("the server's data directory is not writable")
    if isinstance(exc, ConnectionError | TimeoutError):
        return _unavailable("the database or another service we depend on is unreachable")
    return _unavailable("the server's storage or network failed")
