"""The process's HTTP client: many small pools, connections kept and reused, no cookies."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from videogate.httppool import KEEPALIVE_PER_POOL, CookielessClient, ShardedTransport


class KeepAliveServer:
    """A bare HTTP/1.1 server on 127.0.0.1 that keeps connections open, counts them, and
    answers only once ``release`` is set (so a test holds requests in flight)."""

    def __init__(self) -> None:
        self.connections = 0
        self.release = asyncio.Event()
        self.release.set()
        self.waiting = 0
        self.want = 0
        self.full = asyncio.Event()  # ``want`` requests are waiting for ``release``
        self.heads: list[bytes] = []  # every request's head, as received
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head.lower())
                self.waiting += 1
                if self.waiting >= self.want:
                    self.full.set()
                await self.release.wait()
                self.waiting -= 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: tenant=a; Path=/\r\n"
                    b"Content-Length: 2\r\n\r\nok"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> KeepAliveServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[KeepAliveServer]:
    async with KeepAliveServer() as srv:
        yield srv


def _client(keep: int) -> tuple[httpx.AsyncClient, ShardedTransport]:
    transport = ShardedTransport(
        max_connections=2 * keep,
        max_keepalive=keep,
        verify=httpx.create_ssl_context(trust_env=False),
    )
    return httpx.AsyncClient(transport=transport, trust_env=False), transport


async def _held_wave(client: httpx.AsyncClient, server: KeepAliveServer, n: int) -> None:
    """``n`` requests in flight at once, answered together."""
    server.release.clear()
    server.full.clear()
    server.want = n
    wave = [asyncio.create_task(client.get(server.url)) for _ in range(n)]
    await server.full.wait()
    server.release.set()
    assert [r.status_code for r in await asyncio.gather(*wave)] == [200] * n


async def test_the_kept_alive_connections_are_spread_over_small_pools() -> None:
    _, transport = _client(64)
    assert transport.pools == 64 // KEEPALIVE_PER_POOL
    _, one = _client(3)
    assert one.pools == 1


async def test_connections_are_reused_across_waves(server: KeepAliveServer) -> None:
    client, transport = _client(16)
    async with client:
        await _held_wave(client, server, 16)
        assert server.connections == 16
        await _held_wave(client, server, 16)  # every pool still holds its connections
        for _ in range(5):  # one at a time: the first pool's connection each time
            assert (await client.get(server.url)).status_code == 200
        assert server.connections == 16
        assert transport.in_flight() == 0


async def test_every_request_gives_its_pool_back(server: KeepAliveServer) -> None:
    client, transport = _client(8)
    async with client:
        async with client.stream("GET", server.url) as response:
            assert transport.in_flight() == 1
        assert transport.in_flight() == 0
        with socket.socket() as unused:  # a port nobody listens on: the connect fails
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
        assert transport.in_flight() == 0
        assert response.is_closed


async def test_the_client_keeps_no_cookie_from_one_answer_for_the_next(
    server: KeepAliveServer,
) -> None:
    async with CookielessClient(trust_env=False) as client:
        first = await client.get(server.url)
        assert first.cookies["tenant"] == "a"  # the answer still shows what it set
        await client.get(server.url)
        assert not client.cookies
        await client.get(server.url, headers={"Cookie": "own=1"})
    assert [b"cookie:" in head for head in server.heads] == [False, False, True]
