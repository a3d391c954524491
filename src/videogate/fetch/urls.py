"""The shape of a client-supplied URL: http(s) and ``data:`` URLs.

Parsed without trusting them, refused with messages that say what to send instead.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

import httpx

from videogate.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longest http(s) URL accepted (``data:`` URLs are limited by size instead).
MAX_URL_LENGTH = 8192


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?", re.DOTALL)


USE_INSTEAD = "use an http(s) URL, a data: URL, or a URL from POST /v1/files"


def scheme_of(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def unsupported_scheme(label: str, scheme: str, *, redirected: bool, param: str) -> InvalidRequest:
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


def parse_http_url(url: str, label: str, param: str) -> tuple[httpx.URL, str, int]:
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
    if len(host) > 253 or not (_HOSTNAME.fullmatch(host) or ip_literal(host)):
        raise _malformed(label, "bad host name", param)
    return parsed, host, port or (443 if parsed.scheme == "https" else 80)


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class DataURL:
    media_type: str | None
    is_base64: bool
    payload: str


def parse_data_url(url: str, label: str, param: str = "content") -> DataURL:
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
    return DataURL(media_type or None, is_base64, payload)
