"""The HTTP server's loop (``cli/serving_loop.py``): uvloop that accepts every waiting
connection in one turn, where uvloop alone admits one per turn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from videogate.cli.main import _loop_option
from videogate.cli.serving_loop import EagerAcceptLoop, EagerAcceptServer, new_event_loop

T = TypeVar("T")
WAITING = 20


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main())


class Echo(asyncio.Protocol):
    made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Echo.made += 1
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but it is one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def connect_all(port: int, n: int) -> list[socket.socket]:
    # Blocking, on purpose: loopback connects complete in the kernel's backlog without the
    # server's loop turning, so all of them wait to be accepted at once.
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]


def test_every_waiting_connection_is_accepted_within_a_few_turns() -> None:
    async def main() -> tuple[int, int]:
        Echo.made = 0
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        assert isinstance(server, EagerAcceptServer)
        port = server.sockets[0].getsockname()[1]
        clients = connect_all(port, WAITING)  # on the loop's thread: no turn passes
        try:
            # Turns, not time: one to accept them all, one to wrap them, one to spare.
            await turns(3)
            made = Echo.made
        finally:
            server.close()
            await server.wait_closed()
            for client in clients:
                client.close()
        return made, len(server.sockets)

    made, listening = run(main)
    assert made == WAITING
    assert listening == 0


def test_plain_uvloop_admits_one_connection_a_turn() -> None:
    """Why the loop exists: the same connections on uvloop's own server, same turns."""

    async def main() -> int:
        Echo.made = 0
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = connect_all(port, WAITING)  # on the loop's thread: no turn passes
        try:
            await turns(3)
            return Echo.made
        finally:
            server.close()
            for client in clients:
                client.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) < WAITING


def test_connections_are_served_and_close_stops_accepting() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4)
        port = server.sockets[0].getsockname()[1]
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        answers = []
        for i, (reader, writer) in enumerate(streams):
            writer.write(f"hello {i}".encode())
            answers.append(await reader.readexactly(len(f"hello {i}")))
        server.close()
        assert not server.is_serving()
        for _, writer in streams:
            writer.close()
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("a closed server accepted a connection")
        return answers

    assert run(main) == [f"HELLO {i}".encode() for i in range(10)]


def test_a_passed_socket_is_served() -> None:
    """``videogate api --workers N``: uvicorn hands each process the shared socket."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def main() -> bytes:
        server = await asyncio.get_running_loop().create_server(Echo, sock=listener)
        assert isinstance(server, EagerAcceptServer)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        answer = await reader.readexactly(1)
        writer.close()
        server.close()
        return answer

    assert run(main) == b"X"


def test_uvicorn_serves_an_app_on_it() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/", hello)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)

    async def main() -> bytes:
        serving = asyncio.create_task(server.serve())
        # uvicorn has no event to await for its start.
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert isinstance(server.servers[0], EagerAcceptServer)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        server.should_exit = True
        await serving
        return response

    response = run(main)
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hi")


def test_the_loop_setting_selects_it() -> None:
    assert _loop_option("asyncio") == "asyncio"
    for value in ("auto", "uvloop"):
        assert _loop_option(value) == "videogate.cli.serving_loop:new_event_loop"
    assert isinstance(new_event_loop(), EagerAcceptLoop)
