"""Requests pinned to the addresses the guard checked.

A name is never resolved a second time, so DNS rebinding cannot redirect a request.
"""

from __future__ import annotations

from typing import Any

import httpcore
import httpx

from videogate.fetch.address import Target
from videogate.fetch.urls import ip_literal


async def send(
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
    return await send(client, target, timeout, method=method, headers=headers, content=content)


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
    if ip_literal(host) is not None and str(ip_literal(host)) == host:
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
