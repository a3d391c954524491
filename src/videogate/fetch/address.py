"""The address policy: which hosts a server-side fetch may reach, and the guard that checks them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx

from videogate.errors import InvalidRequest, ReferenceUnreachable, UnsafeURL
from videogate.fetch.urls import (
    IPAddress,
    ip_literal,
    parse_data_url,
    parse_http_url,
    scheme_of,
    unsupported_scheme,
)
from videogate.settings import Settings

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
class Target:
    """An http(s) URL the guard accepted, with the addresses it checked."""

    url: httpx.URL  # parsed, as the client wrote it (IDNA-encoded host)
    host: str  # the host as shown in messages
    addresses: tuple[str, ...]  # every address the host resolved to, all checked


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
        if scheme_of(url) == "data":
            parse_data_url(url, label, param)
            return
        await self.resolve(url, label=label, param=param)

    async def resolve(
        self, url: str, *, label: str, redirected: bool = False, param: str = "content"
    ) -> Target:
        """Check an http(s) URL and return it with the addresses it may be fetched from."""
        scheme = scheme_of(url)
        if scheme not in ("http", "https"):
            if scheme == "data" and not redirected:
                raise InvalidRequest(f"{label}: a data: URL has no host to resolve", param=param)
            raise unsupported_scheme(label, scheme, redirected=redirected, param=param)
        parsed, host_ascii, port = parse_http_url(url, label, param)
        shown = parsed.host
        if host_ascii.rstrip(".").lower() in METADATA_HOSTS:
            lead = f"redirected to {shown}, which is" if redirected else f"{shown} is"
            raise UnsafeURL(
                f"{label}: {lead} a cloud metadata endpoint; {METADATA_HINT}", param=param
            )

        literal = ip_literal(host_ascii)
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
