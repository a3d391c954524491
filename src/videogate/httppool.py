"""The process's HTTP client: small connection pools, and no cookie jar.

httpcore's pool walks all of its connections on every request and every response close
(``AsyncConnectionPool._assign_requests_to_connections``): it asks each one's socket
whether it is readable and, for each idle one, counts the idle connections again, so the
work per request grows with the square of the pool. With the worker's 64 kept-alive
connections in one pool that walk was the largest single cost of an upstream poll
(docs/performance.md). A smaller pool would close and reopen connections instead (a TLS
handshake and a ``TIME_WAIT`` port per request to a real HTTPS upstream).

:class:`ShardedTransport` keeps as many connections alive, in pools of
:data:`KEEPALIVE_PER_POOL` each, and sends every request to the pool with the fewest
requests in flight: a request walks only its own pool's few connections, and at low
concurrency the first pool serves everything while the others' idle connections expire.

:class:`CookielessClient` keeps no cookies. One client serves every upstream, result
download, reference fetch and webhook of the process: a jar would hand a cookie that one
tenant's URL set to the next request any tenant makes to that host, and httpx runs every
answer through ``http.cookiejar`` for it (~30–60 µs per request, 5–8%, measured).
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

#: Connections kept alive per pool. Measured (32 concurrent GETs to a local server, client
#: CPU per request): 64 kept alive in one pool 2.6–3.4 ms, in 16 pools of 4 0.7 ms.
KEEPALIVE_PER_POOL = 4


class ShardedTransport(httpx.AsyncBaseTransport):
    """Up to ``max_connections`` open and ``max_keepalive`` kept alive, spread over
    ``ceil(max_keepalive / KEEPALIVE_PER_POOL)`` pools; ``verify`` is the TLS context of
    every pool. Never reads the environment (no ambient proxy, no ``SSL_CERT_FILE``)."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive: int,
        verify: ssl.SSLContext,
        keepalive_expiry: float = 5.0,
    ) -> None:
        count = max(1, math.ceil(max_keepalive / KEEPALIVE_PER_POOL))
        limits = httpx.Limits(
            max_connections=max(1, math.ceil(max_connections / count)),
            max_keepalive_connections=min(max_keepalive, KEEPALIVE_PER_POOL),
            keepalive_expiry=keepalive_expiry,
        )
        self._pools = [
            httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
            for _ in range(count)
        ]
        # Requests in flight per pool, from the request until its response is closed.
        self._busy = [0] * count

    @property
    def pools(self) -> int:
        return len(self._pools)

    def in_flight(self) -> int:
        """Requests sent whose responses are not closed yet."""
        return sum(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            busy[index] -= 1
            raise
        response.stream = _Counted(response.stream, busy, index)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Counted(httpx.AsyncByteStream):
    """A response body that gives its pool's in-flight count back when it is closed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, busy: list[int], index: int
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._busy = busy
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._open:
                self._open = False
                self._busy[self._index] -= 1


class CookielessClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose cookie jar keeps nothing (see the module doc); a
    request's own ``cookies=`` are still sent."""

    @property
    def cookies(self) -> httpx.Cookies:
        jar = self.__dict__.get("_no_cookies")
        if jar is None:
            jar = self.__dict__["_no_cookies"] = _NoCookies()
        return jar

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        """Ignored (``httpx.AsyncClient.__init__`` sets the jar)."""


class _NoCookies(httpx.Cookies):
    """A jar that never takes a cookie from an answer."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None
