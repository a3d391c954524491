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

The pieces: :mod:`.urls` (URL shape), :mod:`.address` (the address policy and
:class:`UrlGuard`), :mod:`.pinned` (pinned requests), :mod:`.download` (:func:`fetch_url`).
"""

from videogate.fetch.address import (
    METADATA_ADDRESSES,
    METADATA_HINT,
    METADATA_HOSTS,
    METADATA_KIND,
    PRIVATE_HINT,
    Resolver,
    Target,
    UrlGuard,
    address_kind,
    guard_from_settings,
    system_resolver,
)
from videogate.fetch.download import MAX_REDIRECTS, REDIRECT_STATUSES, Fetched, fetch_url
from videogate.fetch.pinned import send_pinned
from videogate.fetch.urls import MAX_URL_LENGTH, USE_INSTEAD, IPAddress

__all__ = [
    "MAX_REDIRECTS",
    "MAX_URL_LENGTH",
    "METADATA_ADDRESSES",
    "METADATA_HINT",
    "METADATA_HOSTS",
    "METADATA_KIND",
    "PRIVATE_HINT",
    "REDIRECT_STATUSES",
    "USE_INSTEAD",
    "Fetched",
    "IPAddress",
    "Resolver",
    "Target",
    "UrlGuard",
    "address_kind",
    "fetch_url",
    "guard_from_settings",
    "send_pinned",
    "system_resolver",
]
