"""The URL guard and the reference fetcher, against a real HTTP server on 127.0.0.1.

No test touches the network: names other than ``localhost`` and numeric forms go through
an injected resolver (or a patched ``getaddrinfo``), and refused hops are refused before
any connection is made.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from videogate.errors import InvalidRequest, ReferenceUnreachable, UnsafeURL
from videogate.fetch import (
    MAX_REDIRECTS,
    Fetched,
    IPAddress,
    UrlGuard,
    address_kind,
    fetch_url,
    guard_from_settings,
)
from videogate.settings import Settings

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
)
BIG = 2 * 1024 * 1024
LIMIT = 1024 * 1024

Handler = Callable[[asyncio.StreamWriter, dict[str, str]], Awaitable[None]]


# A tiny HTTP/1.1 server ---------------------------------------------------------------------


class Server:
    """Records (path, headers) of every request. One request per connection
    (``Connection: close``) unless ``keep_alive``."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, keep_alive: bool = False) -> None:
        self.ssl_context = ssl_context
        self.keep_alive = keep_alive
        self.connections = 0
        self.port = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.dripping = asyncio.Event()  # set once /drip has sent a few bytes of its body
        self.routes: dict[str, Handler] = {
            "/ok": self._ok,
            "/echo-host": self._echo_host,
            "/big": self._big,
            "/big-header": self._big_header,
            "/big-stream": self._big_stream,
            "/missing": self._missing,
            "/redirect": self._redirect("/ok"),
            "/redirect-abs": self._redirect(lambda: f"{self.base}/ok"),
            "/redirect-loopback": self._redirect(lambda: f"http://127.0.0.2:{self.port}/ok"),
            "/redirect-internal": self._redirect(lambda: f"http://internal.test:{self.port}/ok"),
            "/redirect-metadata": self._redirect("http://169.254.169.254/latest/meta-data/"),
            "/redirect-file": self._redirect("file:///etc/passwd"),
            "/redirect-empty": self._no_location,
            "/loop": self._redirect("/loop"),
            "/hang": self._hang,
            "/drip": self._drip,
            "/broken": self._broken,
        }

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while request_line := (await reader.readline()).decode("latin-1"):
                headers: dict[str, str] = {}
                while (line := (await reader.readline()).decode("latin-1").strip()) != "":
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                path = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
                self.requests.append((path, headers))
                await self.routes.get(path, self._missing)(writer, headers)
                await writer.drain()
                if not self.keep_alive or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _head(self, writer: asyncio.StreamWriter, status: str, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status}"] + ([] if self.keep_alive else ["Connection: close"])
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _ok(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "200 OK", {"Content-Type": "image/png", "Content-Length": str(len(PNG))})
        writer.write(PNG)

    async def _echo_host(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        body = headers.get("host", "").encode()
        self._head(
            writer, "200 OK", {"Content-Type": "text/plain", "Content-Length": str(len(body))}
        )
        writer.write(body)

    async def _big(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "200 OK", {"Content-Length": str(BIG)})
        writer.write(b"x" * BIG)

    async def _big_header(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        # Announces a huge body and sends none: only an up-front check can answer quickly.
        self._head(writer, "200 OK", {"Content-Length": str(100 * BIG)})
        await writer.drain()
        await asyncio.sleep(3600)

    async def _big_stream(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        # No Content-Length: the body ends when the connection closes.
        self._head(writer, "200 OK", {"Content-Type": "application/octet-stream"})
        for _ in range(BIG // 65536):
            writer.write(b"y" * 65536)
            await writer.drain()

    async def _missing(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "404 Not Found", {"Content-Length": "9"})
        writer.write(b"not found")

    def _redirect(self, location: str | Callable[[], str]) -> Handler:
        async def handler(writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
            where = location if isinstance(location, str) else location()
            self._head(writer, "302 Found", {"Location": where, "Content-Length": "0"})

        return handler

    async def _no_location(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "301 Moved Permanently", {"Content-Length": "0"})

    async def _hang(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        await asyncio.sleep(3600)

    async def _drip(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "200 OK", {"Content-Length": "100000"})
        for i in range(100000):
            writer.write(b"z")
            await writer.drain()
            await asyncio.sleep(0.02)
            if i == 10:
                self.dripping.set()

    async def _broken(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> None:
        self._head(writer, "200 OK", {"Content-Length": "1000"})
        writer.write(b"a" * 100)
        await writer.drain()
        transport = writer.transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        try:
            return table[host]
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None

    return resolve


class LoopbackIsPublic(UrlGuard):
    """Stands in for the internet: 127.0.0.1 (the test server) counts as public.

    Everything else is judged normally, so a hop to 127.0.0.2 or 10.x is still refused.
    """

    def refusal(self, ip: IPAddress) -> str | None:
        if ip == ipaddress.ip_address("127.0.0.1"):
            return None
        return super().refusal(ip)


PUBLIC_NAMES = {
    "public.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "internal.test": ["10.1.2.3"],
    "dual.test": ["::1", "127.0.0.1"],
}


def public_guard() -> UrlGuard:
    return LoopbackIsPublic(allow_private=False, resolver=fake_resolver(PUBLIC_NAMES))


async def fetch(
    url: str,
    dest: Path,
    client: httpx.AsyncClient,
    guard: UrlGuard | None = None,
    *,
    max_bytes: int = LIMIT,
    timeout: float = 5.0,
) -> Fetched:
    return await fetch_url(
        url,
        dest,
        label="image 2",
        client=client,
        guard=guard or UrlGuard(allow_private=True),
        max_bytes=max_bytes,
        timeout=timeout,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# The guard ----------------------------------------------------------------------------------


STRICT = UrlGuard(allow_private=False)
LAX = UrlGuard(allow_private=True)


@pytest.mark.parametrize(
    ("url", "ip", "kind"),
    [
        ("http://127.0.0.1/x", "127.0.0.1", "loopback"),
        ("http://localhost:8000/", "127.0.0.1", "loopback"),
        ("http://10.0.0.7/a.png", "10.0.0.7", "private"),
        ("http://172.16.5.4/", "172.16.5.4", "private"),
        ("https://192.168.1.1/", "192.168.1.1", "private"),
        ("http://169.254.1.2/", "169.254.1.2", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://100.64.1.1/", "100.64.1.1", "shared (CGNAT)"),
        ("http://[::1]:8080/", "::1", "loopback"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[fd12:3456::1]/", "fd12:3456::1", "private"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254", "cloud metadata"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe", "cloud metadata"),
        ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1", "private"),
        ("http://[2002:7f00:1::]/", "2002:7f00:1::", "loopback"),
        ("http://0.0.0.0:8000/", "0.0.0.0", "unspecified"),
        ("http://[::]/", "::", "unspecified"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("http://240.0.0.1/", "240.0.0.1", "reserved"),
        ("http://2130706433/", "127.0.0.1", "loopback"),
        ("http://0x7f.1/", "127.0.0.1", "loopback"),
        ("http://127.1/", "127.0.0.1", "loopback"),
    ],
)
async def test_guard_refuses_non_public_addresses(url: str, ip: str, kind: str) -> None:
    with pytest.raises(UnsafeURL) as info:
        await STRICT.check(url, label="image 2")
    message = info.value.message
    assert message.startswith("image 2: ")
    assert f"resolves to {ipaddress.ip_address(ip)}, " in message
    assert f" {kind} address; references must be reachable public URLs" in message
    assert info.value.param == "content"
    if kind != "cloud metadata":
        assert "VIDEOGATE_ALLOW_PRIVATE_URLS=1" in message


async def test_refusal_message_follows_the_documented_format() -> None:
    with pytest.raises(UnsafeURL) as info:
        await STRICT.check("http://10.1.2.3/a.png", label="video 1")
    assert info.value.message == (
        "video 1: 10.1.2.3 resolves to 10.1.2.3, a private address; references must be "
        "reachable public URLs (set VIDEOGATE_ALLOW_PRIVATE_URLS=1 to allow private "
        "addresses for local development)"
    )
    with pytest.raises(UnsafeURL) as info:
        await STRICT.check("http://[::1]/hook", label="callback_url", param="callback_url")
    assert info.value.message.startswith("callback_url: ::1 resolves to ::1, a loopback address")
    assert info.value.param == "callback_url"


async def test_every_resolved_address_must_be_public() -> None:
    guard = UrlGuard(
        allow_private=False, resolver=fake_resolver({"mixed.test": ["93.184.216.34", "10.0.0.1"]})
    )
    with pytest.raises(UnsafeURL, match=r"mixed\.test resolves to 10\.0\.0\.1, a private"):
        await guard.check("https://mixed.test/a.png", label="image 1")


async def test_public_addresses_pass() -> None:
    guard = UrlGuard(
        allow_private=False,
        resolver=fake_resolver({"cdn.test": ["93.184.216.34", "2606:2800:220:1::1"]}),
    )
    await guard.check("https://cdn.test/a.png?sig=1", label="image 1")
    await guard.check("http://8.8.8.8/", label="image 1")
    await guard.check("http://[2606:4700::1111]/", label="image 1")
    await guard.check("http://[::ffff:8.8.8.8]/", label="image 1")
    target = await guard.resolve("https://cdn.test:8443/a.png", label="image 1")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")
    assert target.host == "cdn.test"


@pytest.mark.parametrize(
    "url",
    [
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://127.000.000.001/",
        "http://0x7f.0x0.0x0.0x1/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
    ],
)
async def test_obfuscated_loopback_never_passes(url: str) -> None:
    # Refused as loopback after getaddrinfo normalizes it, or rejected as malformed by the
    # URL parser; never accepted.
    with pytest.raises(InvalidRequest) as info:
        await STRICT.check(url, label="image 2")
    assert info.value.message.startswith("image 2: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/a.png",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
    ],
)
async def test_allow_private_lets_private_addresses_through(url: str) -> None:
    await LAX.check(url, label="image 1")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://2852039166/",  # 169.254.169.254 as a decimal number
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
    ],
)
async def test_metadata_is_refused_even_with_allow_private(url: str) -> None:
    with pytest.raises(UnsafeURL, match=r"^image 1: .*cloud metadata") as info:
        await LAX.check(url, label="image 1")
    assert "refused even with VIDEOGATE_ALLOW_PRIVATE_URLS=1" in info.value.message


async def test_metadata_name_resolving_anywhere_is_refused_by_address() -> None:
    guard = UrlGuard(allow_private=True, resolver=fake_resolver({"imds.test": ["169.254.169.254"]}))
    with pytest.raises(UnsafeURL, match=r"imds\.test resolves to 169\.254\.169\.254"):
        await guard.check("http://imds.test/", label="image 1")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/a.png",
        "//example.com/a.png",
        "",
        "localhost:8080/a.png",
    ],
)
@pytest.mark.parametrize("guard", [STRICT, LAX])
async def test_unsupported_schemes(url: str, guard: UrlGuard) -> None:
    with pytest.raises(InvalidRequest) as info:
        await guard.check(url, label="image 3")
    assert not isinstance(info.value, UnsafeURL)
    assert info.value.message.startswith("image 3: unsupported URL scheme ")
    assert info.value.message.endswith(
        "; use an http(s) URL, a data: URL, or a URL from POST /v1/files"
    )
    assert info.value.param == "content"


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "http:///a.png",
        "http://:80/",
        "https://example.com:99999/",
        "https://example.com:0/",
        "https://example.com:abc/",
        "http://exa mple.com/",
        "http://example.com/a b.png",
        "http://example.com\\@127.0.0.1/",
        "http://exa%20mple.com/",
        "http://[::1/",
        "http://ex\x00ample.com/",
        "http://example.com/?q=\n",
        "http://" + "a" * 300 + ".com/",
        "https://example.com/" + "a" * 8200,
    ],
)
@pytest.mark.parametrize("guard", [STRICT, LAX])
async def test_malformed_urls_are_invalid_requests(url: str, guard: UrlGuard) -> None:
    with pytest.raises(InvalidRequest) as info:
        await guard.check(url, label="video 1")
    assert info.value.message.startswith("video 1: ")
    assert info.value.param == "content"


async def test_unresolvable_host_with_patched_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Exercises the default resolver (the loop's getaddrinfo) without asking any DNS server.
    async def no_such_host(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_host)
    for guard in (STRICT, LAX):
        with pytest.raises(ReferenceUnreachable) as info:
            await guard.check("https://nothing-here.invalid/a.png", label="image 2")
        assert info.value.message == "image 2: cannot resolve host nothing-here.invalid"


async def test_unresolvable_host_with_injected_resolver() -> None:
    guard = UrlGuard(allow_private=False, resolver=fake_resolver({}))
    with pytest.raises(ReferenceUnreachable, match=r"^image 2: cannot resolve host x\.invalid$"):
        await guard.check("http://x.invalid/", label="image 2")


async def test_data_urls_pass_the_guard_and_bad_ones_do_not() -> None:
    await STRICT.check("data:image/png;base64,iVBORw0KGgo=", label="image 1")
    await STRICT.check("data:,hello", label="image 1")
    with pytest.raises(InvalidRequest, match=r"^image 1: malformed data: URL"):
        await STRICT.check("data:image/png;base64", label="image 1")
    with pytest.raises(InvalidRequest, match=r"^image 1: malformed media type"):
        await STRICT.check("data:not a type;base64,AAAA", label="image 1")


def test_guard_from_settings() -> None:
    assert guard_from_settings(Settings(allow_private_urls=True)).allow_private is True
    assert guard_from_settings(Settings(allow_private_urls=False)).allow_private is False


def test_address_kind_table() -> None:
    assert address_kind(ipaddress.ip_address("93.184.216.34")) is None
    assert address_kind(ipaddress.ip_address("168.63.129.16")) == "cloud metadata"
    assert address_kind(ipaddress.ip_address("192.0.2.1")) == "non-public"
    assert address_kind(ipaddress.ip_address("::7f00:1")) == "loopback"
    assert address_kind(ipaddress.ip_address("fe80::1%eth0")) == "link-local"


# Fetching over HTTP -------------------------------------------------------------------------


async def test_fetch_200(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    dest = tmp_path / "refs" / "deep" / "image-2.png"
    got = await fetch(f"{server.base}/ok", dest, client)
    assert got == Fetched(path=dest, bytes=len(PNG), content_type="image/png")
    assert dest.read_bytes() == PNG
    assert leftovers(dest.parent) == ["image-2.png"]
    _, headers = server.requests[0]
    assert headers["host"] == f"127.0.0.1:{server.port}"


async def test_fetch_replaces_an_existing_file(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    dest = tmp_path / "a.png"
    dest.write_bytes(b"old")
    await fetch(f"{server.base}/ok", dest, client)
    assert dest.read_bytes() == PNG


async def test_404(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(ReferenceUnreachable) as info:
        await fetch(f"{server.base}/missing", tmp_path / "a", client)
    assert info.value.message == "image 2: HTTP 404 from 127.0.0.1"
    assert leftovers(tmp_path) == []


async def test_too_big_by_content_length(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await fetch(f"{server.base}/big", tmp_path / "a", client)
    assert info.value.message == "image 2: larger than the 1 MB limit"
    assert info.value.param == "content"
    assert leftovers(tmp_path) == []


async def test_content_length_is_checked_before_the_body(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # The server announces 200 MB and then sends nothing: must not wait for the timeout.
    with pytest.raises(InvalidRequest, match="larger than the 1 MB limit"):
        await fetch(f"{server.base}/big-header", tmp_path / "a", client, timeout=30)
    assert leftovers(tmp_path) == []


async def test_too_big_while_streaming(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest, match=r"^image 2: larger than the 1 MB limit$"):
        await fetch(f"{server.base}/big-stream", tmp_path / "sub" / "a", client)
    assert leftovers(tmp_path / "sub") == []


async def test_limit_is_exact(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    got = await fetch(f"{server.base}/ok", tmp_path / "a", client, max_bytes=len(PNG))
    assert got.bytes == len(PNG)
    with pytest.raises(InvalidRequest):
        await fetch(f"{server.base}/ok", tmp_path / "b", client, max_bytes=len(PNG) - 1)
    assert leftovers(tmp_path) == ["a"]


async def test_relative_redirect(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    got = await fetch(f"{server.base}/redirect", tmp_path / "a", client)
    assert got.bytes == len(PNG)
    assert server.paths() == ["/redirect", "/ok"]


async def test_absolute_redirect(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    await fetch(f"{server.base}/redirect-abs", tmp_path / "a", client)
    assert server.paths() == ["/redirect-abs", "/ok"]


async def test_redirect_loop_stops(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(ReferenceUnreachable, match=r"^image 2: too many redirects"):
        await fetch(f"{server.base}/loop", tmp_path / "a", client)
    assert server.paths() == ["/loop"] * (MAX_REDIRECTS + 1)


async def test_redirect_without_location(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(
        ReferenceUnreachable, match=r"HTTP 301 from 127\.0\.0\.1 without a Location"
    ):
        await fetch(f"{server.base}/redirect-empty", tmp_path / "a", client)


async def test_redirect_to_metadata_refused_even_with_allow_private(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeURL) as info:
        await fetch(f"{server.base}/redirect-metadata", tmp_path / "a", client)
    assert info.value.message.startswith(
        "image 2: redirected to 169.254.169.254, which resolves to 169.254.169.254, "
        "a cloud metadata address"
    )
    assert server.paths() == ["/redirect-metadata"]


async def test_redirect_to_file_scheme_refused(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest, match=r'^image 2: redirected to .*scheme "file:"'):
        await fetch(f"{server.base}/redirect-file", tmp_path / "a", client)


async def test_pinned_connection_keeps_the_host_header(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # "public.test" exists only in the guard's resolver: the fetch can only succeed if the
    # connection goes to the address the guard checked instead of being resolved again.
    dest = tmp_path / "host.txt"
    got = await fetch(f"http://public.test:{server.port}/echo-host", dest, client, public_guard())
    assert dest.read_text() == f"public.test:{server.port}"
    assert got.content_type == "text/plain"


async def test_redirect_from_public_to_loopback_is_refused(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeURL) as info:
        await fetch(
            f"http://public.test:{server.port}/redirect-loopback",
            tmp_path / "a",
            client,
            public_guard(),
        )
    assert info.value.message.startswith(
        "image 2: redirected to 127.0.0.2, which resolves to 127.0.0.2, a loopback address; "
    )
    assert server.paths() == ["/redirect-loopback"]
    assert leftovers(tmp_path) == []


async def test_redirect_from_public_to_private_name_is_refused(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(
        UnsafeURL, match=r"internal\.test, which resolves to 10\.1\.2\.3, a private"
    ):
        await fetch(f"{server.base}/redirect-internal", tmp_path / "a", client, public_guard())
    assert server.paths() == ["/redirect-internal"]


async def test_strict_guard_refuses_the_loopback_server_before_connecting(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(UnsafeURL, match="a loopback address"):
        await fetch(f"{server.base}/ok", tmp_path / "a", client, UrlGuard(allow_private=False))
    assert server.requests == []


async def test_falls_back_to_the_next_address(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # dual.test -> [::1, 127.0.0.1]; nothing listens on [::1]:port, so the second one serves.
    guard = UrlGuard(allow_private=True, resolver=fake_resolver(PUBLIC_NAMES))
    got = await fetch(f"http://dual.test:{server.port}/ok", tmp_path / "a", client, guard)
    assert got.bytes == len(PNG)


async def test_localhost_with_the_system_resolver(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    got = await fetch(f"http://localhost:{server.port}/echo-host", tmp_path / "a", client)
    assert (tmp_path / "a").read_text() == f"localhost:{server.port}"
    assert got.bytes == len(f"localhost:{server.port}")


async def test_hanging_server_times_out(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(ReferenceUnreachable) as info:
        await fetch(f"{server.base}/hang", tmp_path / "a", client, timeout=0.3)
    assert info.value.message == "image 2: timed out after 0.3 s"
    assert leftovers(tmp_path) == []


async def test_dripping_server_hits_the_overall_deadline(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Every read succeeds within the timeout; only the deadline on the whole fetch stops it
    # (the body would drip for over half an hour), as its message says: no wall-clock bound.
    with pytest.raises(ReferenceUnreachable, match=r"^image 2: timed out after 0.5 s$"):
        await fetch(f"{server.base}/drip", tmp_path / "a", client, timeout=0.5)
    assert leftovers(tmp_path) == []


async def test_broken_body(server: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(ReferenceUnreachable) as info:
        await fetch(f"{server.base}/broken", tmp_path / "a", client)
    assert info.value.message.startswith("image 2: 127.0.0.1 ")
    assert "mid-response" in info.value.message
    assert leftovers(tmp_path) == []


async def test_connection_refused(client: httpx.AsyncClient, tmp_path: Path) -> None:
    # A bound socket that does not listen: connections to it are refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(ReferenceUnreachable) as info:
            await fetch(f"http://127.0.0.1:{port}/a.png", tmp_path / "a", client)
    assert info.value.message == "image 2: connection refused"
    assert leftovers(tmp_path) == []


async def test_unresolvable_host_when_fetching(client: httpx.AsyncClient, tmp_path: Path) -> None:
    guard = UrlGuard(allow_private=False, resolver=fake_resolver({}))
    with pytest.raises(ReferenceUnreachable, match=r"^image 2: cannot resolve host gone\.invalid$"):
        await fetch("https://gone.invalid/a.png", tmp_path / "a", client, guard)


async def test_cancellation_leaves_no_partial_file(
    server: Server, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    task = asyncio.create_task(fetch(f"{server.base}/drip", tmp_path / "a", client, timeout=30))
    await asyncio.wait_for(server.dripping.wait(), 5)
    parts = await asyncio.to_thread(leftovers, tmp_path)
    assert len(parts) == 1
    assert parts[0].startswith(".a.")
    assert parts[0].endswith(".part")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(tmp_path) == []


# HTTPS with pinning -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", "2", "-subj", "/CN=public.test",
            "-addext", "subjectAltName=DNS:public.test",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    yield cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    srv = Server(ssl_context=context)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def tls_client(certificate: tuple[Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    context = ssl.create_default_context(cafile=str(certificate[0]))
    async with httpx.AsyncClient(verify=context, trust_env=False) as c:
        yield c


async def test_https_pinned_with_the_right_sni_and_certificate_name(
    tls_server: Server, tls_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    url = f"https://public.test:{tls_server.port}/echo-host"
    await fetch(url, tmp_path / "a", tls_client, public_guard())
    assert (tmp_path / "a").read_text() == f"public.test:{tls_server.port}"


async def test_https_connection_for_one_name_is_not_reused_for_another(
    certificate: tuple[Path, Path], tls_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Both names are pinned to 127.0.0.1, so httpx's pool would hand the TLS connection
    # verified for public.test to the request for other.test if it were kept alive.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    srv = Server(ssl_context=context, keep_alive=True)
    await srv.start()
    try:
        await fetch(
            f"https://public.test:{srv.port}/echo-host", tmp_path / "a", tls_client, public_guard()
        )
        with pytest.raises(ReferenceUnreachable, match="TLS certificate of other"):
            await fetch(
                f"https://other.test:{srv.port}/echo-host",
                tmp_path / "b",
                tls_client,
                public_guard(),
            )
    finally:
        await srv.stop()
    assert leftovers(tmp_path) == ["a"]


async def test_plain_http_connections_are_kept_alive(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    srv = Server(keep_alive=True)
    await srv.start()
    try:
        for name in ("a", "b"):
            await fetch(
                f"http://public.test:{srv.port}/ok", tmp_path / name, client, public_guard()
            )
    finally:
        await srv.stop()
    assert srv.paths() == ["/ok", "/ok"]
    assert srv.connections == 1


async def test_https_certificate_for_another_name_is_rejected(
    tls_server: Server, tls_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    url = f"https://other.test:{tls_server.port}/ok"
    with pytest.raises(ReferenceUnreachable, match=r"^image 2: TLS certificate of other\.test"):
        await fetch(url, tmp_path / "a", tls_client, public_guard())
    assert leftovers(tmp_path) == []


# data: URLs ---------------------------------------------------------------------------------


async def test_data_url_base64_png(client: httpx.AsyncClient, tmp_path: Path) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    got = await fetch(url, tmp_path / "x" / "a.png", client, UrlGuard(allow_private=False))
    assert got == Fetched(path=tmp_path / "x" / "a.png", bytes=len(PNG), content_type="image/png")
    assert got.path.read_bytes() == PNG


async def test_data_url_base64_without_padding_and_with_whitespace(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    encoded = base64.b64encode(PNG).decode().rstrip("=")
    url = "data:image/png;base64," + encoded[:20] + "\n" + encoded[20:]
    got = await fetch(url, tmp_path / "a", client)
    assert got.path.read_bytes() == PNG


async def test_data_url_percent_encoded_text(client: httpx.AsyncClient, tmp_path: Path) -> None:
    got = await fetch("data:text/plain;charset=utf-8,caf%C3%A9%20au%20lait", tmp_path / "a", client)
    assert got.path.read_text("utf-8") == "café au lait"
    assert got.content_type == "text/plain;charset=utf-8"
    assert got.bytes == len("café au lait".encode())


async def test_data_url_without_media_type(client: httpx.AsyncClient, tmp_path: Path) -> None:
    got = await fetch("data:,hi", tmp_path / "a", client)
    assert got.content_type is None
    assert got.path.read_bytes() == b"hi"


@pytest.mark.parametrize("payload", ["!!!!", "AAAAA", "AA=A", "iVBOR w0K*GgoAAA"])
async def test_data_url_invalid_base64(
    payload: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await fetch(f"data:image/png;base64,{payload}", tmp_path / "a", client)
    assert info.value.message == "image 2: invalid base64 in data: URL"
    assert info.value.param == "content"
    assert leftovers(tmp_path) == []


async def test_data_url_too_big(client: httpx.AsyncClient, tmp_path: Path) -> None:
    url = "data:application/octet-stream;base64," + base64.b64encode(b"\0" * 2048).decode()
    with pytest.raises(InvalidRequest, match=r"^image 2: larger than the 0\.000977 MB limit$"):
        await fetch(url, tmp_path / "a", client, max_bytes=1024)
    got = await fetch(url, tmp_path / "b", client, max_bytes=2048)
    assert got.bytes == 2048
    assert leftovers(tmp_path) == ["b"]


async def test_data_url_percent_encoded_too_big(client: httpx.AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="larger than the"):
        await fetch("data:," + "%41" * 1025, tmp_path / "a", client, max_bytes=1024)
    assert leftovers(tmp_path) == []
