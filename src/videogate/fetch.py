"""Fetching reference media from client-supplied URLs, and the guard that keeps it safe.

Clients name reference media by URL (``http(s)://`` or ``data:``) and this server fetches
it, so every URL is a server-side request forgery risk. :class:`UrlGuard` refuses URLs
whose host resolves to anything but public addresses: loopback, private (RFC 1918,
``fc00::/7``), link-local, unspecified, multicast, reserved, CGNAT ``100.64.0.0/10``,
documentation/benchmark ranges, and IPv6 forms that embed such an IPv4 address
(``::ffff:127.0.0.1``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). *Every* address a
name resolves to must be public, and IP literals in any spelling (``2130706433``,
``0x7f.1``, ``[::ffff:127.0.0.1]``) are checked after ``getaddrinfo`` normalizes them.

``allow_private=True`` (``VIDEOGATE_ALLOW_PRIVATE_URLS=1``, for tests and local
development) lifts the address check, except for cloud metadata endpoints
(``169.254.169.254``, ``fd00:ec2::254``, ``metadata.google.internal`` and a few more, see
:data:`METADATA_ADDRESSES`): those are refused in every mode, because reaching them from
a cloud VM hands out the VM's credentials.

:func:`fetch_url` checks the URL, then downloads it with redirects followed by hand (at
most :data:`MAX_REDIRECTS`), checking every hop with the guard. The body is streamed to a
temporary file next to the destination and renamed into place, so an error never leaves
a partial file behind. ``timeout`` bounds the *whole* fetch (name resolution, every hop
and the body), so a server dribbling one byte a second cannot hold a worker forever.

DNS rebinding: the connection is pinned to the address the guard checked. The request
goes to ``http(s)://<checked ip>/…`` with the original ``Host`` header and, for HTTPS,
the original name as TLS SNI and certificate hostname (httpcore's ``sni_hostname``
request extension), so httpx never resolves the name a second time. If a name resolves
to several addresses they are tried in order when a connection cannot be made. Pinned
HTTPS requests carry ``Connection: close``: httpx pools connections by address, and a TLS
connection verified for one name must not be reused for another name on the same address
(so the client must speak HTTP/1.1, httpx's default; ``Connection`` is illegal in HTTP/2).
Known limitation: when the client sends HTTPS through an HTTP proxy (``HTTPS_PROXY``, or
``proxy=``), httpcore does not honour ``sni_hostname`` inside the CONNECT tunnel, so such
requests are *not* pinned and the proxy resolves the name again (DNS rebinding between
the check and the proxy's lookup is then possible); a deployment behind an egress proxy
should make the proxy refuse private destinations too. Plain-HTTP requests through a
proxy are pinned (the proxy is asked for ``http://<checked ip>/…``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from videogate.errors import InvalidRequest, ReferenceUnreachable, UnsafeURL, VideogateError
from videogate.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longest http(s) URL accepted (``data:`` URLs are limited by size instead).
MAX_URL_LENGTH = 8192
#: Redirects followed per fetch; every hop is checked by the guard.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Refused even with ``allow_private``: instance metadata and host-agent endpoints.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack, …
        "169.254.170.2",  # AWS ECS task metadata / credentials
        "169.254.170.23",  # AWS EKS Pod Identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public-looking address)
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
METADATA_KIND = "cloud metadata"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?", re.DOTALL)
_BASE64_WHITESPACE = re.compile(rb"[\t\n\f\r ]")
_FLUSH_BYTES = 1 << 20

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_PRIVATE: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)

USE_INSTEAD = "use an http(s) URL, a data: URL, or a URL from POST /v1/files"
PRIVATE_HINT = (
    "references must be reachable public URLs (set VIDEOGATE_ALLOW_PRIVATE_URLS=1 to allow "
    "private addresses for local development)"
)
METADATA_HINT = (
    "references must be reachable public URLs (cloud metadata endpoints are refused even "
    "with VIDEOGATE_ALLOW_PRIVATE_URLS=1)"
)

#: ``async (host, port) -> [address, …]``; raises ``OSError`` (``socket.gaierror``) when the
#: name does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class Fetched:
    """A downloaded reference."""

    path: Path  # where the bytes were written
    bytes: int
    content_type: str | None  # from the HTTP header or the data: URL, may be None


@dataclass(frozen=True)
class Target:
    """An http(s) URL the guard accepted, with the addresses it checked."""

    url: httpx.URL  # parsed, as the client wrote it (IDNA-encoded host)
    host: str  # the host as shown in messages
    addresses: tuple[str, ...]  # every address the host resolved to, all checked


# Address classification -------------------------------------------------------------------


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address ("loopback", "private", …), or None if it is."""
    if ip in METADATA_ADDRESSES:
        return METADATA_KIND
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        mapped = ip.ipv4_mapped
        if mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d, nothing more
            return address_kind(mapped)
        for embedded in _embedded_ipv4(ip):
            kind = address_kind(embedded)
            if kind is not None:
                return kind
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip in _CGNAT:
        return "shared (CGNAT)"
    if any(ip in net for net in _PRIVATE):
        return "private"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global or getattr(ip, "is_site_local", False):
        return "non-public"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address routes to: NAT64, 6to4, IPv4-compatible."""
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        yield ip.sixtofour


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


# URL shape --------------------------------------------------------------------------------


def _scheme_of(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _unsupported_scheme(label: str, scheme: str, *, redirected: bool, param: str) -> InvalidRequest:
    shown = f'"{scheme[:20]}:"' if scheme else "(none)"
    if redirected:
        return InvalidRequest(
            f"{label}: redirected to a URL with unsupported scheme {shown}; only http(s) "
            "redirects are followed",
            param=param,
        )
    return InvalidRequest(f"{label}: unsupported URL scheme {shown}; {USE_INSTEAD}", param=param)


def _malformed(label: str, why: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"{label}: malformed URL ({why}); {USE_INSTEAD}", param=param)


def _parse_http_url(url: str, label: str, param: str) -> tuple[httpx.URL, str, int]:
    """Parse an http(s) URL; returns the URL, its ASCII host and its port."""
    if len(url) > MAX_URL_LENGTH:
        raise _malformed(label, f"longer than {MAX_URL_LENGTH} characters", param)
    if _BAD_URL_CHARS.search(url):
        raise _malformed(label, "it contains spaces, control characters or backslashes", param)
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise _malformed(label, str(exc).rstrip(".") or "cannot parse it", param) from None
    if not host:
        raise _malformed(label, "no host", param)
    if port is not None and not 1 <= port <= 65535:
        raise _malformed(label, f"bad port {port}", param)
    if len(host) > 253 or not (_HOSTNAME.fullmatch(host) or _ip_literal(host)):
        raise _malformed(label, "bad host name", param)
    return parsed, host, port or (443 if parsed.scheme == "https" else 80)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class _DataURL:
    media_type: str | None
    is_base64: bool
    payload: str


def _parse_data_url(url: str, label: str, param: str = "content") -> _DataURL:
    """Split ``data:[<mediatype>][;base64],<data>`` without decoding the data."""
    head, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise InvalidRequest(
            f"{label}: malformed data: URL (no comma before the data)", param=param
        )
    params = head.split(";")
    is_base64 = len(params) > 1 and params[-1].strip().lower() == "base64"
    if is_base64:
        params = params[:-1]
    media_type = urllib.parse.unquote(";".join(p.strip() for p in params)).strip()
    if media_type.startswith(";"):
        media_type = "text/plain" + media_type
    if media_type and not _MEDIA_TYPE.fullmatch(media_type):
        raise InvalidRequest(f"{label}: malformed media type in data: URL", param=param)
    return _DataURL(media_type or None, is_base64, payload)


# The guard --------------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's ``getaddrinfo`` (in its executor; never blocks)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class UrlGuard:
    """Refuses URLs whose host resolves to loopback, private (RFC1918, fc00::/7), link-local
    (169.254/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254,
    metadata.google.internal), unspecified (0.0.0.0, ::), multicast, reserved, CGNAT
    100.64/10, IPv4-mapped IPv6 of those, … unless ``allow_private``.

    Cloud metadata endpoints are refused even with ``allow_private``: that setting is for
    local development, and a deployment that sets it on a cloud VM must still not hand the
    VM's credentials to whoever sends a URL.

    ``resolver`` replaces ``getaddrinfo`` (tests use it to map names to addresses).
    """

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self._resolve = resolver or system_resolver

    def refusal(self, ip: IPAddress) -> str | None:
        """The kind of address ``ip`` is if this guard refuses it, else None."""
        kind = address_kind(ip)
        if self.allow_private and kind != METADATA_KIND:
            return None
        return kind

    async def check(self, url: str, *, label: str, param: str = "content") -> None:
        """Raise :class:`UnsafeURL` / :class:`InvalidRequest` / :class:`ReferenceUnreachable`
        unless ``url`` is a well-formed ``data:`` URL or an http(s) URL on a public host."""
        if _scheme_of(url) == "data":
            _parse_data_url(url, label, param)
            return
        await self.resolve(url, label=label, param=param)

    async def resolve(
        self, url: str, *, label: str, redirected: bool = False, param: str = "content"
    ) -> Target:
        """Check an http(s) URL and return it with the addresses it may be fetched from."""
        scheme = _scheme_of(url)
        if scheme not in ("http", "https"):
            if scheme == "data" and not redirected:
                raise InvalidRequest(f"{label}: a data: URL has no host to resolve", param=param)
            raise _unsupported_scheme(label, scheme, redirected=redirected, param=param)
        parsed, host_ascii, port = _parse_http_url(url, label, param)
        shown = parsed.host
        if host_ascii.rstrip(".").lower() in METADATA_HOSTS:
            lead = f"redirected to {shown}, which is" if redirected else f"{shown} is"
            raise UnsafeURL(
                f"{label}: {lead} a cloud metadata endpoint; {METADATA_HINT}", param=param
            )

        literal = _ip_literal(host_ascii)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._resolve(host_ascii, port)
            except (OSError, UnicodeError):
                raise ReferenceUnreachable(f"{label}: cannot resolve host {shown}") from None
        unique = tuple(dict.fromkeys(addresses))
        if not unique:
            raise ReferenceUnreachable(f"{label}: cannot resolve host {shown}")
        for address in unique:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ReferenceUnreachable(f"{label}: cannot resolve host {shown}") from None
            kind = self.refusal(ip)
            if kind is not None:
                lead = (
                    f"redirected to {shown}, which resolves to"
                    if redirected
                    else f"{shown} resolves to"
                )
                hint = METADATA_HINT if kind == METADATA_KIND else PRIVATE_HINT
                raise UnsafeURL(
                    f"{label}: {lead} {address}, {_article(kind)} {kind} address; {hint}",
                    param=param,
                )
        return Target(url=parsed, host=shown, addresses=unique)


def guard_from_settings(settings: Settings) -> UrlGuard:
    return UrlGuard(allow_private=settings.allow_private_urls)


# Fetching ---------------------------------------------------------------------------------


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
    if _scheme_of(url) == "data":
        data = _parse_data_url(url, label)
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
            response = await _send(client, target, timeout)
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
                return await _save_response(response, dest, label, max_bytes)
            except httpx.HTTPError as exc:
                raise _unreachable(label, target.host, exc, timeout) from None
        finally:
            await response.aclose()
    raise ReferenceUnreachable(f"{label}: too many redirects (more than {MAX_REDIRECTS})")


async def _send(
    client: httpx.AsyncClient,
    target: Target,
    timeout: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """Request ``target`` (GET unless told) pinned to its checked addresses, trying each
    until one connects."""
    requests = _pinned_requests(
        client, target, timeout, method=method, headers=headers, content=content
    )
    for i, request in enumerate(requests):
        try:
            return await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            if i == len(requests) - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - requests is never empty


async def send_pinned(
    client: httpx.AsyncClient,
    target: Target,
    *,
    method: str,
    headers: dict[str, str],
    content: bytes,
    timeout: float,
) -> httpx.Response:
    """Send one request to a URL the guard accepted (``UrlGuard.resolve``), connecting only
    to the addresses it checked; redirects are not followed. The response is streamed:
    the caller closes it (``await response.aclose()``)."""
    return await _send(client, target, timeout, method=method, headers=headers, content=content)


def _pinned_requests(
    client: httpx.AsyncClient,
    target: Target,
    timeout: float,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> list[httpx.Request]:
    url = target.url
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    plain = [client.build_request(method, url, headers=headers, content=content, timeout=timeout)]
    host = url.raw_host.decode("ascii")
    if _ip_literal(host) is not None and str(_ip_literal(host)) == host:
        return plain  # already an address: nothing to resolve again
    pinned: list[httpx.Request] = []
    pinned_headers = {**headers, "Host": url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = host
        # httpx pools connections by (scheme, address, port): a kept-alive TLS connection
        # verified for one name would be reused for another name on the same address.
        pinned_headers["Connection"] = "close"
    for address in target.addresses:
        if "%" in address:  # a scoped IPv6 address cannot go into a URL; only allow_private
            continue
        pinned_url = url.copy_with(host=address)
        if url.scheme == "https" and _through_http_proxy(client, pinned_url):
            return plain  # httpcore ignores sni_hostname in a CONNECT tunnel (see module doc)
        pinned.append(
            client.build_request(
                method,
                pinned_url,
                headers=pinned_headers,
                content=content,
                extensions=extensions,
                timeout=timeout,
            )
        )
    return pinned or plain


def _through_http_proxy(client: httpx.AsyncClient, url: httpx.URL) -> bool:
    try:
        transport = client._transport_for_url(url)
    except Exception:  # httpx internals moved: assume a direct connection
        return False
    return isinstance(getattr(transport, "_pool", None), httpcore.AsyncHTTPProxy)


async def _save_response(
    response: httpx.Response, dest: Path, label: str, max_bytes: int
) -> Fetched:
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


def _save_data_url(data: _DataURL, dest: Path, label: str, max_bytes: int) -> Fetched:
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


# Error translation ------------------------------------------------------------------------


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
