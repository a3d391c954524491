"""Small response helpers: fast JSON and byte ranges."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from videogate.blobs import BlobStore
from videogate.errors import InvalidRequest

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class JSONBytes(Response):
    """An encoded JSON body, its headers built straight as bytes (Starlette's ``Response``
    re-encodes and re-checks every header per response: ~10 µs of a ~30 µs poll)."""

    media_type = "application/json"

    def __init__(
        self, body: bytes, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
        if headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = raw


_JSON = b"application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(orjson.dumps(body), status, headers)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single ``bytes=`` range; None for the whole body.

    Raises ValueError when the range cannot be satisfied.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # multi-range or garbage: RFC 9110 lets us ignore it and send all
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:
        start = max(size - int(last), 0)
        end = size - 1
    if start >= size or start > end:
        raise ValueError("unsatisfiable range")
    return start, end


async def blob_response(
    blobs: BlobStore,
    key: str,
    media_type: str,
    range_header: str | None,
    *,
    head: bool = False,
    filename: str | None = None,
) -> Response:
    size = await blobs.size(key)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    if filename:
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    try:
        rng = parse_range(range_header, size)
    except ValueError:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    start, end = rng if rng else (0, size - 1)
    status = 206 if rng else 200
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    if head or size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        blobs.read_range(key, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


def query_int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer", param=name) from None
    if not lo <= number <= hi:
        raise InvalidRequest(f"'{name}' must be between {lo} and {hi}", param=name)
    return number
