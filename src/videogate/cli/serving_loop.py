"""The HTTP server's event loop: uvloop, accepting every waiting connection at once.

libuv (under uvloop) accepts **one** connection per turn of the event loop (its
``uv__server_io`` calls ``accept`` once per readiness event). When 200 clients connect
to a busy server together, the last one waits ~200 turns of the loop before its first
request is even read: at ~10 ms a turn that is the ~1–2 s p99 ``bench/api_bench.py``
measured at 200 connections with uvicorn + uvloop (asyncio's loop, and granian, accept in
a burst and had no such tail). ``strace`` of a server under ``wrk -c 200`` showed exactly
one ``accept4`` between two ``epoll_wait`` calls, and ``ss`` showed the listen queue
draining by ~100 connections a second.

:class:`EagerAcceptLoop` keeps uvloop for everything else and serves plain-TCP listeners
itself: the listening socket is watched with ``add_reader`` and each readiness event
accepts every waiting connection (up to the backlog, as asyncio's own loop does), each
handed to uvloop's transport with ``connect_accepted_socket``. TLS and Unix-socket
listeners keep uvloop's own server.

Selected by ``VIDEOGATE_HTTP_LOOP=auto`` (when uvloop is installed) or ``uvloop``: uvicorn
takes :func:`new_event_loop` as a custom loop (its ``loop="module:function"``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

log = logging.getLogger("videogate")

# asyncio's own pause after the process ran out of file descriptors (base_events).
ACCEPT_RETRY_SECONDS = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TCP = (socket.AF_INET, socket.AF_INET6)

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class EagerAcceptServer(asyncio.AbstractServer):
    """Listening TCP sockets whose waiting connections are all accepted per loop turn."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: ProtocolFactory,
        socks: list[socket.socket],
        backlog: int,
    ) -> None:
        self._loop = loop
        self._factory = protocol_factory
        self._socks = socks
        self._backlog = max(1, backlog)
        self._serving = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        # Connections being wrapped (one short task each): kept so they are not collected.
        self._handing_over: set[asyncio.Task[Any]] = set()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else tuple(self._socks)

    def start(self) -> None:
        if self._closed or self._serving:
            return
        for sock in self._socks:
            sock.listen(self._backlog)
            self._loop.add_reader(sock.fileno(), self._accept_waiting, sock)
        self._serving = True

    def _stop_watching(self) -> None:
        if self._serving:
            for sock in self._socks:
                self._loop.remove_reader(sock.fileno())
        self._serving = False

    def _accept_waiting(self, sock: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting: the next one
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                # Out of file descriptors: stop watching for a second rather than spin.
                log.warning("cannot accept connections (%s); retrying in 1 s", exc)
                self._stop_watching()
                self._retry = self._loop.call_later(ACCEPT_RETRY_SECONDS, self.start)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._hand_over(conn))
            self._handing_over.add(task)
            task.add_done_callback(self._handing_over.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()  # reset before it was wrapped: nothing to serve

    def close(self) -> None:
        if self._closed:
            return
        if self._retry is not None:
            self._retry.cancel()
        self._stop_watching()
        self._closed = True
        for sock in self._socks:
            sock.close()

    async def wait_closed(self) -> None:
        # The open connections are the server's (uvicorn waits for them itself).
        return None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self.start()

    async def serve_forever(self) -> None:
        self.start()
        await self._loop.create_future()  # until cancelled


class EagerAcceptLoop(uvloop.Loop):
    """uvloop whose plain TCP servers accept every waiting connection per turn."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: ProtocolFactory,
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        own = ssl is None and not kwargs
        if sock is not None:
            own = own and sock.family in _TCP
        else:
            # Several hosts, or none (all interfaces): uvicorn never asks for them.
            own = own and isinstance(host, str) and port is not None
        if not own:  # TLS, Unix sockets, the rest: uvloop's own server
            options: dict[str, Any] = {"sock": sock, "backlog": backlog, "ssl": ssl}
            options.update(reuse_address=reuse_address, reuse_port=reuse_port)
            base: Any = super()
            server: asyncio.AbstractServer = await base.create_server(
                protocol_factory, host, port, start_serving=start_serving, **options, **kwargs
            )
            return server
        if sock is not None:
            socks = [sock]
        else:
            assert isinstance(host, str) and port is not None
            socks = await self._bind(host, port, reuse_port=bool(reuse_port))
        for listener in socks:
            listener.setblocking(False)
        eager = EagerAcceptServer(self, protocol_factory, socks, backlog)
        if start_serving:
            eager.start()
        return eager

    async def _bind(self, host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
        """Sockets bound to every address of ``host``:``port``, as asyncio's
        ``create_server`` binds them (``localhost``: IPv4 and IPv6)."""
        infos = await self.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        socks: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"error while attempting to bind on address {address!r}: "
                        f"{(exc.strerror or '').lower()}",
                    ) from None
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        if not socks:
            raise OSError(f"getaddrinfo({host!r}) returned no address")
        return socks


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's custom loop (``loop="videogate.cli.serving_loop:new_event_loop"``)."""
    return EagerAcceptLoop()
