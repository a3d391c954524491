"""Downloading a checked URL (or decoding a ``data:`` URL) to a file.

Redirects are followed by hand, every hop checked; size and time are capped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import os
import re
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from videogate.errors import InvalidRequest, ReferenceUnreachable, VideogateError
from videogate.fetch.address import UrlGuard
from videogate.fetch.pinned import send
from videogate.fetch.urls import USE_INSTEAD, DataURL, parse_data_url, scheme_of

#: Redirects followed per fetch; every hop is checked by the guard.
MAX_REDIRECTS = 5


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


_BASE64_WHITESPACE = re.compile(rb"[\t\n\f\r ]")


_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class Fetched:
    """A downloaded reference."""

    path: Path  # where the bytes were written
    bytes: int
    content_type: str | None  # from the HTTP header or the data: URL, may be None


def _megabytes(n: int) -> str:
    mb = n / (1024 * 1024)
    return f"{mb:.0f}" if mb >= 10 else f"{mb:.3g}"


def _too_big(label: str, max_bytes: int) -> InvalidRequest:
    return InvalidRequest(
        f"{label}: larger than the {_megabytes(max_bytes)} MB limit", param="content"
    )


async def fetch_url(
    url: str,
    dest: Path,
    *,
    label: str,
    client: httpx.AsyncClient,
    guard: UrlGuard,
    max_bytes: int,
    timeout: float,
) -> Fetched:
    """Fetch ``url`` (http(s) or data:) into ``dest``, checking every hop with ``guard``.

    Raises :class:`InvalidRequest` (bad URL, too large), :class:`UnsafeURL` (refused
    address, also after a redirect) or :class:`ReferenceUnreachable` (DNS, connection,
    TLS, timeout, non-2xx status, broken body). ``timeout`` bounds the whole fetch.
    """
    if scheme_of(url) == "data":
        data = parse_data_url(url, label)
        return await asyncio.to_thread(_save_data_url, data, dest, label, max_bytes)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch_http(url, dest, label, client, guard, max_bytes, timeout)
    except TimeoutError:
        raise ReferenceUnreachable(f"{label}: timed out after {timeout:g} s") from None


async def _fetch_http(
    url: str,
    dest: Path,
    label: str,
    client: httpx.AsyncClient,
    guard: UrlGuard,
    max_bytes: int,
    timeout: float,
) -> Fetched:
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        target = await guard.resolve(current, label=label, redirected=hop > 0)
        try:
            response = await send(client, target, timeout)
        except httpx.HTTPError as exc:
            raise _unreachable(label, target.host, exc, timeout) from None
        try:
            status = response.status_code
            if status in REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise ReferenceUnreachable(
                        f"{label}: HTTP {status} from {target.host} without a Location header"
                    )
                try:
                    current = str(target.url.join(location))
                except (httpx.InvalidURL, ValueError):
                    raise ReferenceUnreachable(
                        f"{label}: HTTP {status} from {target.host} with an invalid Location"
                    ) from None
                continue
            if not 200 <= status < 300:
                raise ReferenceUnreachable(f"{label}: HTTP {status} from {target.host}")
            try:
                return await save_response(response, dest, label, max_bytes)
            except httpx.HTTPError as exc:
                raise _unreachable(label, target.host, exc, timeout) from None
        finally:
            await response.aclose()
    raise ReferenceUnreachable(f"{label}: too many redirects (more than {MAX_REDIRECTS})")


async def save_response(
    response: httpx.Response, dest: Path, label: str, max_bytes: int
) -> Fetched:
    """Stream a 2xx ``response`` into ``dest`` (renamed into place only when complete);
    :class:`InvalidRequest` once it passes ``max_bytes``. Also the providers' capped
    download of results (``providers/http.py``)."""
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > max_bytes:
        raise _too_big(label, max_bytes)
    part = await asyncio.to_thread(_PartFile, dest)
    try:
        total = 0
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise _too_big(label, max_bytes)
            buffer += chunk
            if len(buffer) >= _FLUSH_BYTES:
                await asyncio.to_thread(part.write, buffer)
                buffer.clear()
        await asyncio.to_thread(part.write, buffer)
        await asyncio.to_thread(part.commit)
    finally:
        part.discard()
    return Fetched(path=dest, bytes=total, content_type=response.headers.get("content-type"))


class _PartFile:
    """A temporary file next to ``dest``, renamed onto it by :meth:`commit`."""

    def __init__(self, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        self.dest = dest
        self.tmp = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.committed = False

    def write(self, data: bytes | bytearray) -> None:
        self.file.write(data)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.dest)
        self.committed = True

    def discard(self) -> None:
        """Remove the temporary file unless committed (safe to call more than once)."""
        if not self.committed:
            self.file.close()
            self.tmp.unlink(missing_ok=True)


def _save_data_url(data: DataURL, dest: Path, label: str, max_bytes: int) -> Fetched:
    # Percent-encoding takes at most 3 characters per byte, base64 4 per 3 bytes.
    if len(data.payload) > 3 * max_bytes + 4:
        raise _too_big(label, max_bytes)
    raw = urllib.parse.unquote_to_bytes(data.payload)
    body = _decode_base64(raw, label) if data.is_base64 else raw
    if len(body) > max_bytes:
        raise _too_big(label, max_bytes)
    part = _PartFile(dest)
    try:
        part.write(body)
        part.commit()
    finally:
        part.discard()
    return Fetched(path=dest, bytes=len(body), content_type=data.media_type)


def _decode_base64(raw: bytes, label: str) -> bytes:
    """Forgiving base64: whitespace ignored, padding optional, URL-safe alphabet accepted."""
    text = _BASE64_WHITESPACE.sub(b"", raw).rstrip(b"=").translate(bytes.maketrans(b"-_", b"+/"))
    if len(text) % 4 == 1:
        raise InvalidRequest(f"{label}: invalid base64 in data: URL", param="content")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise InvalidRequest(f"{label}: invalid base64 in data: URL", param="content") from None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                stack.append(nxt)


def _unreachable(label: str, host: str, exc: httpx.HTTPError, timeout: float) -> VideogateError:
    """A short, human cause for an httpx failure."""
    if isinstance(exc, httpx.TimeoutException):
        return ReferenceUnreachable(f"{label}: timed out after {timeout:g} s")
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or "verification failed"
            return ReferenceUnreachable(f"{label}: TLS certificate of {host} rejected ({why})")
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return ReferenceUnreachable(f"{label}: TLS handshake with {host} failed")
    if isinstance(exc, httpx.ConnectError):
        if "refused" in str(exc).lower() or any(
            isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None) == errno.ECONNREFUSED
            for c in causes
        ):
            return ReferenceUnreachable(f"{label}: connection refused")
        return ReferenceUnreachable(f"{label}: cannot connect to {host}")
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc).lower()
        if "closed" in text or "disconnected" in text:
            return ReferenceUnreachable(f"{label}: {host} closed the connection mid-response")
        return ReferenceUnreachable(f"{label}: {host} sent an invalid HTTP response")
    if isinstance(exc, httpx.ReadError):
        return ReferenceUnreachable(f"{label}: connection to {host} broke mid-response")
    if isinstance(exc, httpx.DecodingError):
        return ReferenceUnreachable(f"{label}: cannot decode the response from {host}")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return InvalidRequest(f"{label}: malformed URL; {USE_INSTEAD}", param="content")
    return ReferenceUnreachable(f"{label}: request to {host} failed ({type(exc).__name__})")
